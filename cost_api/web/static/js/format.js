/* Money, numbers and times as the page shows them: `$1,847.20`, `12,345`, `1.2M`, times in the browser's zone. */

/** The browser's zone, sent as `tz` with every call (UTC where the browser has none). */
export const TZ = (() => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
})();

export const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
export const whole = new Intl.NumberFormat("en-US");
export const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
const when = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, dateStyle: "medium", timeStyle: "short" });
export const dayLabel = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, weekday: "short", day: "numeric", month: "short" });
export const hourLabel = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });

/** `$1,847.20`; `—` for a missing figure. */
export const money = (v) => (v == null ? "—" : usd.format(v));
export const pct = (v) => (v == null ? "—" : `${v.toFixed(1)}%`);
export const stamp = (iso) => (iso ? when.format(new Date(iso)) : "—");
