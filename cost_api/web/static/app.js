/* cost-api dashboard: reads the public /v1 JSON routes and fills in index.html. Native ES modules,
 * no build step: this entry module wires the page; the cards live under js/.
 *
 * The view (range, zone, filters, the chart's split) lives in the address (js/state.js); every card
 * asks for the same range, pinned when the page loads (js/scope.js). The API key, once entered, goes
 * as `Authorization: Bearer <key>` (kept in localStorage); a 401 shows the key form. Each card loads
 * on its own: one failing route leaves the others standing. See docs/dashboard.md.
 */

import { AuthNeeded } from "./js/api.js";
import { loadAnomalies } from "./js/anomalies.js";
import { loadBudgets } from "./js/budgets.js";
import { buildControls, showControls } from "./js/controls.js";
import { $ } from "./js/dom.js";
import { showAge, wireExports } from "./js/export.js";
import { buildFilters, showChips } from "./js/filters.js";
import { askForKey } from "./js/key.js";
import { LENSES, buildLenses, lensQuery, loadLens } from "./js/lenses.js";
import { loadLive, scheduleLive } from "./js/live.js";
import { loadRows, rowsQuery, wireRows } from "./js/rows.js";
import { rangeOf, scopeParams } from "./js/scope.js";
import { readAddress, state, storeKey, writeAddress } from "./js/state.js";
import { loadSummary } from "./js/summary.js";
import { buildTeams, loadTeams, splitGroup } from "./js/teams.js";
import { loadTrend, redrawTrend, resizeTrend } from "./js/trend.js";

let range = null; // the range on screen, pinned at the last load

async function loadAll() {
  const gen = ++state.generation;
  range = rangeOf(Date.now());
  document.body.dataset.state = "loading";
  showControls();
  showChips();
  // The team key comes first: the by-team card and the chart's team split ask by it.
  const teams = loadTeams(range, gen);
  const loads = [
    teams,
    loadSummary(range, gen),
    teams.then(() => loadTrend(range, gen)),
    loadLive(),
    loadBudgets(gen),
    loadAnomalies(range, gen),
    loadRows(range, gen),
    ...Object.keys(LENSES).map((name) => (name === "teams" ? teams.then(() => loadLens(name, range, gen)) : loadLens(name, range, gen))),
  ];
  const results = await Promise.allSettled(loads);
  if (gen !== state.generation) return;
  if (results.some((r) => r.status === "rejected" && r.reason instanceof AuthNeeded)) {
    askForKey();
    return;
  }
  for (const r of results) if (r.status === "rejected") console.error(r.reason);
  state.needsKey = false;
  state.loadedAt = Date.now();
  showAge();
  $("key-panel").hidden = true;
  $("forget-key").hidden = !state.key;
  document.body.dataset.state = "ready";
  scheduleLive();
}

/** A change made on the page: into the address (a new history entry), then the figures. */
function changed() {
  writeAddress();
  loadAll();
}

/** What a card's CSV button exports: its own query with the most rows a page of the API holds. */
function csvQuery(name) {
  if (name === "trend") return ["v1/trend", { ...scopeParams(range), interval: range.interval, group_by: splitGroup(), top: 7 }];
  const [route, params] = name === "rows" ? rowsQuery(range) : lensQuery(name, range);
  return [route, { ...params, limit: 1000 }];
}

function start() {
  readAddress();
  buildControls(changed);
  buildFilters(changed);
  buildTeams();
  buildLenses();
  wireRows();
  wireExports(csvQuery);
  window.addEventListener("popstate", () => {
    readAddress();
    loadAll();
  });
  $("refresh").addEventListener("click", loadAll);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    storeKey(key);
    $("key-input").value = "";
    $("key-panel").hidden = true;
    $("main").focus();
    loadAll();
  });
  $("forget-key").addEventListener("click", () => {
    storeKey("");
    loadAll();
  });
  $("live-toggle").addEventListener("click", () => {
    state.livePaused = !state.livePaused;
    $("live-toggle").setAttribute("aria-pressed", String(state.livePaused));
    $("live-toggle").textContent = state.livePaused ? "Resume updates" : "Pause updates";
    $("live-status").textContent = state.livePaused ? "Paused" : "Updates every 5 seconds";
    scheduleLive();
  });
  let resizeFrame = 0;
  new ResizeObserver(() => {
    cancelAnimationFrame(resizeFrame);
    resizeFrame = requestAnimationFrame(resizeTrend);
  }).observe($("trend-chart"));
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawTrend);
  loadAll();
}

start();
