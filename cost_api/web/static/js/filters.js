/* The filters as chips (provider, model, endpoint, token: `FILTERS`), a small form to add one, and
 * `addFilter`, which every clickable row and chart series calls. Each change goes to the address. */

import { $, el } from "./dom.js";
import { FILTERS, FILTER_LABELS, state } from "./state.js";

let changed = () => {};

export function buildFilters(onChange) {
  changed = onChange;
  $("add-kind").replaceChildren(...FILTERS.map((f) => el("option", { value: f }, FILTER_LABELS[f])));
  $("add-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("add-value").value.trim();
    if (!value) return;
    $("add-value").value = "";
    addFilter($("add-kind").value, value);
  });
}

/** Narrow the page to `kind` = `value` (no-op when it already is). */
export function addFilter(kind, value) {
  if (!FILTERS.includes(kind) || value == null || state.filters[kind].includes(value)) return;
  state.filters[kind] = [...state.filters[kind], value];
  changed();
}

function removeFilter(kind, value) {
  state.filters[kind] = state.filters[kind].filter((v) => v !== value);
  changed();
  $("add-value").focus(); // the chip's button is gone: keep the focus in the bar
}

/** The chips of the current filters; several values of one kind are either (as in the API). */
export function showChips() {
  const chips = FILTERS.flatMap((kind) =>
    state.filters[kind].map((value) =>
      el(
        "span",
        { class: "chip", "data-kind": kind },
        el("span", { class: "chip-kind" }, `${FILTER_LABELS[kind]}:`),
        ` ${value} `,
        el("button", { type: "button", class: "chip-remove", "aria-label": `Remove the filter ${FILTER_LABELS[kind]} ${value}`, "data-kind": kind, "data-value": value }, "✕"),
      ),
    ),
  );
  const box = $("chips");
  if (!chips.length) {
    box.replaceChildren(el("span", { class: "muted" }, "No filters: all traffic. Click a row or a bar to narrow the page."));
    return;
  }
  const clear = el("button", { type: "button", class: "link", id: "clear-filters" }, "Clear all");
  box.replaceChildren(...chips, clear);
  for (const button of box.querySelectorAll(".chip-remove")) {
    button.addEventListener("click", () => removeFilter(button.dataset.kind, button.dataset.value));
  }
  clear.addEventListener("click", () => {
    for (const f of FILTERS) state.filters[f] = [];
    changed();
    $("add-value").focus();
  });
}
