/* The tables of keys, all on the view's range and filters: by provider, by model (with the price entry
 * it matched), endpoints, tokens, by team (`/v1/spend`, the team a tag key: js/teams.js) and cache savings per endpoint (`/v1/savings`). A row's
 * key is a button: it filters the page by that key. Each table's CSV is its route's own (`format=csv`). */

import { AuthNeeded, api } from "./api.js";
import { $, change, el, fillBody, showError } from "./dom.js";
import { money, pct, rangeText, whole } from "./format.js";
import { addFilter } from "./filters.js";
import { scopeParams } from "./scope.js";
import { state } from "./state.js";

const spendCol = { head: "Spend", num: true, cell: (i) => money(i.spend) };
const changeCol = { head: "Change", num: true, cell: (i) => change(i.change_pct, i.spend) };

export const LENSES = {
  providers: {
    title: "By provider",
    route: "v1/spend",
    params: { group_by: "provider", limit: 20 },
    filter: (i) => ["provider", i.provider],
    columns: [{ head: "Provider", key: (i) => i.provider }, spendCol, { head: "Share", num: true, cell: (i) => pct(i.share_pct) }, changeCol],
  },
  models: {
    title: "By model",
    route: "v1/spend",
    params: { group_by: "model", limit: 10 },
    filter: (i) => ["model", i.model],
    columns: [
      {
        head: "Model (priced as)",
        key: (i) => `${i.provider}/${i.model}`,
        sub: (i) => (i.priced_as ? el("code", { class: "priced-as" }, i.priced_as) : el("strong", { class: "priced-as warn" }, "unpriced")),
      },
      spendCol,
      { head: "Requests", num: true, cell: (i) => whole.format(i.requests) },
    ],
  },
  endpoints: {
    title: "Endpoints",
    route: "v1/spend",
    params: { group_by: "endpoint", limit: 10 },
    filter: (i) => ["endpoint", i.endpoint],
    columns: [{ head: "Endpoint", key: (i) => i.endpoint }, spendCol, changeCol],
  },
  tokens: {
    title: "Tokens",
    route: "v1/spend",
    params: { group_by: "token", limit: 10 },
    filter: (i) => ["token", i.token],
    columns: [{ head: "Token", key: (i) => i.token }, { head: "Name", cell: (i) => i.name || "—" }, spendCol, changeCol],
  },
  teams: {
    title: "By team",
    route: "v1/spend",
    get params() {
      return { group_by: `tag:${state.teamKey}`, limit: 20 };
    },
    filter: (i) => ["tag", `${state.teamKey}:${i.tag}`],
    columns: [{ head: "Team", key: (i) => i.tag }, spendCol, { head: "Share", num: true, cell: (i) => pct(i.share_pct) }, changeCol],
  },
  savings: {
    title: "Cache savings per endpoint",
    route: "v1/savings",
    params: { group_by: "endpoint", limit: 10 },
    filter: (i) => ["endpoint", i.endpoint],
    columns: [
      { head: "Endpoint", key: (i) => i.endpoint },
      { head: "Saved", num: true, cell: (i) => money(i.saved_by_cache) },
      { head: "Hit rate", num: true, cell: (i) => pct(i.hit_rate_pct) },
      { head: "Hits / requests", num: true, cell: (i) => `${whole.format(i.cache_hits)} / ${whole.format(i.requests)}` },
    ],
  },
};

/** Each lens's card: its title, range label, CSV button and an empty table (once, at start). */
export function buildLenses() {
  for (const card of document.querySelectorAll("section[data-lens]")) {
    const name = card.dataset.lens;
    const lens = LENSES[name];
    card.replaceChildren(
      el(
        "div",
        { class: "card-head" },
        el("h2", { id: `${name}-title` }, `${lens.title} `, el("span", { class: "muted range-label", id: `${name}-range` })),
        el("p", { class: "tools" }, el("button", { type: "button", class: "secondary", "data-csv": name, "aria-label": `${lens.title} as CSV` }, "CSV")),
      ),
      el(
        "div",
        { class: "scroll" },
        el(
          "table",
          { id: name },
          el("caption", { class: "vh" }, `${lens.title} in the range; a key's button filters the page by it`),
          el("thead", {}, el("tr", {}, lens.columns.map((c) => el("th", { scope: "col", class: c.num ? "num" : null }, c.head)))),
          el("tbody"),
        ),
      ),
      el("p", { class: "muted others", id: `${name}-others` }),
      el("p", { class: "error", id: `${name}-error`, role: "alert", hidden: true }),
    );
  }
}

/** The lens's call: the view's scope and the lens's own parameters. */
export const lensQuery = (name, range) => [LENSES[name].route, { ...scopeParams(range), ...LENSES[name].params }];

export async function loadLens(name, range, gen) {
  const lens = LENSES[name];
  let body;
  try {
    body = await api(...lensQuery(name, range));
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    if (gen === state.generation) showError(`${name}-error`, error);
    return;
  }
  if (gen !== state.generation) return;
  showError(`${name}-error`, null);
  $(`${name}-range`).textContent = rangeText(body.range);
  fillBody(name, body.items.map((item) => row(lens, item)), "Nothing in this range");
  const o = body.others;
  $(`${name}-others`).textContent = o ? `and ${whole.format(o.count)} more: ${money(o.spend)} spent, ${money(o.saved_by_cache)} saved` : "";
}

function row(lens, item) {
  const [kind, value] = lens.filter(item);
  const cells = lens.columns.map((c, i) => {
    if (!c.key) return el("td", { class: c.num ? "num" : null }, c.cell(item));
    const label = c.key(item);
    const button = el("button", { type: "button", class: "key", title: `Filter the page by ${kind} ${value}` }, label);
    return el(i ? "td" : "th", { scope: i ? null : "row" }, button, c.sub ? c.sub(item) : null);
  });
  const tr = el("tr", { class: "clickable" }, cells);
  tr.addEventListener("click", () => addFilter(kind, value));
  return tr;
}
