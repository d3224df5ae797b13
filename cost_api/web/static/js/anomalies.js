/* The anomalies card: `GET /v1/anomalies`, the incidents (each named by its root key), the largest
   dollar impact first (20 at most). */

import { AuthNeeded, api } from "./api.js";
import { $, el } from "./dom.js";
import { TZ, money, stamp } from "./format.js";
import { state } from "./state.js";

export async function loadAnomalies(gen) {
  const box = $("anomalies");
  let a;
  try {
    a = await api("v1/anomalies", { window: state.window, tz: TZ });
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    if (gen !== state.generation) return;
    box.replaceChildren(
      el("p", { class: "muted" }, error.status === 404 ? "Anomaly detection is not available on this server yet." : `Could not load anomalies: ${error.message}`),
    );
    return;
  }
  if (gen !== state.generation) return;
  const items = a.items || []; // ranked by the server: the largest impact first
  if (!items.length) {
    box.replaceChildren(el("p", { class: "muted" }, "No anomaly incidents in this window."));
    return;
  }
  const shown = items.slice(0, 20);
  box.replaceChildren(
    el(
      "div",
      { class: "scroll" },
      el(
        "table",
        { id: "anomaly-table" },
        el("caption", { class: "vh" }, "Anomaly incidents in the window, the largest impact first"),
        el("thead", {}, el("tr", {}, ["Rule", "Dimension", "Key", "Started", "Ended", "Impact", "Related"].map((h, i) => el("th", { scope: "col", class: i >= 5 ? "num" : null }, h)))),
        el(
          "tbody",
          {},
          shown.map((e) =>
            el(
              "tr",
              {},
              el("th", { scope: "row" }, (e.rule || "").replace(/_/g, " ")),
              el("td", {}, e.dimension || "—"),
              el("td", {}, el("code", {}, e.key ?? "—")),
              el("td", {}, stamp(e.started_at)),
              el("td", {}, e.ended_at ? stamp(e.ended_at) : el("strong", { class: "ongoing" }, "ongoing")),
              el("td", { class: "num" }, money(e.impact ?? e.extra ?? 0)),
              el("td", { class: "num", title: (e.related || []).join("\n") }, String((e.related || []).length)),
            ),
          ),
        ),
      ),
    ),
    items.length > shown.length ? el("p", { class: "muted" }, `and ${items.length - shown.length} smaller incidents`) : "",
  );
}
