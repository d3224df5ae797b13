/* The API: GET a /v1 route with the stored key; a 401 is `AuthNeeded`, any other failure a `Problem`.
 * `downloadCsv` saves a route's own CSV (`format=csv`) the same way, key included. At most
 * `AT_ONCE` calls are in flight: the server runs `max_concurrent_queries` (default 4) heavy queries at
 * once and sheds the rest with a 503, and a view asks a dozen routes. */

import { state } from "./state.js";

export class AuthNeeded extends Error {}

export class Problem extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** The URL of a /v1 route (relative to the page, so the dashboard works under a path prefix too); a list
 * value is repeated (`provider=a&provider=b`), a null one left out. */
export function apiUrl(path, params = {}) {
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one != null) url.searchParams.append(name, String(one));
    }
  }
  return url;
}

const AT_ONCE = 3;
let running = 0;
const waiting = [];

/** Run `call` in one of the AT_ONCE slots (a freed slot passes straight to the next waiting call). */
async function inSlot(call) {
  if (running < AT_ONCE) running++;
  else await new Promise((resolve) => waiting.push(resolve));
  try {
    return await call();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

async function get(path, params, accept) {
  const headers = { Accept: accept };
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  let response;
  try {
    response = await fetch(apiUrl(path, params), { headers, cache: "no-store" });
  } catch {
    throw new Problem(0, "the server did not answer");
  }
  if (response.status === 401) throw new AuthNeeded();
  if (!response.ok) {
    let detail = response.statusText || `HTTP ${response.status}`;
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || detail;
    } catch {
      /* not a problem document */
    }
    throw new Problem(response.status, detail);
  }
  return response;
}

/** GET a /v1 route's JSON. */
export async function api(path, params = {}) {
  return inSlot(async () => (await get(path, params, "application/json")).json());
}

/** Save the CSV of a /v1 route under the name the server gives (`Content-Disposition`). */
export async function downloadCsv(path, params) {
  const [disposition, blob] = await inSlot(async () => {
    const response = await get(path, { ...params, format: "csv" }, "text/csv");
    return [response.headers.get("content-disposition") || "", await response.blob()];
  });
  const named = /filename="([^"]+)"/.exec(disposition);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = named ? named[1] : "export.csv";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}
