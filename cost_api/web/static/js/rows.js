/* The requests card: with an endpoint or token filter on, `GET /v1/requests` lists the rows behind the
 * figures (same range and filters), newest first, each with its cost, 25 a page with "Load more"
 * (the answer's `next` cursor). */

import { AuthNeeded, api } from "./api.js";
import { $, el, fillBody, showError } from "./dom.js";
import { compact, money, rangeText, stamp, whole } from "./format.js";
import { scopeParams } from "./scope.js";
import { state } from "./state.js";

const PAGE = 25;
let query = null; // the first page's parameters
let next = null; // the cursor of the next page
let shown = 0;

/** Shown while the view is narrowed to an endpoint or a token. */
export const rowsWanted = () => state.filters.endpoint.length > 0 || state.filters.token.length > 0;

/** The rows card's query for the view (the CSV export asks the same). */
export const rowsQuery = (range) => ["v1/requests", { ...scopeParams(range), limit: PAGE }];

export async function loadRows(range, gen) {
  $("rows-card").hidden = !rowsWanted();
  if (!rowsWanted()) return;
  query = rowsQuery(range);
  next = null;
  shown = 0;
  await page(gen, false);
}

async function page(gen, more) {
  let body;
  $("rows-more").disabled = true;
  try {
    body = await api(query[0], more ? { ...query[1], cursor: next } : query[1]);
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    if (gen === state.generation) showError("rows-error", error);
    return;
  }
  if (gen !== state.generation) return;
  showError("rows-error", null);
  $("rows-range").textContent = rangeText(body.range);
  const rows = body.items.map(row);
  if (more) $("rows").tBodies[0].append(...rows);
  else fillBody("rows", rows, "No requests in this range");
  shown += body.items.length;
  next = body.next;
  $("rows-more").hidden = !next;
  $("rows-more").disabled = false;
  $("rows-count").textContent = `${whole.format(shown)} row${shown === 1 ? "" : "s"} shown${next ? "; more in the range" : ", all of the range"}`;
  $("rows-note").textContent = "Each row's cost is its price as a group of one: the rows of the range add up to its spend.";
}

function cost(r) {
  if (r.excluded) return el("span", { class: "warn" }, `in no figure: ${r.excluded.replace(/_/g, " ")}`);
  if (r.cost == null) return el("strong", { class: "warn" }, "unpriced");
  return r.cache_hit ? [money(r.cost), el("span", { class: "muted" }, ` cache hit, saved ${money(r.saved)}`)] : money(r.cost);
}

function row(r) {
  return el(
    "tr",
    { "data-id": r.id },
    el("th", { scope: "row" }, stamp(r.created_at)),
    el("td", {}, el("code", {}, r.endpoint ?? "—")),
    el("td", {}, el("code", { class: "token" }, r.token), r.name ? el("span", { class: "muted" }, ` ${r.name}`) : ""),
    el("td", {}, `${r.provider}/${r.model}`),
    el("td", { class: "num" }, `${compact.format(r.prompt_tokens)} / ${compact.format(r.completion_tokens)}`),
    el("td", { class: r.status_code >= 400 ? "warn" : null }, String(r.status_code ?? "—")),
    el("td", { class: "num cost" }, cost(r)),
  );
}

/** "Load more": the next page under the rows already shown. */
export function wireRows() {
  $("rows-more").addEventListener("click", () => page(state.generation, true).catch((e) => console.error(e)));
}
