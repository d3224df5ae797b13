/* The incidents card: `GET /v1/anomalies` over the view's range (incidents, each named by its root key),
 * ranked by dollar impact (20 at most). The route takes no filters (each rule watches every value): with
 * filters on, the card keeps the incidents that touch a filtered key and says so. A root key filters the
 * page by it. */

import { AuthNeeded, api } from "./api.js";
import { $, el } from "./dom.js";
import { addFilter } from "./filters.js";
import { money, rangeText, stamp } from "./format.js";
import { FILTERS, state } from "./state.js";

/** The filter a key of `dimension` stands for: a model key is `provider/model`, the filter the model. */
const filterOf = (dimension, key) => [dimension, dimension === "model" ? key.slice(key.indexOf("/") + 1) : key];

function touchesFilters(incident) {
  const keys = [`${incident.dimension}:${incident.key}`, ...(incident.related || [])];
  return keys.some((k) => {
    const [dimension, ...rest] = k.split(":");
    const [kind, value] = filterOf(dimension, rest.join(":"));
    return FILTERS.includes(kind) && state.filters[kind].includes(value);
  });
}

export async function loadAnomalies(range, gen) {
  const box = $("anomalies");
  let a;
  try {
    a = await api("v1/anomalies", { ...range.params, tz: state.tz });
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    if (gen !== state.generation) return;
    box.replaceChildren(el("p", { class: "muted" }, error.status === 404 ? "Anomaly detection is not available on this server yet." : `Could not load incidents: ${error.message}`));
    return;
  }
  if (gen !== state.generation) return;
  $("anomalies-range").textContent = rangeText(a.range);
  const filtered = FILTERS.some((f) => state.filters[f].length);
  const items = [...(a.items || [])].filter((i) => !filtered || touchesFilters(i)).sort((x, y) => (y.impact ?? 0) - (x.impact ?? 0));
  const scope = filtered ? "Only the incidents that touch a filtered key; the rules watch all traffic." : "";
  if (!items.length) {
    box.replaceChildren(el("p", { class: "muted" }, `No incidents in this range. ${scope}`));
    return;
  }
  const shown = items.slice(0, 20);
  box.replaceChildren(
    scope ? el("p", { class: "muted" }, scope) : "",
    el(
      "div",
      { class: "scroll" },
      el(
        "table",
        { id: "anomaly-table" },
        el("caption", { class: "vh" }, "Incidents in the range, the largest dollar impact first"),
        el("thead", {}, el("tr", {}, ["Impact", "Rule", "Root key", "Started", "Ended", "Related"].map((h, i) => el("th", { scope: "col", class: i === 0 || i === 5 ? "num" : null }, h)))),
        el("tbody", {}, shown.map(incidentRow)),
      ),
    ),
    items.length > shown.length ? el("p", { class: "muted" }, `and ${items.length - shown.length} smaller incidents`) : "",
  );
}

function incidentRow(e) {
  const [kind, value] = filterOf(e.dimension, e.key ?? "");
  const key = FILTERS.includes(kind)
    ? el("button", { type: "button", class: "key", title: `Filter the page by ${kind} ${value}` }, e.key)
    : el("code", {}, e.key ?? "—");
  if (FILTERS.includes(kind)) key.addEventListener("click", () => addFilter(kind, value));
  return el(
    "tr",
    {},
    el("th", { scope: "row", class: "num" }, money(e.impact ?? e.extra ?? 0)),
    el("td", {}, (e.rule || "").replace(/_/g, " ")),
    el("td", {}, el("span", { class: "muted" }, `${e.dimension || "—"} `), key),
    el("td", {}, stamp(e.started_at)),
    el("td", {}, e.ended_at ? stamp(e.ended_at) : el("strong", { class: "ongoing" }, "ongoing")),
    el("td", { class: "num", title: (e.related || []).join("\n") }, String((e.related || []).length)),
  );
}
