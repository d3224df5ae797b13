/* The trend card: `GET /v1/trend` split by provider, drawn with uPlot (the vendored global
 * `uPlot`, loaded by its own script tag before this module runs) and listed in a table. */

import { AuthNeeded, Problem, api } from "./api.js";
import { $, el, fillBody, showError } from "./dom.js";
import { TZ, compact, dayLabel, hourLabel, money, usd, whole } from "./format.js";
import { loadProjection, projectedDays, projectionData, projectionSeries, projectionText } from "./projection.js";
import { state } from "./state.js";

// Series colours: distinct, each at least 3:1 against white; `other` grey; the saved line near-black.
const PALETTE = ["#1f5fa8", "#d55e00", "#00876c", "#8e44ad", "#a86b00", "#c2185b", "#4a6d8c", "#5f7a14"];
const OTHER_COLOUR = "#8a8f98";
const SAVED_COLOUR = "#1b1f24";

let chart = null; // the uPlot drawn last, resized with its card

/** The trend's range: whole local days (today so far), or whole hours for 24h. */
function trendParams() {
  const from = new Date();
  if (state.window === "24h") {
    from.setMinutes(0, 0, 0);
    from.setHours(from.getHours() - 23);
    return { interval: "hour", from: from.getTime() };
  }
  from.setHours(0, 0, 0, 0);
  from.setDate(from.getDate() - (parseInt(state.window, 10) - 1));
  return { interval: "day", from: from.getTime() };
}

export async function loadTrend(gen) {
  const params = { ...trendParams(), tz: TZ };
  let body;
  let note = "";
  const forecast = params.interval === "day" ? loadProjection(TZ) : Promise.resolve(null);
  try {
    try {
      body = await api("v1/trend", { ...params, group_by: "provider", top: PALETTE.length - 1 });
    } catch (error) {
      if (!(error instanceof Problem) || error.status < 500 || error.status === 503 || error.status === 504) throw error;
      body = await api("v1/trend", params); // the split failed: show the total
      note = ` (the split by provider is unavailable: ${error.message})`;
    }
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    if (gen === state.generation) showError("trend-error", error);
    return;
  }
  const projection = await forecast;
  if (gen !== state.generation) return;
  showError("trend-error", null);
  const days = state.window === "24h" ? null : parseInt(state.window, 10);
  $("trend-title").textContent = body.interval === "hour" ? "Hourly spend by provider" : "Daily spend by provider";
  $("trend-caption").textContent =
    (days ? `${days} local days, today so far` : "24 local hours, this hour so far") +
    `; bars stacked by provider, dashed line: saved by cache. Times in ${body.tz}.${note}` +
    (projection ? projectionText(projection) : "");
  drawTrend(body, projection);
}

function drawTrend(body, forecast) {
  // Series that spent nothing in the range (an `other` of $0, say) only crowd the legend.
  const spent = body.series.filter((s) => s.points.some((p) => p.spend > 0));
  const series = spent.length ? spent : body.series.slice(0, 1);
  const points = series.length ? series[0].points : [];
  const hour = body.interval === "hour";
  const host = $("trend-chart");
  if (chart) chart.destroy();
  chart = null;
  if (!points.length) {
    host.replaceChildren(el("p", { class: "muted" }, "Nothing was logged in this range."));
    host.setAttribute("aria-label", "Nothing was logged in this range.");
    host.dataset.drawn = "0";
    fillBody("trend-table", [], "No buckets");
    return;
  }
  // Bars centred in their bucket (local days may be 23 or 25 hours long).
  const actual = points.map((p) => Date.parse(p.t) / 1000);
  const ahead = projectedDays(forecast, actual); // today and the month's days after it
  const starts = ahead ? [...actual, ...ahead.slice(1).map((d) => Date.parse(d.t) / 1000)] : actual;
  const blank = Array(starts.length - actual.length).fill(null);
  const label = (i) => (hour ? hourLabel : dayLabel).format(new Date(starts[i] * 1000));
  const end = starts.length ? starts[starts.length - 1] + (hour ? 3600 : 86400) : 0; // the last bucket's end, near enough
  const xs = starts.map((t, i) => ((i + 1 < starts.length ? starts[i + 1] : end) + t) / 2);
  const spend = series.map((s) => s.points.map((p) => p.spend));
  const saved = points.map((_, i) => body.series.reduce((sum, s) => sum + s.points[i].saved_by_cache, 0));
  const total = points.map((_, i) => spend.reduce((sum, values) => sum + values[i], 0));
  const requests = points.map((_, i) => body.series.reduce((sum, s) => sum + s.points[i].requests, 0));

  // Stacked by drawing the running sums, the tallest first, each opaque over the one before.
  const stacked = [];
  let running = points.map(() => 0);
  for (const values of spend) {
    running = running.map((v, i) => v + values[i]);
    stacked.push(running);
  }
  const colour = (s, i) => (s.key === "other" ? OTHER_COLOUR : PALETTE[i % PALETTE.length]);
  const order = series.map((_, i) => i).reverse();
  const projected = ahead ? projectionSeries(forecast, order.length + 2) : { series: [], bands: [] };
  const raw = [null, ...order.map((i) => spend[i]), saved];
  const sum = (values) => values.reduce((a, b) => a + b, 0);
  // The legend shows the hovered bucket, else the whole range's totals.
  const legendValue = (u, v, si, idx) => (idx >= actual.length ? "—" : money(idx == null ? sum(raw[si]) : raw[si][idx]));
  const bars = window.uPlot.paths.bars({ size: [0.75, 48], align: 0 });
  const opts = {
    width: chartWidth(),
    height: chartHeight(),
    scales: {
      x: { time: true, range: () => (starts.length ? [starts[0], end] : [0, 1]) }, // whole first and last bars
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] },
    },
    axes: [
      { stroke: "#3d444d", grid: { show: false }, ticks: { stroke: "#c9ced6" } },
      {
        stroke: "#3d444d",
        size: 64,
        grid: { stroke: "#e6e9ee" },
        ticks: { show: false },
        values: (u, ticks) => ticks.map((v) => (v >= 1000 ? `$${compact.format(v)}` : usd.format(v).replace(/\.00$/, ""))),
      },
    ],
    legend: { live: true },
    bands: projected.bands,
    cursor: { y: false, points: { show: false }, drag: { x: false, y: false } },
    series: [
      { label: hour ? "Hour" : "Day", value: (u, v, si, i) => (i == null ? "all" : label(i)) },
      ...order.map((i) => ({
        label: series[i].key === "total" ? "spend" : series[i].key,
        stroke: colour(series[i], i),
        fill: colour(series[i], i),
        width: 0,
        paths: bars,
        points: { show: false },
        value: legendValue,
      })),
      {
        label: "saved by cache",
        stroke: SAVED_COLOUR,
        width: 2,
        dash: [6, 4],
        points: { show: false },
        value: legendValue,
      },
      ...projected.series,
    ],
  };
  const extra = ahead ? projectionData(ahead, actual.length) : [];
  const data = [xs, ...order.map((i) => [...stacked[i], ...blank]), [...saved, ...blank], ...extra];
  host.replaceChildren();
  chart = new window.uPlot(opts, data, host);
  host.dataset.drawn = String(points.length);
  const peak = total.indexOf(Math.max(...total));
  host.setAttribute(
    "aria-label",
    `Bars of spend per ${hour ? "hour" : "day"} stacked by ${series.map((s) => s.key).join(", ")}: ` +
      `${money(sum(total))} in all, the most on ${label(peak)} (${money(total[peak])}); ` +
      `saved by cache ${money(sum(saved))}. The table below lists every ${hour ? "hour" : "day"}.`,
  );

  fillBody(
    "trend-table",
    points.map((_, i) =>
      el("tr", {}, el("th", { scope: "row" }, label(i)), el("td", { class: "num" }, money(total[i])), el("td", { class: "num" }, money(saved[i])), el("td", { class: "num" }, whole.format(requests[i]))),
    ),
    "No buckets",
  );
}

function chartWidth() {
  return Math.max(240, $("trend-chart").clientWidth || 600);
}
function chartHeight() {
  return window.matchMedia("(max-width: 640px)").matches ? 220 : 300;
}

/** Fit the chart to its card again (the card's width changed). */
export function resizeTrend() {
  if (chart) chart.setSize({ width: chartWidth(), height: chartHeight() });
}
