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
        el("th", { scope: "row" }, filterButton(item.endpoint), el("span", { class: "muted period" }, ` per ${item.period}`)),
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

/** The budget's endpoint as a button that filters the page by it (its rows and figures). */
function filterButton(endpoint) {
  const button = el("button", { type: "button", class: "key", title: `Filter the page by endpoint ${endpoint}` }, endpoint);
  button.addEventListener("click", () => addFilter("endpoint", endpoint));
  return button;
}

/** `; projected $X` at the reset, and when it reaches the limit if it is projected to. */
function projectedEnd(item) {
  if (item.projected == null) return "";
  const reaches = item.projected_exceed_at ? `, reaches the limit ${stamp(item.projected_exceed_at)}` : "";
  return `; projected ${money(item.projected)}${reaches}`;
}
