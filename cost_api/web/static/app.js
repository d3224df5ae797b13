/* cost-api dashboard: reads the public /v1 JSON routes and fills in index.html. Native ES modules,
 * no build step: this entry module wires the page; the cards live under js/.
 *
 * Every call carries `tz` (the browser's zone) and, once one has been entered, the API key as
 * `Authorization: Bearer <key>` (kept in localStorage). A 401 shows the key form. Each section loads
 * on its own: one failing route leaves the others standing. See docs/dashboard.md.
 */

import { AuthNeeded } from "./js/api.js";
import { loadAnomalies } from "./js/anomalies.js";
import { loadBudgets } from "./js/budgets.js";
import { $ } from "./js/dom.js";
import { askForKey } from "./js/key.js";
import { loadLive, scheduleLive } from "./js/live.js";
import { setWindow, state, storeKey, windowFromAddress } from "./js/state.js";
import { loadSummary } from "./js/summary.js";
import { loadTrend, resizeTrend } from "./js/trend.js";

async function loadAll() {
  const gen = ++state.generation;
  document.body.dataset.state = "loading";
  const results = await Promise.allSettled([loadSummary(gen), loadTrend(gen), loadLive(), loadBudgets(gen), loadAnomalies(gen)]);
  if (gen !== state.generation) return;
  if (results.some((r) => r.status === "rejected" && r.reason instanceof AuthNeeded)) {
    askForKey();
    return;
  }
  for (const r of results) if (r.status === "rejected") console.error(r.reason);
  state.needsKey = false;
  $("key-panel").hidden = true;
  $("forget-key").hidden = !state.key;
  document.body.dataset.state = "ready";
  scheduleLive();
}

function start() {
  setWindow(windowFromAddress(), false);
  $("window-form").addEventListener("change", (event) => {
    if (event.target.name !== "window") return;
    setWindow(event.target.value, true);
    loadAll();
  });
  $("window-form").addEventListener("submit", (event) => event.preventDefault());
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
  loadAll();
}

start();
