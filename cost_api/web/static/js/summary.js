/* The cards `GET /v1/summary` fills: the headline (with the data-quality line), pricing coverage, and the
 * freshness line at the foot. The lists of keys are the lens tables (lenses.js), on the same range. */

import { AuthNeeded, api } from "./api.js";
import { renderDataQuality } from "./data-quality.js";
import { $, el, showError } from "./dom.js";
import { money, pct, rangeText, stamp, whole } from "./format.js";
import { renderPricing } from "./pricing.js";
import { scopeParams } from "./scope.js";
import { RANGES, state } from "./state.js";

export async function loadSummary(range, gen) {
  let s;
  try {
    s = await api("v1/summary", { ...scopeParams(range), top: 1 });
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    if (gen === state.generation) showError("headline-error", error);
    return;
  }
  if (gen !== state.generation) return;
  showError("headline-error", null);
  renderHeadline(s);
  renderPricing(s.pricing);
  renderDataQuality(s.data_quality);
  $("freshness").textContent = `As of ${stamp(s.as_of)} · newest request ${s.latest_request_at ? stamp(s.latest_request_at) : "none yet"} · times in ${state.tz}`;
}

function renderHeadline(s) {
  $("range").textContent = `${RANGES[state.range]}: ${rangeText(s.range)} · ${state.tz}`;
  $("headline-range").textContent = rangeText(s.range);
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
