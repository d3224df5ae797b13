/* What every card asks for: the one range of the view, pinned when the page loads (so the headline, the
 * chart and the tables cover the same instants), the zone, and the filters. */

import { FILTERS, state } from "./state.js";
import { instantOf, parseWall, wallOf } from "./zone.js";

const HOUR = 3600_000;

/** The view's range at `now` (ms): the API's range parameters, the chart's buckets, and whether the
 * chart continues with the month's projection.
 * - 24h: the 24 local hours, this one so far; 7d/30d/90d: that many local days, today so far (30d and
 *   90d continued with the month's projection, as this month).
 * - This month and month to date: `window=month` (the previous period is the same time into last month);
 *   this month's chart runs on to the month's end with the projection.
 * - Last month: `window=month` ending at this month's first instant, the whole month before.
 * - Custom: from and to, wall clock in the zone; hourly buckets up to 3 days, else daily. */
export function rangeOf(now) {
  const tz = state.tz;
  const to = Math.floor(now / 1000) * 1000;
  const w = wallOf(to, tz);
  switch (state.range) {
    case "24h":
      return { params: { from: instantOf(tz, w.y, w.m, w.d, w.h - 23), to }, interval: "hour" };
    case "7d":
    case "30d":
    case "90d": {
      const days = parseInt(state.range, 10);
      return { params: { from: instantOf(tz, w.y, w.m, w.d - (days - 1)), to }, interval: "day", projection: days >= 30 };
    }
    case "month":
      return { params: { window: "month", to }, interval: "day", projection: true };
    case "mtd":
      return { params: { window: "month", to }, interval: "day" };
    case "last-month":
      return { params: { window: "month", to: instantOf(tz, w.y, w.m, 1) }, interval: "day" };
    default: {
      const from = parseWall(state.from, tz);
      const end = parseWall(state.to, tz);
      return { params: { from, to: end }, interval: end - from <= 72 * HOUR ? "hour" : "day" };
    }
  }
}

/** The filters as API parameters (each a list: repeated in the query). */
export function filterParams() {
  return Object.fromEntries(FILTERS.filter((f) => state.filters[f].length).map((f) => [f, state.filters[f]]));
}

/** Range, zone and filters: the parameters every card's call starts from. */
export function scopeParams(range) {
  return { ...range.params, tz: state.tz, ...filterParams() };
}
