/* The pricing-coverage card: % of requests priced, and every unpriced model called out. */

import { $, el } from "./dom.js";
import { compact, pct, whole } from "./format.js";

export function renderPricing(pricing) {
  $("coverage").textContent = pct(pricing.coverage_pct);
  $("pricing-version").textContent = `Price table ${pricing.version}`;
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
