/* The API-key panel: shown after a 401, with a message saying whether a stored key was refused. */

import { $ } from "./dom.js";
import { state } from "./state.js";

export function askForKey() {
  state.needsKey = true;
  clearTimeout(state.liveTimer);
  document.body.dataset.state = "key-needed";
  const panel = $("key-panel");
  $("key-message").textContent = state.key
    ? "The stored API key was not accepted. Enter another; it is kept in this browser (localStorage) and sent with each data request as Authorization: Bearer."
    : "This server asks for an API key. It is kept in this browser (localStorage) and sent with each data request as Authorization: Bearer.";
  const wasHidden = panel.hidden;
  panel.hidden = false;
  if (wasHidden) $("key-input").focus();
}
