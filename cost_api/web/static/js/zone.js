/* Wall-clock arithmetic in any IANA zone (the zone the viewer picks, not only the browser's): the parts
 * of an instant in a zone, and the instant of a zone's wall-clock time. Intl only, no zone database. */

const partsFormat = new Map();

function formatter(tz) {
  if (!partsFormat.has(tz)) {
    const options = { timeZone: tz, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" };
    partsFormat.set(tz, new Intl.DateTimeFormat("en-US", options));
  }
  return partsFormat.get(tz);
}

/** `{y, m (0-11), d, h, mi, s}`: the wall clock of `ms` in `tz`. */
export function wallOf(ms, tz) {
  const parts = {};
  for (const p of formatter(tz).formatToParts(new Date(ms))) parts[p.type] = Number(p.value);
  return { y: parts.year, m: parts.month - 1, d: parts.day, h: parts.hour % 24, mi: parts.minute, s: parts.second };
}

/** The zone's offset at `ms`, in milliseconds (wall clock − UTC). */
function offset(ms, tz) {
  const w = wallOf(ms, tz);
  return Date.UTC(w.y, w.m, w.d, w.h, w.mi, w.s) - Math.floor(ms / 1000) * 1000;
}

/** The instant of wall-clock time `y-m-d h:mi` in `tz` (months and days may overflow, as in Date.UTC).
 * A time the clocks skip (a DST gap) gives the instant the clocks jump at or after it. */
export function instantOf(tz, y, m, d, h = 0, mi = 0) {
  const wall = Date.UTC(y, m, d, h, mi);
  let guess = wall - offset(wall, tz);
  guess = wall - offset(guess, tz);
  return guess;
}

/** True when `tz` is a zone this browser knows. */
export function knownZone(tz) {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

/** `2026-12-04T09:30`: the wall clock of `ms` in `tz`, as a datetime-local input holds it. */
export function wallText(ms, tz) {
  const w = wallOf(ms, tz);
  const two = (n) => String(n).padStart(2, "0");
  return `${w.y}-${two(w.m + 1)}-${two(w.d)}T${two(w.h)}:${two(w.mi)}`;
}

/** The instant of a datetime-local value (`2026-12-04T09:30`) in `tz`, or null when it is not one. */
export function parseWall(text, tz) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(text || "");
  return m ? instantOf(tz, +m[1], +m[2] - 1, +m[3], +m[4], +m[5]) : null;
}
