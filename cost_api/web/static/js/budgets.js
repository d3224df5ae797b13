/* The budgets card: `GET /v1/budgets`, each budget in its current period. */

import { AuthNeeded, api } from "./api.js";
import { $, bar, el, fillBody, showError } from "./dom.js";
import { addFilter } from "./filters.js";
import { money, pct, stamp } from "./format.js";
import { state } from "./state.js";

export async function loadBudgets(gen) {
  let b;
  try {
    b = await api("v1/budgets");
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    if (gen !== state.generation) return;
    fillBody("budgets", [], error.status === 404 ? "Budgets are not available on this server." : "—");
    if (error.status !== 404) showError("budgets-error", error);
    return;
  }
  if (gen !== state.generation) return;
  showError("budgets-error", null);
  const icon = { ok: "✓", warning: "⚠", exceeded: "✕" };
  fillBody(
    "budgets",
    b.items.map((item) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, subject(item), el("span", { class: "muted period" }, ` per ${item.period}`)),
        el("td", {}, el("span", { class: "used" }, bar(item.used_pct, item.status), el("span", { class: "num" }, pct(item.used_pct)))),
        el("td", { class: "num" }, `${money(item.spent)} / ${money(item.limit_usd)}`),
        el("td", {}, el("span", { class: `status ${item.status}` }, el("span", { "aria-hidden": "true" }, `${icon[item.status] || ""} `), item.status), el("span", { class: "muted resets" }, ` resets ${stamp(item.resets_at)}${projectedEnd(item)}`)),
      ),
    ),
    "No budgets configured.",
  );
  const age = b.age_seconds == null ? "" : `Figures ${Math.round(b.age_seconds)} s old`;
  $("budgets-note").textContent = b.stale ? `${age} — stale: the database could not be read.` : age;
}

/** What a budget caps, as a button that filters the page by it: its endpoint, `token pg_live_xy7…` or a
 * tag budget's `tag team:search`. */
function subject(item) {
  if (item.endpoint != null) return filterButton("endpoint", item.endpoint, item.endpoint);
  if (item.token != null) return filterButton("token", item.token, `token ${item.token}`);
  return filterButton("tag", item.tag, `tag ${item.tag}`);
}

/** A button that filters the page (its rows and figures) by one key. */
function filterButton(kind, value, text) {
  const button = el("button", { type: "button", class: "key", title: `Filter the page by ${kind} ${value}` }, text);
  button.addEventListener("click", () => addFilter(kind, value));
  return button;
}

/** `; projected $X` at the reset, and when it reaches the limit if it is projected to. */
function projectedEnd(item) {
  if (item.projected == null) return "";
  const reaches = item.projected_exceed_at ? `, reaches the limit ${stamp(item.projected_exceed_at)}` : "";
  return `; projected ${money(item.projected)}${reaches}`;
}
