/* Export and sharing: each card's CSV button saves its route's own CSV (`format=csv`) for the view's
 * range and filters; "Copy link" copies the view's address (the zone included, for someone elsewhere);
 * "updated N s ago" says how old the figures on screen are. */

import { downloadCsv } from "./api.js";
import { $ } from "./dom.js";
import { state, viewAddress } from "./state.js";

/** Wire every `[data-csv]` button: `queryOf(name)` gives the [route, params] to export. */
export function wireExports(queryOf) {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-csv]");
    if (!button) return;
    button.disabled = true;
    try {
      await downloadCsv(...queryOf(button.dataset.csv));
    } catch (error) {
      button.title = `Could not export: ${error.message}`;
      console.warn(error);
    } finally {
      button.disabled = false;
    }
  });
  $("copy-link").addEventListener("click", copyLink);
  setInterval(showAge, 1000);
}

async function copyLink() {
  const link = viewAddress(true).href;
  const status = $("copy-status");
  status.dataset.link = link;
  try {
    await navigator.clipboard.writeText(link);
    status.textContent = "Link copied";
  } catch {
    status.textContent = `Copy this link: ${link}`; // no clipboard (a policy, an old browser): show it
  }
}

/** `updated 12 s ago`, from when the figures on screen were asked for. */
export function showAge() {
  if (!state.loadedAt) return;
  const s = Math.max(0, Math.round((Date.now() - state.loadedAt) / 1000));
  const text = s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
  $("updated").textContent = `Updated ${text} ago`;
}
