/* The pricing-coverage card: % of requests priced, what that figure alone would hide (estimated usage,
 * tiers without a rate), and every unpriced model called out. */

import { $, el } from "./dom.js";
import { compact, pct, whole } from "./format.js";

/** What the coverage figure alone would hide: requests with estimated usage, and requests priced at
 * standard rates for lack of a rate for their service tier. Hidden when there are none. */
function renderPricingCaveats(pricing) {
  const node = $("pricing-caveats");
  const estimated = pricing.estimated_requests || 0;
  const standard = pricing.no_tier_rate_requests || 0;
  const parts = [];
  if (estimated) {
    parts.push(
      `${whole.format(estimated)} request${estimated === 1 ? "" : "s"} with estimated usage: the gateway could not confirm ${estimated === 1 ? "its" : "their"} token counts (a stream cut before its usage report), so ${estimated === 1 ? "its" : "their"} cost may be understated`,
    );
  }
  if (standard) {
    const tiers = (pricing.no_tier_rate || []).map((t) => `${t.provider}/${t.model} ${t.service_tier}`);
    const shown = tiers.slice(0, 3).join(", ") + (tiers.length > 3 ? `, and ${tiers.length - 3} more` : "");
    parts.push(
      `${whole.format(standard)} request${standard === 1 ? "" : "s"} priced at standard rates: the price table has no rate for ${standard === 1 ? "its" : "their"} service tier (${shown})`,
    );
  }
  node.textContent = parts.length ? `${parts.join(". ")}.` : "";
  node.hidden = !parts.length;
}

export function renderPricing(pricing) {
  $("coverage").textContent = pct(pricing.coverage_pct);
  $("pricing-version").textContent = `Price table ${pricing.version}`;
  renderPricingCaveats(pricing);
  const box = $("unpriced");
  if (!pricing.unpriced.length) {
    box.replaceChildren(el("p", { class: "muted" }, "Every model called in this window has a price."));
    return;
  }
  box.replaceChildren(
    el(
      "div",
      { class: "callout", role: "note", "aria-labelledby": "unpriced-title" },
      el("h3", { id: "unpriced-title" }, pricing.unpriced.length === 1 ? "An unpriced model" : `${pricing.unpriced.length} unpriced models`),
      el("p", {}, "Their requests are in no spend figure until the price table knows them:"),
      el(
        "ul",
        {},
        pricing.unpriced.map((u) =>
          el(
            "li",
            {},
            el("code", {}, `${u.provider}/${u.model}`),
            ` — ${whole.format(u.requests)} requests, ${compact.format(u.prompt_tokens)} prompt + ${compact.format(u.completion_tokens)} completion tokens`,
          ),
        ),
      ),
    ),
  );
}
