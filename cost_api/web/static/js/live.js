/* The live card: `GET /v1/live` (the last hour) every 5 seconds, paused while the tab is hidden,
 * the updates are paused or no valid key is known. */

import { AuthNeeded, api } from "./api.js";
import { $, el, showError } from "./dom.js";
import { money, whole } from "./format.js";
import { askForKey } from "./key.js";
import { filterParams } from "./scope.js";
import { state } from "./state.js";

const LIVE_EVERY_MS = 5000;
const LAG_WARN_SECONDS = 300;

function lag(seconds) {
  if (seconds == null) return "no requests logged yet";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

export async function loadLive() {
  let l;
  try {
    l = await api("v1/live", { tz: state.tz, ...filterParams() });
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    showError("live-error", error);
    return;
  }
  showError("live-error", null);
  $("live-spend").textContent = money(l.spend);
  $("live-rate").textContent = `${money(l.spend_rate_per_hour)}/h`;
  $("live-requests").textContent = whole.format(l.requests);
  $("live-errors").textContent = whole.format(l.errors);
  const late = l.lag_seconds == null || l.lag_seconds > LAG_WARN_SECONDS;
  $("live-lag").replaceChildren(el("span", { class: late ? "warn" : null }, lag(l.lag_seconds)), late && l.lag_seconds != null ? el("span", { class: "muted" }, " — is the gateway logging?") : "");
}

export function scheduleLive() {
  clearTimeout(state.liveTimer);
  state.liveTimer = null;
  if (state.livePaused || state.needsKey) return;
  state.liveTimer = setTimeout(async () => {
    if (!document.hidden) {
      try {
        await loadLive();
      } catch (error) {
        if (error instanceof AuthNeeded) askForKey();
      }
    }
    scheduleLive();
  }, LIVE_EVERY_MS);
}
