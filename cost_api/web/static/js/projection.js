/* The trend's projection: `GET /v1/forecast?period=month` continues the daily chart from today to the
 * month's end as a dashed line with its shaded 80% band (docs/forecast.md). */

import { api } from "./api.js";
import { money } from "./format.js";

export const PROJECTED_COLOUR = "#1f5fa8";
const BAND_FILL = "rgba(31, 95, 168, 0.14)";

/** The month's forecast for `params` (the zone and the filters), or null when it cannot be had (the chart
 * is drawn without it). */
export async function loadProjection(params) {
  try {
    return await api("v1/forecast", { ...params, period: "month" });
  } catch {
    return null;
  }
}

/** The forecast's days from the chart's last bucket (today) on, or null when they do not line up. */
export function projectedDays(forecast, starts) {
  if (!forecast || !starts.length) return null;
  const last = starts[starts.length - 1];
  const days = forecast.days.filter((d) => Date.parse(d.t) / 1000 >= last);
  return days.length && Date.parse(days[0].t) / 1000 === last ? days : null;
}

/** The projected, low and high columns over `n` past buckets (today the last) and the days ahead. */
export function projectionData(days, n) {
  const pad = Array(n - 1).fill(null);
  return ["projected", "low", "high"].map((field) => [...pad, ...days.map((d) => d[field])]);
}

/** The uPlot series of the projection (after `first` series already declared) and their band. */
export function projectionSeries(forecast, first) {
  const whole = { projected: forecast.projected, low: forecast.low, high: forecast.high };
  const value = (field) => (u, v, si, idx) => (idx == null ? `${money(whole[field])} by month end` : v == null ? "—" : money(v));
  const edge = (label, field) => ({ label, stroke: BAND_FILL, width: 1, points: { show: false }, value: value(field) });
  return {
    series: [
      { label: "projected", stroke: PROJECTED_COLOUR, width: 2, dash: [3, 3], points: { show: false }, value: value("projected") },
      edge("80% band low", "low"),
      edge("80% band high", "high"),
    ],
    bands: [{ series: [first + 2, first + 1], fill: BAND_FILL }],
  };
}

/** The caption's sentence on the projection. */
export function projectionText(forecast) {
  return ` Dashed blue: this month projected to ${money(forecast.projected)} at its end (80% band ${money(forecast.low)}–${money(forecast.high)}).`;
}
