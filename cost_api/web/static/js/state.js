/* The page's state. What the viewer chose lives in the address, so a link reproduces the view:
 * `?range=7d` (or `range=custom&from=2026-11-01T00:00&to=2026-11-08T00:00`, wall clock in the zone),
 * `tz=`, the filters as the API names them (`provider=openai&token=pg_live_xy7…`, each repeatable) and
 * `split=` (the chart's series); a team is a `tag=team:search` filter. The API key lives in
 * localStorage; the rest is this page's run. */

import { knownZone, parseWall } from "./zone.js";

const KEY_STORE = "cost-api.key";

export const RANGES = {
  "24h": "Last 24 hours",
  "7d": "Last 7 days",
  "30d": "Last 30 days",
  "90d": "Last 90 days",
  month: "This month",
  mtd: "Month to date",
  "last-month": "Last month",
  custom: "Custom",
};
export const DEFAULT_RANGE = "30d";
// The filters, by their API parameter: a chip each, and what a click on a row of that key adds.
// `tag` is a token tag's `key:value` (`team:search`), as the API's `tag=` takes it.
export const FILTERS = ["provider", "model", "endpoint", "token", "tag"];
export const FILTER_LABELS = { provider: "Provider", model: "Model", endpoint: "Endpoint", token: "Token", tag: "Tag" };
// The chart's splits; `team` is `group_by=tag:<the team key>` (js/teams.js).
export const SPLITS = ["provider", "model", "endpoint", "token", "team"];

/** The browser's zone (UTC where the browser has none): the default of `tz`. */
export const BROWSER_TZ = (() => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
})();

export const state = {
  range: DEFAULT_RANGE,
  from: "", // custom range: wall clock in tz, `2026-11-01T00:00`
  to: "",
  tz: BROWSER_TZ,
  filters: Object.fromEntries(FILTERS.map((f) => [f, []])),
  split: "provider",
  teamKey: "team", // the tag key the team selector and the by-team card use: `team`, else the first key
  teamValues: [], // its values with spend in the range, from GET /v1/tags
  key: readKey(),
  generation: 0, // the latest loadAll: answers of an older one are dropped
  loadedAt: 0, // when the figures on screen were asked for (ms)
  livePaused: false,
  liveTimer: null,
  needsKey: false,
};

function readKey() {
  try {
    return localStorage.getItem(KEY_STORE) || "";
  } catch {
    return "";
  }
}

export function storeKey(key) {
  state.key = key;
  try {
    if (key) localStorage.setItem(KEY_STORE, key);
    else localStorage.removeItem(KEY_STORE);
  } catch {
    /* storage blocked: the key lives as long as the page */
  }
}

/** The state from the address; anything unknown falls back to its default. */
export function readAddress() {
  const q = new URL(location.href).searchParams;
  const range = q.get("range") || q.get("window");
  state.range = Object.hasOwn(RANGES, range) ? range : DEFAULT_RANGE;
  state.from = q.get("from") || "";
  state.to = q.get("to") || "";
  const tz = q.get("tz");
  state.tz = tz && knownZone(tz) ? tz : BROWSER_TZ;
  const [from, to] = [parseWall(state.from, state.tz), parseWall(state.to, state.tz)];
  if (state.range === "custom" && !(from != null && to != null && from < to)) state.range = DEFAULT_RANGE;
  for (const f of FILTERS) state.filters[f] = [...new Set(q.getAll(f).filter(Boolean))];
  state.split = SPLITS.includes(q.get("split")) ? q.get("split") : "provider";
}

/** The address of the view; with `full`, the zone even when it is the browser's (a link for others). */
export function viewAddress(full = false) {
  const url = new URL(location.href);
  url.search = "";
  const q = url.searchParams;
  if (state.range !== DEFAULT_RANGE) q.set("range", state.range);
  if (state.range === "custom") {
    q.set("from", state.from);
    q.set("to", state.to);
  }
  if (full || state.tz !== BROWSER_TZ) q.set("tz", state.tz);
  for (const f of FILTERS) for (const v of state.filters[f]) q.append(f, v);
  if (state.split !== "provider") q.set("split", state.split);
  return url;
}

/** Put the state in the address (a new history entry: Back returns to the previous view). */
export function writeAddress() {
  const url = viewAddress();
  if (url.href !== location.href) history.pushState(null, "", url);
}
