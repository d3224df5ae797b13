/* The trend card: `GET /v1/trend` split by provider, drawn with uPlot (the vendored global
 * `uPlot`, loaded by its own script tag before this module runs) and listed in a table. */

import { AuthNeeded, Problem, api } from "./api.js";
import { fillBuckets } from "./buckets.js";
import { $, el, showError } from "./dom.js";
import { addFilter } from "./filters.js";
import { compact, dayLabel, hourLabel, money, rangeText, usd } from "./format.js";
import { loadProjection, projectedDays, projectionData, projectionSeries, projectionText } from "./projection.js";
import { filterParams, scopeParams } from "./scope.js";
import { state } from "./state.js";
import { splitFilter, splitGroup } from "./teams.js";

// Series colours: distinct, each at least 3:1 against white; `other` grey; the saved line near-black.
const PALETTE = ["#1f5fa8", "#d55e00", "#00876c", "#8e44ad", "#a86b00", "#c2185b", "#4a6d8c", "#5f7a14"];
const OTHER_COLOUR = "#8a8f98";
const ink = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim(); // follows dark mode

let chart = null; // the uPlot drawn last, resized with its card
let drawn = null; // what it was drawn from: drawn again when the colour scheme changes

export async function loadTrend(range, gen) {
  const params = { ...scopeParams(range), interval: range.interval };
  let body;
  let note = "";
  const forecast = range.projection ? loadProjection({ tz: state.tz, ...filterParams() }) : Promise.resolve(null);
  try {
    try {
      body = await api("v1/trend", { ...params, group_by: splitGroup(), top: PALETTE.length - 1 });
    } catch (error) {
      if (!(error instanceof Problem) || error.status < 500 || error.status === 503 || error.status === 504) throw error;
      body = await api("v1/trend", params); // the split failed: show the total
      note = ` (the split by ${state.split} is unavailable: ${error.message})`;
    }
  } catch (error) {
    if (error instanceof AuthNeeded) throw error;
    if (gen === state.generation) showError("trend-error", error);
    return;
  }
  const projection = await forecast;
  if (gen !== state.generation) return;
  showError("trend-error", null);
  const hour = body.interval === "hour";
  $("trend-what").textContent = `${hour ? "Hourly" : "Daily"} spend by ${state.split}`;
  $("trend-range").textContent = rangeText(body.range);
  $("trend-caption").textContent =
    `Local ${hour ? "hours" : "days"} in ${body.tz}, the first and last cut at the range's ends; bars stacked by ${state.split} ` +
    `(click one to filter by it), dashed line: saved by cache.${note}` +
    (projection ? projectionText(projection) : "");
  drawTrend(body, projection);
}

/** The key of the bar under a click (the series whose stacked band holds the pointer), or null. */
function keyAt(u, series, stacked, n) {
  const idx = u.cursor.idx;
  if (idx == null || idx >= n) return null;
  const y = u.posToVal(u.cursor.top, "y");
  const i = stacked.findIndex((sums) => y >= 0 && y <= sums[idx]);
  const s = series[i];
  return s && s.key !== "other" && s.key !== "total" ? (state.split === "team" ? s.key : s[state.split]) : null;
}

function drawTrend(body, forecast) {
  drawn = [body, forecast];
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
    fillBuckets(null);
    return;
  }
  // Bars centred in their bucket (local days may be 23 or 25 hours long).
  const actual = points.map((p) => Date.parse(p.t) / 1000);
  const ahead = projectedDays(forecast, actual); // today and the month's days after it
  const starts = ahead ? [...actual, ...ahead.slice(1).map((d) => Date.parse(d.t) / 1000)] : actual;
  const blank = Array(starts.length - actual.length).fill(null);
  const label = (i) => (hour ? hourLabel : dayLabel)(new Date(starts[i] * 1000));
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
      // whole days between ticks for daily bars (not 4 pm, 8 pm), dated in the view's zone (tzDate)
      { stroke: ink("--muted"), grid: { show: false }, ticks: { stroke: ink("--line") }, incrs: hour ? undefined : [1, 2, 7, 14, 28].map((d) => d * 86400) },
      {
        stroke: ink("--muted"),
        size: 64,
        grid: { stroke: ink("--line") },
        ticks: { show: false },
        values: (u, ticks) => ticks.map((v) => (v >= 1000 ? `$${compact.format(v)}` : usd.format(v).replace(/\.00$/, ""))),
      },
    ],
    tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), state.tz),
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
        stroke: ink("--text"),
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
  opts.hooks = {
    ready: [
      (u) =>
        u.over.addEventListener("click", () => {
          const key = keyAt(u, series, stacked, actual.length);
          if (key != null) addFilter(...splitFilter(key));
        }),
    ],
  };
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

  const ends = actual.map((t, i) => (i + 1 < actual.length ? actual[i + 1] * 1000 : Date.parse(body.range.to)));
  fillBuckets({ label, total, saved, requests, starts: actual.map((t) => t * 1000), ends, hour });
}

function chartWidth() {
  return Math.max(240, $("trend-chart").clientWidth || 600);
}
function chartHeight() {
  return window.matchMedia("(max-width: 640px)").matches ? 220 : 300;
}

/** Draw the chart again in the current colours (the system switched between light and dark). */
export function redrawTrend() {
  if (drawn) drawTrend(...drawn);
}

/** Fit the chart to its card again (the card's width changed). */
export function resizeTrend() {
  if (chart) chart.setSize({ width: chartWidth(), height: chartHeight() });
}
