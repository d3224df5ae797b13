/* Money, numbers and times as the page shows them: `$1,847.20`, `12,345`, `1.2M`, times in the view's zone. */

import { state } from "./state.js";

export const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
export const whole = new Intl.NumberFormat("en-US");
export const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

const STYLES = {
  when: { dateStyle: "medium", timeStyle: "short" },
  day: { weekday: "short", day: "numeric", month: "short" },
  hour: { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" },
};
const made = new Map();

/** A date formatter of `style` in the view's zone. */
function inZone(style) {
  const id = `${style} ${state.tz}`;
  if (!made.has(id)) made.set(id, new Intl.DateTimeFormat("en-GB", { timeZone: state.tz, ...STYLES[style] }));
  return made.get(id);
}

/** `$1,847.20`; `—` for a missing figure. */
export const money = (v) => (v == null ? "—" : usd.format(v));
export const pct = (v) => (v == null ? "—" : `${v.toFixed(1)}%`);
export const stamp = (iso) => (iso ? inZone("when").format(new Date(iso)) : "—");
export const dayLabel = (date) => inZone("day").format(date);
export const hourLabel = (date) => inZone("hour").format(date);

/** `4 Dec 2026, 00:00 → 4 Dec 2026, 23:24`: an answer's `range`, for the label of its card. */
export const rangeText = (range) => (range ? `${stamp(range.from)} → ${stamp(range.to)}` : "");
