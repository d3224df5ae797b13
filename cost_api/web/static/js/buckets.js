/* The trend's table: one row per bucket (the chart's figures for screen readers and copying). A day's
 * row is a button: it narrows the view to that day, shown by the hour. */

import { zoomTo } from "./controls.js";
import { el, fillBody } from "./dom.js";
import { money, whole } from "./format.js";

/** Fill the table from the chart's columns; `null`: no buckets. */
export function fillBuckets(b) {
  if (!b) {
    fillBody("trend-table", [], "No buckets");
    return;
  }
  const rows = b.starts.map((start, i) => {
    const name = b.hour ? b.label(i) : el("button", { type: "button", class: "key", title: "Show this day by the hour" }, b.label(i));
    const tr = el("tr", { class: b.hour ? null : "clickable" }, el("th", { scope: "row" }, name), el("td", { class: "num" }, money(b.total[i])), el("td", { class: "num" }, money(b.saved[i])), el("td", { class: "num" }, whole.format(b.requests[i])));
    if (!b.hour) tr.addEventListener("click", () => zoomTo(start, b.ends[i]));
    return tr;
  });
  fillBody("trend-table", rows, "No buckets");
}
