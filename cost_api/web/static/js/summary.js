/* The cards `GET /v1/summary` fills: the headline (with the data-quality line), by provider, top
 * endpoints and top tokens, pricing coverage, and the freshness line at the foot. */

import { AuthNeeded, api } from "./api.js";
import { renderDataQuality } from "./data-quality.js";
import { $, bar, change, el, fillBody, showError } from "./dom.js";
import { TZ, money, pct, stamp, whole } from "./format.js";
import { renderPricing } from "./pricing.js";
import { WINDOWS, state } from "./state.js";

export async function loadSummary(gen) {
  let s;
  try {
    s = await api("v1/summary", { window: state.window, tz: TZ, top: 5 });
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    if (gen === state.generation) showError("headline-error", error);
    return;
  }
  if (gen !== state.generation) return;
  showError("headline-error", null);
  renderHeadline(s);
  renderLists(s);
  renderPricing(s.pricing);
  renderDataQuality(s.data_quality);
  $("freshness").textContent = `As of ${stamp(s.as_of)} · newest request ${s.latest_request_at ? stamp(s.latest_request_at) : "none yet"} · times in ${TZ}`;
}

function renderHeadline(s) {
  $("range").textContent = `${stamp(s.range.from)} → ${stamp(s.range.to)} · ${TZ}`;
  $("headline-window").textContent = WINDOWS[state.window];
  $("total").textContent = money(s.spend);
  $("saved").replaceChildren(money(s.saved_by_cache), s.saved_pct == null ? "" : el("span", { class: "muted" }, ` ${pct(s.saved_pct)} of spend`));
  const changeNode = $("change");
  if (s.change_pct == null && !s.previous.spend) {
    changeNode.replaceChildren(el("span", { class: "muted" }, s.spend ? "nothing spent before" : "—"));
  } else {
    const dir = s.change > 0 ? "up" : s.change < 0 ? "down" : "flat";
    changeNode.replaceChildren(
      el(
        "span",
        { class: `change ${dir}` },
        el("span", { "aria-hidden": "true" }, { up: "↑", down: "↓", flat: "→" }[dir]),
        el("span", { class: "vh" }, dir),
        ` ${money(Math.abs(s.change))}`,
        s.change_pct == null ? "" : ` (${s.change_pct > 0 ? "+" : ""}${s.change_pct.toFixed(1)}%)`,
      ),
      el("span", { class: "muted" }, ` from ${money(s.previous.spend)}`),
    );
  }
  $("requests").replaceChildren(whole.format(s.requests), el("span", { class: "muted" }, ` ${whole.format(s.cache_hits)} cache hits`));
}

/** By provider (the window), top endpoints and top tokens (always the last 7 days). */
function renderLists(s) {
  fillBody(
    "providers",
    s.by_provider.map((p) =>
      el("tr", {}, el("th", { scope: "row" }, p.provider), el("td", { class: "num" }, money(p.spend)), el("td", { class: "num" }, el("span", { class: "share" }, bar(p.share_pct), pct(p.share_pct)))),
    ),
    "No spend in this window",
  );
  fillBody(
    "endpoints",
    s.top_endpoints.items.map((e) =>
      el("tr", {}, el("th", { scope: "row" }, el("code", {}, e.endpoint)), el("td", { class: "num" }, money(e.spend)), el("td", { class: "num" }, change(e.change_pct, e.spend))),
    ),
    "No spend in the last 7 days",
  );
  fillBody(
    "tokens",
    s.top_tokens.items.map((t) =>
      el(
        "tr",
        { class: "token-row" },
        el("th", { scope: "row" }, el("code", { class: "token" }, t.token)),
        el("td", { class: t.name ? "name" : "name muted" }, t.name || "—"),
        el("td", { class: "num" }, money(t.spend)),
        el("td", { class: "num" }, change(t.change_pct, t.spend)),
      ),
    ),
    "No spend in the last 7 days",
  );
}
