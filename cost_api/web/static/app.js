/* cost-api dashboard: reads the public /v1 JSON routes and fills in index.html. No build step.
 *
 * Every call carries `tz` (the browser's zone) and, once one has been entered, the API key as
 * `Authorization: Bearer <key>` (kept in localStorage). A 401 shows the key form. Each section loads
 * on its own: one failing route leaves the others standing. See docs/dashboard.md.
 */
(() => {
  "use strict";

  const KEY_STORE = "cost-api.key";
  const WINDOWS = { "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days", "90d": "last 90 days" };
  const DEFAULT_WINDOW = "30d";
  const LIVE_EVERY_MS = 5000;
  const LAG_WARN_SECONDS = 300;
  const TZ = (() => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    } catch {
      return "UTC";
    }
  })();
  // Series colours: distinct, each at least 3:1 against white; `other` grey; the saved line near-black.
  const PALETTE = ["#1f5fa8", "#d55e00", "#00876c", "#8e44ad", "#a86b00", "#c2185b", "#4a6d8c", "#5f7a14"];
  const OTHER_COLOUR = "#8a8f98";
  const SAVED_COLOUR = "#1b1f24";
  // `data_quality.reasons`: why a logged request is in no figure (docs/api.md).
  const LEFT_OUT = {
    negative_tokens: (n) => `${n} with a negative token count`,
    missing_provider_or_model: (n) => `${n} without provider or model`,
    future_created_at: (n, q) => `${n} dated in the future (after ${stamp(q.future_after)}, the whole log)`,
  };

  const $ = (id) => document.getElementById(id);
  const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  const whole = new Intl.NumberFormat("en-US");
  const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
  const when = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, dateStyle: "medium", timeStyle: "short" });
  const dayLabel = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, weekday: "short", day: "numeric", month: "short" });
  const hourLabel = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });

  /** `$1,847.20`; `—` for a missing figure. */
  const money = (v) => (v == null ? "—" : usd.format(v));
  const pct = (v) => (v == null ? "—" : `${v.toFixed(1)}%`);
  const stamp = (iso) => (iso ? when.format(new Date(iso)) : "—");

  const state = {
    window: DEFAULT_WINDOW,
    key: readKey(),
    generation: 0, // the latest loadAll: answers of an older one are dropped
    livePaused: false,
    liveTimer: null,
    needsKey: false,
    chart: null,
  };

  // ---- the API ------------------------------------------------------------------------------

  class AuthNeeded extends Error {}
  class Problem extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  function readKey() {
    try {
      return localStorage.getItem(KEY_STORE) || "";
    } catch {
      return "";
    }
  }

  function storeKey(key) {
    state.key = key;
    try {
      if (key) localStorage.setItem(KEY_STORE, key);
      else localStorage.removeItem(KEY_STORE);
    } catch {
      /* storage blocked: the key lives as long as the page */
    }
  }

  /** GET a /v1 route (relative to the page, so the dashboard works under a path prefix too). */
  async function api(path, params = {}) {
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

  // ---- small DOM helpers --------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value == null || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child != null) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function fillBody(table, rows, emptyText) {
    const body = $(table).tBodies[0];
    const columns = $(table).tHead.rows[0].cells.length;
    body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, emptyText))]));
  }

  function showError(id, error) {
    const node = $(id);
    if (!node) return;
    if (!error) {
      node.hidden = true;
      node.textContent = "";
      return;
    }
    node.hidden = false;
    node.textContent = error.status === 503 ? `The database is unavailable (${error.message}); retry shortly.` : `Could not load: ${error.message}`;
  }

  /** `↑ 13.1%` / `↓ 71.7%`; `new` where nothing was spent before. The arrow is spelled out for screen readers. */
  function change(changePct, spend) {
    if (changePct == null) return el("span", { class: "muted" }, spend ? "new" : "—");
    const dir = changePct > 0 ? "up" : changePct < 0 ? "down" : "flat";
    const arrow = { up: "↑", down: "↓", flat: "→" }[dir];
    return el("span", { class: `change ${dir}` }, el("span", { "aria-hidden": "true" }, arrow), el("span", { class: "vh" }, dir), ` ${Math.abs(changePct).toFixed(1)}%`);
  }

  function bar(percent, status) {
    const fill = el("span", { class: `fill ${status || ""}` });
    fill.style.width = `${Math.max(0, Math.min(100, percent || 0))}%`;
    return el("span", { class: "bar", "aria-hidden": "true" }, fill);
  }

  // ---- sections -----------------------------------------------------------------------------

  async function loadSummary(gen) {
    let s;
    try {
      s = await api("v1/summary", { window: state.window, tz: TZ, top: 5 });
    } catch (error) {
      if (error instanceof AuthNeeded) throw error;
      if (gen === state.generation) showError("headline-error", error);
      return;
    }
    if (gen !== state.generation) return;
    showError("headline-error", null);
    $("range").textContent = `${stamp(s.range.from)} → ${stamp(s.range.to)} · ${TZ}`;
    $("headline-window").textContent = WINDOWS[state.window];
    $("total").textContent = money(s.spend);
    $("saved").replaceChildren(money(s.saved_by_cache), s.saved_pct == null ? "" : el("span", { class: "muted" }, ` ${pct(s.saved_pct)} of spend`));
    const changeNode = $("change");
    if (s.change_pct == null && !s.previous.spend) {
      changeNode.replaceChildren(el("span", { class: "muted" }, s.spend ? "nothing spent before" : "—"));
    } else {
      const dir = s.change > 0 ? "up" : s.change < 0 ? "down" : "flat";
      changeNode.replaceChildren(
        el(
          "span",
          { class: `change ${dir}` },
          el("span", { "aria-hidden": "true" }, { up: "↑", down: "↓", flat: "→" }[dir]),
          el("span", { class: "vh" }, dir),
          ` ${money(Math.abs(s.change))}`,
          s.change_pct == null ? "" : ` (${s.change_pct > 0 ? "+" : ""}${s.change_pct.toFixed(1)}%)`,
        ),
        el("span", { class: "muted" }, ` from ${money(s.previous.spend)}`),
      );
    }
    $("requests").replaceChildren(whole.format(s.requests), el("span", { class: "muted" }, ` ${whole.format(s.cache_hits)} cache hits`));

    fillBody(
      "providers",
      s.by_provider.map((p) =>
        el("tr", {}, el("th", { scope: "row" }, p.provider), el("td", { class: "num" }, money(p.spend)), el("td", { class: "num" }, el("span", { class: "share" }, bar(p.share_pct), pct(p.share_pct)))),
      ),
      "No spend in this window",
    );
    fillBody(
      "endpoints",
      s.top_endpoints.items.map((e) =>
        el("tr", {}, el("th", { scope: "row" }, el("code", {}, e.endpoint)), el("td", { class: "num" }, money(e.spend)), el("td", { class: "num" }, change(e.change_pct, e.spend))),
      ),
      "No spend in the last 7 days",
    );
    fillBody(
      "tokens",
      s.top_tokens.items.map((t) =>
        el(
          "tr",
          { class: "token-row" },
          el("th", { scope: "row" }, el("code", { class: "token" }, t.token)),
          el("td", { class: t.name ? "name" : "name muted" }, t.name || "—"),
          el("td", { class: "num" }, money(t.spend)),
          el("td", { class: "num" }, change(t.change_pct, t.spend)),
        ),
      ),
      "No spend in the last 7 days",
    );
    renderPricing(s.pricing);
    renderDataQuality(s.data_quality);
    $("freshness").textContent = `As of ${stamp(s.as_of)} · newest request ${s.latest_request_at ? stamp(s.latest_request_at) : "none yet"} · times in ${TZ}`;
  }

  /** A visible line when the window's figures leave logged requests out (bad rows), else nothing. */
  function renderDataQuality(q) {
    const node = $("data-quality");
    if (!q || !q.excluded_requests) {
      node.hidden = true;
      node.textContent = "";
      return;
    }
    const parts = Object.entries(q.reasons)
      .filter(([, n]) => n)
      .map(([reason, n]) => (LEFT_OUT[reason] || ((k) => `${k} ${reason.replace(/_/g, " ")}`))(whole.format(n), q));
    const count = whole.format(q.excluded_requests);
    node.textContent = `${count} logged request${q.excluded_requests === 1 ? " is" : "s are"} in no figure: ${parts.join("; ")}. The audit rows (/v1/requests) show which.`;
    node.hidden = false;
  }

  /** What the coverage figure alone would hide: requests with estimated usage, and requests priced at
   * standard rates for lack of a rate for their service tier. Hidden when there are none. */
  function renderPricingCaveats(pricing) {
    const node = $("pricing-caveats");
    const estimated = pricing.estimated_requests || 0;
    const standard = pricing.no_tier_rate_requests || 0;
    const parts = [];
    if (estimated) {
      parts.push(
        `${whole.format(estimated)} request${estimated === 1 ? "" : "s"} with estimated usage: the gateway could not confirm ${estimated === 1 ? "its" : "their"} token counts (a stream cut before its usage report), so ${estimated === 1 ? "its" : "their"} cost may be understated`,
      );
    }
    if (standard) {
      const tiers = (pricing.no_tier_rate || []).map((t) => `${t.provider}/${t.model} ${t.service_tier}`);
      const shown = tiers.slice(0, 3).join(", ") + (tiers.length > 3 ? `, and ${tiers.length - 3} more` : "");
      parts.push(
        `${whole.format(standard)} request${standard === 1 ? "" : "s"} priced at standard rates: the price table has no rate for ${standard === 1 ? "its" : "their"} service tier (${shown})`,
      );
    }
    node.textContent = parts.length ? `${parts.join(". ")}.` : "";
    node.hidden = !parts.length;
  }

  function renderPricing(pricing) {
    $("coverage").textContent = pct(pricing.coverage_pct);
    $("pricing-version").textContent = `Price table ${pricing.version}`;
    renderPricingCaveats(pricing);
    const box = $("unpriced");
    if (!pricing.unpriced.length) {
      box.replaceChildren(el("p", { class: "muted" }, "Every model called in this window has a price."));
      return;
    }
    box.replaceChildren(
      el(
        "div",
        { class: "callout", role: "note", "aria-labelledby": "unpriced-title" },
        el("h3", { id: "unpriced-title" }, pricing.unpriced.length === 1 ? "An unpriced model" : `${pricing.unpriced.length} unpriced models`),
        el("p", {}, "Their requests are in no spend figure until the price table knows them:"),
        el(
          "ul",
          {},
          pricing.unpriced.map((u) =>
            el(
              "li",
              {},
              el("code", {}, `${u.provider}/${u.model}`),
              ` — ${whole.format(u.requests)} requests, ${compact.format(u.prompt_tokens)} prompt + ${compact.format(u.completion_tokens)} completion tokens`,
            ),
          ),
        ),
      ),
    );
  }

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

  async function loadTrend(gen) {
    const params = { ...trendParams(), tz: TZ };
    let body;
    let note = "";
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
    if (gen !== state.generation) return;
    showError("trend-error", null);
    const days = state.window === "24h" ? null : parseInt(state.window, 10);
    $("trend-title").textContent = body.interval === "hour" ? "Hourly spend by provider" : "Daily spend by provider";
    $("trend-caption").textContent =
      (days ? `${days} local days, today so far` : "24 local hours, this hour so far") +
      `; bars stacked by provider, dashed line: saved by cache. Times in ${body.tz}.${note}`;
    drawTrend(body);
  }

  function drawTrend(body) {
    // Series that spent nothing in the range (an `other` of $0, say) only crowd the legend.
    const spent = body.series.filter((s) => s.points.some((p) => p.spend > 0));
    const series = spent.length ? spent : body.series.slice(0, 1);
    const points = series.length ? series[0].points : [];
    const hour = body.interval === "hour";
    const host = $("trend-chart");
    if (state.chart) state.chart.destroy();
    state.chart = null;
    if (!points.length) {
      host.replaceChildren(el("p", { class: "muted" }, "Nothing was logged in this range."));
      host.setAttribute("aria-label", "Nothing was logged in this range.");
      host.dataset.drawn = "0";
      fillBody("trend-table", [], "No buckets");
      return;
    }
    // Bars centred in their bucket (local days may be 23 or 25 hours long).
    const starts = points.map((p) => Date.parse(p.t) / 1000);
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
    const raw = [null, ...order.map((i) => spend[i]), saved];
    const sum = (values) => values.reduce((a, b) => a + b, 0);
    // The legend shows the hovered bucket, else the whole range's totals.
    const legendValue = (u, v, si, idx) => money(idx == null ? sum(raw[si]) : raw[si][idx]);
    const bars = uPlot.paths.bars({ size: [0.75, 48], align: 0 });
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
      ],
    };
    const data = [xs, ...order.map((i) => stacked[i]), saved];
    host.replaceChildren();
    state.chart = new uPlot(opts, data, host);
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

  async function loadBudgets(gen) {
    let b;
    try {
      b = await api("v1/budgets");
    } catch (error) {
      if (error instanceof AuthNeeded) throw error;
      if (gen !== state.generation) return;
      fillBody("budgets", [], error.status === 404 ? "Budgets are not available on this server." : "—");
      if (error.status !== 404) showError("budgets-error", error);
      return;
    }
    if (gen !== state.generation) return;
    showError("budgets-error", null);
    const icon = { ok: "✓", warning: "⚠", exceeded: "✕" };
    fillBody(
      "budgets",
      b.items.map((item) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, el("code", {}, item.endpoint), el("span", { class: "muted period" }, ` per ${item.period}`)),
          el("td", {}, el("span", { class: "used" }, bar(item.used_pct, item.status), el("span", { class: "num" }, pct(item.used_pct)))),
          el("td", { class: "num" }, `${money(item.spent)} / ${money(item.limit_usd)}`),
          el("td", {}, el("span", { class: `status ${item.status}` }, el("span", { "aria-hidden": "true" }, `${icon[item.status] || ""} `), item.status), el("span", { class: "muted resets" }, ` resets ${stamp(item.resets_at)}`)),
        ),
      ),
      "No budgets configured.",
    );
    const age = b.age_seconds == null ? "" : `Figures ${Math.round(b.age_seconds)} s old`;
    $("budgets-note").textContent = b.stale ? `${age} — stale: the database could not be read.` : age;
  }

  async function loadAnomalies(gen) {
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
    const items = [...(a.items || [])].sort((x, y) => (y.started_at || "").localeCompare(x.started_at || ""));
    if (!items.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No anomaly episodes in this window."));
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
          el("caption", { class: "vh" }, "Anomaly episodes in the window, newest first"),
          el("thead", {}, el("tr", {}, ["Rule", "Dimension", "Key", "Started", "Ended", "Peak", "Spend"].map((h, i) => el("th", { scope: "col", class: i >= 5 ? "num" : null }, h)))),
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
                el("td", { class: "num" }, e.peak_ratio == null ? "—" : `×${e.peak_ratio.toFixed(1)}`),
                el("td", { class: "num" }, money(e.spend)),
              ),
            ),
          ),
        ),
      ),
      items.length > shown.length ? el("p", { class: "muted" }, `and ${items.length - shown.length} earlier episodes`) : "",
    );
  }

  function lag(seconds) {
    if (seconds == null) return "no requests logged yet";
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
    return `${Math.round(seconds / 86400)} days`;
  }

  async function loadLive() {
    let l;
    try {
      l = await api("v1/live", { tz: TZ });
    } catch (error) {
      if (error instanceof AuthNeeded) throw error;
      showError("live-error", error);
      return;
    }
    showError("live-error", null);
    $("live-spend").textContent = money(l.spend);
    $("live-rate").textContent = `${money(l.spend_rate_per_hour)}/h`;
    $("live-requests").textContent = whole.format(l.requests);
    $("live-errors").textContent = whole.format(l.errors);
    const late = l.lag_seconds == null || l.lag_seconds > LAG_WARN_SECONDS;
    $("live-lag").replaceChildren(el("span", { class: late ? "warn" : null }, lag(l.lag_seconds)), late && l.lag_seconds != null ? el("span", { class: "muted" }, " — is the gateway logging?") : "");
  }

  // ---- the live loop, the key form, the window selector -------------------------------------

  function scheduleLive() {
    clearTimeout(state.liveTimer);
    state.liveTimer = null;
    if (state.livePaused || state.needsKey) return;
    state.liveTimer = setTimeout(async () => {
      if (!document.hidden) {
        try {
          await loadLive();
        } catch (error) {
          if (error instanceof AuthNeeded) askForKey();
        }
      }
      scheduleLive();
    }, LIVE_EVERY_MS);
  }

  function askForKey() {
    state.needsKey = true;
    clearTimeout(state.liveTimer);
    document.body.dataset.state = "key-needed";
    const panel = $("key-panel");
    $("key-message").textContent = state.key
      ? "The stored API key was not accepted. Enter another; it is kept in this browser (localStorage) and sent with each data request as Authorization: Bearer."
      : "This server asks for an API key. It is kept in this browser (localStorage) and sent with each data request as Authorization: Bearer.";
    const wasHidden = panel.hidden;
    panel.hidden = false;
    if (wasHidden) $("key-input").focus();
  }

  async function loadAll() {
    const gen = ++state.generation;
    document.body.dataset.state = "loading";
    const results = await Promise.allSettled([loadSummary(gen), loadTrend(gen), loadLive(), loadBudgets(gen), loadAnomalies(gen)]);
    if (gen !== state.generation) return;
    if (results.some((r) => r.status === "rejected" && r.reason instanceof AuthNeeded)) {
      askForKey();
      return;
    }
    for (const r of results) if (r.status === "rejected") console.error(r.reason);
    state.needsKey = false;
    $("key-panel").hidden = true;
    $("forget-key").hidden = !state.key;
    document.body.dataset.state = "ready";
    scheduleLive();
  }

  function setWindow(value, push) {
    state.window = Object.hasOwn(WINDOWS, value) ? value : DEFAULT_WINDOW;
    const radio = $(`w-${state.window}`);
    if (radio) radio.checked = true;
    if (push) {
      const url = new URL(location.href);
      if (state.window === DEFAULT_WINDOW) url.searchParams.delete("window");
      else url.searchParams.set("window", state.window);
      history.replaceState(null, "", url);
    }
  }

  function start() {
    setWindow(new URL(location.href).searchParams.get("window"), false);
    $("window-form").addEventListener("change", (event) => {
      if (event.target.name !== "window") return;
      setWindow(event.target.value, true);
      loadAll();
    });
    $("window-form").addEventListener("submit", (event) => event.preventDefault());
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) return;
      storeKey(key);
      $("key-input").value = "";
      $("key-panel").hidden = true;
      $("main").focus();
      loadAll();
    });
    $("forget-key").addEventListener("click", () => {
      storeKey("");
      loadAll();
    });
    $("live-toggle").addEventListener("click", () => {
      state.livePaused = !state.livePaused;
      $("live-toggle").setAttribute("aria-pressed", String(state.livePaused));
      $("live-toggle").textContent = state.livePaused ? "Resume updates" : "Pause updates";
      $("live-status").textContent = state.livePaused ? "Paused" : "Updates every 5 seconds";
      scheduleLive();
    });
    let resizeFrame = 0;
    new ResizeObserver(() => {
      cancelAnimationFrame(resizeFrame);
      resizeFrame = requestAnimationFrame(() => state.chart && state.chart.setSize({ width: chartWidth(), height: chartHeight() }));
    }).observe($("trend-chart"));
    loadAll();
  }

  start();
})();
