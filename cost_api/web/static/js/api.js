/* The API: GET a /v1 route with the stored key; a 401 is `AuthNeeded`, any other failure a `Problem`. */

import { state } from "./state.js";

export class AuthNeeded extends Error {}

export class Problem extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** GET a /v1 route (relative to the page, so the dashboard works under a path prefix too). */
export async function api(path, params = {}) {
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    if (value != null) url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json" };
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  let response;
  try {
    response = await fetch(url, { headers, cache: "no-store" });
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
  return response.json();
}
