/* The page's state: the window (kept in the address, `/?window=7d`), the API key (kept in
 * localStorage), the live loop's timer, and the generation that drops stale answers. */

import { $ } from "./dom.js";

const KEY_STORE = "cost-api.key";
export const WINDOWS = { "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days", "90d": "last 90 days" };
export const DEFAULT_WINDOW = "30d";

export const state = {
  window: DEFAULT_WINDOW,
  key: readKey(),
  generation: 0, // the latest loadAll: answers of an older one are dropped
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

/** The window from the address (`?window=`), the radio button to match. */
export function windowFromAddress() {
  return new URL(location.href).searchParams.get("window");
}

/** Set the window (an unknown one is the default), check its radio button and, with `push`, put it in the address. */
export function setWindow(value, push) {
  state.window = Object.hasOwn(WINDOWS, value) ? value : DEFAULT_WINDOW;
  const radio = $(`w-${state.window}`);
  if (radio) radio.checked = true;
  if (push) {
    const url = new URL(location.href);
    if (state.window === DEFAULT_WINDOW) url.searchParams.delete("window");
    else url.searchParams.set("window", state.window);
    history.replaceState(null, "", url);
  }
}
