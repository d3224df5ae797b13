/* The data-quality line under the headline: how many logged requests are in no figure, and why. */

import { $ } from "./dom.js";
import { stamp, whole } from "./format.js";

// `data_quality.reasons`: why a logged request is in no figure (docs/api.md).
const LEFT_OUT = {
  negative_tokens: (n) => `${n} with a negative token count`,
  missing_provider_or_model: (n) => `${n} without provider or model`,
  future_created_at: (n, q) => `${n} dated in the future (after ${stamp(q.future_after)}, the whole log)`,
};

/** A visible line when the window's figures leave logged requests out (bad rows), else nothing. */
export function renderDataQuality(q) {
  const node = $("data-quality");
  if (!q || !q.excluded_requests) {
    node.hidden = true;
    node.textContent = "";
    return;
  }
  const parts = Object.entries(q.reasons)
    .filter(([, n]) => n)
    .map(([reason, n]) => (LEFT_OUT[reason] || ((k) => `${k} ${reason.replace(/_/g, " ")}`))(whole.format(n), q));
  const count = whole.format(q.excluded_requests);
  node.textContent = `${count} logged request${q.excluded_requests === 1 ? " is" : "s are"} in no figure: ${parts.join("; ")}. The audit rows (/v1/requests) show which.`;
  node.hidden = false;
}
