/* The header's controls: the range (presets, calendar periods, a custom from/to), the zone and the
 * chart's split. Each change goes to the address and reloads the figures (`changed`). */

import { $, el } from "./dom.js";
import { rangeOf } from "./scope.js";
import { BROWSER_TZ, RANGES, SPLITS, state } from "./state.js";
import { parseWall, wallText } from "./zone.js";

let changed = () => {};

/** Build the controls once; `onChange` runs after every change the viewer makes. */
export function buildControls(onChange) {
  changed = onChange;
  $("range-choices").replaceChildren(
    ...Object.entries(RANGES).flatMap(([value, label]) => [
      el("input", { type: "radio", name: "range", id: `r-${value}`, value }),
      el("label", { for: `r-${value}` }, label),
    ]),
  );
  $("range-form").addEventListener("change", (event) => {
    if (event.target.name === "range") pickRange(event.target.value);
    else if (event.target.id === "tz-select") pickZone(event.target.value);
  });
  $("range-form").addEventListener("submit", (event) => {
    event.preventDefault();
    applyCustom();
  });
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const names = [...new Set([BROWSER_TZ, "UTC", ...zones])];
  $("tz-select").replaceChildren(...names.map((z) => el("option", { value: z }, z === BROWSER_TZ ? `${z} (this browser)` : z)));
  $("split-select").replaceChildren(...SPLITS.map((s) => el("option", { value: s }, s)));
  $("split-select").addEventListener("change", (event) => {
    state.split = event.target.value;
    changed();
  });
}

/** Show the state in the controls (after a load from the address or Back). */
export function showControls() {
  const radio = $(`r-${state.range}`);
  if (radio) radio.checked = true;
  $("custom-range").hidden = state.range !== "custom";
  if (state.range === "custom") {
    $("custom-from").value = state.from;
    $("custom-to").value = state.to;
  }
  if (![...$("tz-select").options].some((o) => o.value === state.tz)) $("tz-select").append(el("option", { value: state.tz }, state.tz));
  $("tz-select").value = state.tz;
  $("split-select").value = state.split;
}

function pickRange(value) {
  if (value !== "custom") {
    state.range = value;
    $("custom-range").hidden = true;
    changed();
    return;
  }
  // Custom starts from the range on screen, so the viewer edits one end rather than typing both.
  const range = rangeOf(Date.now());
  const from = range.params.from ?? parseWall(state.from, state.tz);
  $("custom-from").value = from != null ? wallText(from, state.tz) : "";
  $("custom-to").value = wallText(range.params.to, state.tz);
  $("custom-range").hidden = false;
  $("custom-from").focus();
}

function applyCustom() {
  const from = $("custom-from").value;
  const to = $("custom-to").value;
  const a = parseWall(from, state.tz);
  const b = parseWall(to, state.tz);
  if (a == null || b == null || a >= b) {
    $("custom-error").textContent = "From must be before To.";
    return;
  }
  $("custom-error").textContent = "";
  Object.assign(state, { range: "custom", from, to });
  changed();
}

/** Narrow the view to [from, to) (ms), as a custom range: a day of the chart, shown by the hour. */
export function zoomTo(from, to) {
  Object.assign(state, { range: "custom", from: wallText(from, state.tz), to: wallText(to, state.tz) });
  changed();
}

function pickZone(tz) {
  // A custom range keeps its wall-clock times: 09:00 is 09:00 in the new zone.
  state.tz = tz;
  changed();
}
