// The i3lab dashboard: runs, run, compare, sweeps, sweep and cluster pages over the HTTP API
// (docs/api.md).
// Plain DOM code. User text (run names, tags, configs, samples, console lines) only ever goes
// into the page as text (el() sets textContent), never as HTML.
"use strict";

const COLORS = ["#3b6fe0", "#e0603b", "#2a9d5c", "#9b4fd6", "#d6a400", "#1aa3b8", "#c2407a", "#6b7a1f"];
const ROW_HEIGHT = 30;

// --- small helpers ---------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k === "style") e.style.cssText = v;  // CSSOM: the page's CSP forbids style attributes
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

// Aborted when the page is left: its requests stop, and a page function awaiting one ends there
// (the AbortError is not shown) instead of drawing into the next page or opening a stream.
let pageAbort = new AbortController();

async function api(path, options) {
  const signal = pageAbort.signal;
  const res = await fetch(path, { ...options, signal });
  const type = res.headers.get("Content-Type") || "";
  const body = type.startsWith("application/json") ? await res.json() : await res.text();
  if (signal.aborted) throw new DOMException("the page was left", "AbortError");
  if (!res.ok) throw new Error((body && body.error) || `HTTP ${res.status}`);
  return body;
}

// An error for the person, unless it only says the page was left (api()).
function report(err) { if (err.name !== "AbortError") toast(err.message); }

function toast(message) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 5000);
}

const fmt = I3Chart.fmt;
function fmtTime(unix) { return unix ? new Date(unix * 1000).toLocaleString() : "–"; }
function fmtDuration(s) {
  if (!isFinite(s) || s < 0) return "–";
  s = Math.round(s);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`
       : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}
function statusBadge(status) { return el("span", { class: "status status-" + String(status).replace(/[^a-z-]/g, ""), text: status }); }
function valueText(v) { return v === null || v === undefined ? "" : typeof v === "number" ? fmt(v) : typeof v === "string" ? v : JSON.stringify(v); }

// A table.data: the header texts, then its rows (<tr> elements).
function dataTable(attrs, headers, rows) {
  return el("table", { class: "data", ...attrs },
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))), el("tbody", {}, ...rows));
}

// Flattens a nested config into {"a.b": value}.
function flatten(obj, prefix = "", out = {}) {
  if (obj && typeof obj === "object" && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj)) flatten(v, prefix ? prefix + "." + k : k, out);
  } else out[prefix] = obj;
  return out;
}

// --- live updates: one EventSource per page, closed when the page changes --------------------

let pageCleanup = [];
function onPageLeave(f) { pageCleanup.push(f); }
function live(path, handlers) {
  const source = new EventSource(path);
  const dot = document.getElementById("live");
  source.onopen = () => dot.classList.add("on");
  source.onerror = () => dot.classList.remove("on");
  for (const [event, f] of Object.entries(handlers)) source.addEventListener(event, f);
  onPageLeave(() => source.close());
}

// Runs `f` at most once per `ms`, and once more after the last call.
function throttle(f, ms) {
  let waiting = false, again = false;
  return function run() {
    if (waiting) { again = true; return; }
    waiting = true;
    Promise.resolve(f()).catch(() => {}).finally(() => setTimeout(() => { waiting = false; if (again) { again = false; run(); } }, ms));
  };
}

// --- routing ---------------------------------------------------------------------------------

function navigate(url) {
  history.pushState(null, "", url);
  route();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a");
  if (!a || a.target || a.hasAttribute("download") || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", route);

function route() {
  pageAbort.abort();
  pageAbort = new AbortController();
  for (const f of pageCleanup) f();
  pageCleanup = [];
  const main = document.getElementById("main");
  main.replaceChildren();
  const path = location.pathname;
  const section = path.startsWith("/runs/") ? "runs" : path.startsWith("/compare") ? "compare" : path.startsWith("/cluster") ? "cluster"
    : path.startsWith("/sweeps") ? "sweeps" : "runs";
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === section);
  const run = path.match(/^\/runs\/(\d+)$/), sweep = path.match(/^\/sweeps\/(\d+)$/);
  const page = run ? runPage(main, Number(run[1]))
    : sweep ? sweepPage(main, Number(sweep[1]))
    : path === "/sweeps" ? sweepsPage(main)
    : path === "/compare" ? comparePage(main, new URLSearchParams(location.search))
    : path === "/cluster" ? clusterPage(main)
    : runsPage(main);
  Promise.resolve(page).catch((err) => {
    if (err.name !== "AbortError") main.append(el("p", { class: "error", text: String(err.message || err) }));
  });
}

// --- runs page ---------------------------------------------------------------------------------

const runsState = { sortKey: "created_at", desc: true, columns: null, groupBy: "", selected: new Set(), where: "", search: "" };

async function runsPage(main) {
  document.title = "Runs · i3lab";
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem("i3lab.runs") || "{}"); } catch (err) { /* damaged: defaults */ }
  Object.assign(runsState, saved, { selected: runsState.selected });
  const save = () => localStorage.setItem("i3lab.runs", JSON.stringify({ sortKey: runsState.sortKey, desc: runsState.desc, columns: runsState.columns, groupBy: runsState.groupBy, where: runsState.where }));

  const count = el("span", { class: "muted" });
  const search = el("input", { type: "search", placeholder: "search names and tags", "aria-label": "search runs", value: runsState.search });
  const where = el("input", { type: "text", placeholder: "filter: config.optim.lr>=0.001; status=finished", "aria-label": "filter runs", value: runsState.where, class: "wide" });
  const groupSel = el("select", { "aria-label": "group by" });
  const colBtn = el("button", { type: "button", text: "Columns…" });
  const cmpBtn = el("button", { type: "button", text: "Compare selected" });
  const colPanel = el("div", { class: "panel hidden", role: "group", "aria-label": "columns" });
  const head = el("div", { class: "vhead", role: "row" });
  const body = el("div", { class: "vbody", tabindex: "0", role: "rowgroup", "aria-label": "runs" });
  const spacer = el("div", { class: "vspacer" });
  const rowsEl = el("div", { class: "vrows" });
  body.append(spacer, rowsEl);
  main.append(
    el("div", { class: "toolbar" }, el("h1", { text: "Runs" }), count, search, where, el("label", {}, "group ", groupSel), colBtn, cmpBtn),
    colPanel,
    el("div", { class: "vtable", role: "table" }, head, body));

  let runs = [], rows = [], valueKeys = [], keysShown = null, shownVersion = null;
  const fixed = [
    { key: "name", label: "Name", width: 220 }, { key: "status", label: "Status", width: 100 },
    { key: "project", label: "Project", width: 110 }, { key: "tags", label: "Tags", width: 140 },
    { key: "created_at", label: "Created", width: 160 }, { key: "runtime", label: "Runtime", width: 80 }];
  const cell = (r, key) => {
    if (key === "runtime") return (r.finished_at || (r.status === "running" ? Date.now() / 1000 : r.heartbeat_at)) - r.created_at;
    if (key in r && key !== "values") return r[key];
    return r.values[key];
  };

  function columns() {
    if (!runsState.columns && valueKeys.length)  // the first summaries, once there are any
      runsState.columns = valueKeys.filter((k) => k.startsWith("summary.") && !k.endsWith(".best") && !k.includes("system/")).slice(0, 6);
    return fixed.concat((runsState.columns || []).filter((k) => valueKeys.includes(k)).map((k) => ({ key: k, label: k.replace(/^(config|summary)\./, ""), width: 120, title: k })));
  }

  // The runs in the chosen order, sorted when the list or the order changes; a search keystroke
  // only filters them.
  let sorted = [];
  const collator = new Intl.Collator();
  function sortRuns() {
    const k = runsState.sortKey, dir = runsState.desc ? -1 : 1;
    sorted = runs.slice().sort((a, b) => {
      const x = cell(a, k), y = cell(b, k);
      if (x === undefined || x === null) return 1;
      if (y === undefined || y === null) return -1;
      return (typeof x === "number" && typeof y === "number" ? x - y : collator.compare(String(x), String(y))) * dir;
    });
  }

  function filterAndGroup() {
    const q = search.value.trim().toLowerCase();
    const list = q ? sorted.filter((r) => r.name.toLowerCase().includes(q) || (r.tags || []).some((t) => String(t).toLowerCase().includes(q)) || String(r.id) === q) : sorted;
    rows = [];
    if (runsState.groupBy) {
      const groups = new Map();
      for (const r of list) {
        const g = runsState.groupBy === "tags" ? (r.tags || []).join(", ") || "(no tags)" : runsState.groupBy === "group" ? r.group || "(no group)" : valueText(r.values[runsState.groupBy]) || "(none)";
        if (!groups.has(g)) groups.set(g, []);
        groups.get(g).push(r);
      }
      for (const [g, members] of groups) {
        rows.push({ isGroup: true, group: g, count: members.length });
        for (const m of members) rows.push(m);
      }
    } else rows = list;
    count.textContent = `${list.length} of ${runs.length} runs`;
  }

  function renderHead() {
    head.replaceChildren(el("span", { class: "vcell check", role: "columnheader" }, ""));
    for (const c of columns()) {
      const arrow = runsState.sortKey === c.key ? (runsState.desc ? " ▼" : " ▲") : "";
      head.append(el("button", {
        type: "button", class: "vcell sort", role: "columnheader", style: `width:${c.width}px`, title: c.title || c.label, text: c.label + arrow,
        onclick: () => { runsState.desc = runsState.sortKey === c.key ? !runsState.desc : c.key === "created_at"; runsState.sortKey = c.key; save(); sortRuns(); refresh(); },
      }));
    }
  }

  // Virtual scrolling: only the rows in view (plus a margin) exist in the page. A scroll that
  // keeps the same rows in view draws nothing; redraw() draws what changed underneath.
  let drawn = "";
  function redraw() { drawn = ""; renderRows(); }
  function renderRows() {
    const first = Math.max(0, Math.floor(body.scrollTop / ROW_HEIGHT) - 10);
    const last = Math.min(rows.length, first + Math.ceil(body.clientHeight / ROW_HEIGHT) + 20);
    if (drawn === `${first}:${last}`) return;
    drawn = `${first}:${last}`;
    const cols = columns();
    const total = cols.reduce((w, c) => w + c.width, 36);
    spacer.style.height = rows.length * ROW_HEIGHT + "px";
    spacer.style.width = total + "px";
    head.style.width = total + "px";
    const out = [];
    for (let i = first; i < last; ++i) {
      const r = rows[i];
      const top = `top:${i * ROW_HEIGHT}px;width:${total}px`;
      if (r.isGroup) { out.push(el("div", { class: "vrow grouprow", style: top, role: "row" }, el("strong", { text: r.group }), el("span", { class: "muted", text: ` ${r.count} runs` }))); continue; }
      const row = el("div", { class: "vrow" + (runsState.selected.has(r.id) ? " selected" : ""), style: top, role: "row", "data-run": r.id });
      const box = el("input", { type: "checkbox", "aria-label": "select " + r.name, onchange: () => { box.checked ? runsState.selected.add(r.id) : runsState.selected.delete(r.id); row.classList.toggle("selected", box.checked); } });
      box.checked = runsState.selected.has(r.id);
      row.append(el("span", { class: "vcell check" }, box));
      for (const c of cols) {
        const v = cell(r, c.key);
        let content;
        if (c.key === "name") content = el("a", { href: `/runs/${r.id}`, text: r.name || `run ${r.id}` });
        else if (c.key === "status") content = statusBadge(r.status);
        else if (c.key === "tags") content = (r.tags || []).map((t) => el("span", { class: "tag", text: t }));
        else if (c.key === "created_at") content = fmtTime(v);
        else if (c.key === "runtime") content = fmtDuration(v);
        else content = valueText(v);
        row.append(el("span", { class: "vcell" + (typeof v === "number" ? " num" : ""), style: `width:${c.width}px`, role: "cell" }, content));
      }
      out.push(row);
    }
    rowsEl.replaceChildren(...out);
  }

  function renderColumnPanel() {
    colPanel.replaceChildren(el("p", { class: "muted", text: "Columns from the runs' config and summaries:" }));
    for (const k of valueKeys) {
      const box = el("input", { type: "checkbox", onchange: () => {
        const set = new Set(runsState.columns);
        box.checked ? set.add(k) : set.delete(k);
        runsState.columns = valueKeys.filter((x) => set.has(x));
        save(); renderHead(); redraw();
      } });
      box.checked = (runsState.columns || []).includes(k);
      colPanel.append(el("label", { class: "colpick" }, box, " " + k));
    }
  }

  function renderGroupOptions() {
    const current = runsState.groupBy;
    groupSel.replaceChildren(el("option", { value: "", text: "(none)" }), el("option", { value: "group", text: "run group" }), el("option", { value: "tags", text: "tags" }),
      ...valueKeys.filter((k) => k.startsWith("config.")).map((k) => el("option", { value: k, text: k })));
    groupSel.value = current;
  }

  function refresh() { filterAndGroup(); renderHead(); redraw(); }

  async function load() {
    const params = new URLSearchParams({ view: "flat" });
    for (const w of where.value.split(";").map((s) => s.trim()).filter(Boolean)) params.append("where", w);
    try {
      const res = await api("/api/v1/runs?" + params);
      where.classList.remove("invalid");
      runs = res.runs;
      shownVersion = res.version;
    } catch (err) {
      where.classList.add("invalid");
      report(err);
      return;
    }
    const keys = new Set();
    for (const r of runs) for (const k of Object.keys(r.values)) keys.add(k);
    valueKeys = [...keys].sort();
    const keysChanged = valueKeys.join("\n") !== keysShown;  // the options and panel, only then
    keysShown = valueKeys.join("\n");
    if (keysChanged) renderGroupOptions();
    sortRuns();
    refresh();
    if (keysChanged && !colPanel.classList.contains("hidden")) renderColumnPanel();
  }

  body.addEventListener("scroll", () => { head.style.transform = `translateX(${-body.scrollLeft}px)`; renderRows(); });
  window.addEventListener("resize", renderRows);
  onPageLeave(() => window.removeEventListener("resize", renderRows));
  search.addEventListener("input", () => { runsState.search = search.value; refresh(); });
  where.addEventListener("change", () => { runsState.where = where.value; save(); load(); });
  groupSel.addEventListener("change", () => { runsState.groupBy = groupSel.value; save(); refresh(); });
  colBtn.addEventListener("click", () => { colPanel.classList.toggle("hidden"); renderColumnPanel(); });
  cmpBtn.addEventListener("click", () => {
    if (runsState.selected.size < 1) return toast("select runs with their check boxes first");
    navigate("/compare?runs=" + [...runsState.selected].join(","));
  });
  await load();
  // For bench/web/runs_page.py (and anyone's devtools): the list is fetched and its rows exist.
  performance.mark("i3lab:runs-rendered");
  // While runs train, the list changes with every point: read it again at most every 3 s. The
  // stream's first event is the version the list was read at, unless something changed since.
  const reload = throttle(load, 3000);
  live("/api/v1/stream", { runs: (e) => { if (JSON.parse(e.data) !== shownVersion) reload(); } });
}

// --- run page ----------------------------------------------------------------------------------

async function runPage(main, id) {
  let run = await api(`/api/v1/runs/${id}`);
  document.title = `${run.name} · i3lab`;
  const state = { smoothing: Number(localStorage.getItem("i3lab.smoothing") || 0.6), log: false, x: "step", charts: new Map() };

  const header = el("div", { class: "runhead" });
  function renderHeader() {
    const end = run.finished_at || (run.status === "running" ? Date.now() / 1000 : run.heartbeat_at);
    header.replaceChildren(
      el("h1", {}, el("span", { text: run.name }), " ", statusBadge(run.status)),
      el("p", { class: "muted" },
        `run ${run.id} · ${run.uid} · project ${run.project}` + (run.group ? ` · group ${run.group}` : "") + ` · started ${fmtTime(run.created_at)} · ${fmtDuration(end - run.created_at)}`),
      el("p", {}, ...(run.tags || []).map((t) => el("span", { class: "tag", text: t }))),
      ...(run.notes ? [el("p", { class: "notes", text: run.notes })] : []));
  }
  renderHeader();

  const smooth = el("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: String(state.smoothing), "aria-label": "smoothing" });
  const smoothVal = el("span", { class: "muted", text: String(state.smoothing) });
  const logBox = el("input", { type: "checkbox", "aria-label": "log scale" });
  const xSel = el("select", { "aria-label": "x axis" }, el("option", { value: "step", text: "step" }), el("option", { value: "time", text: "wall time" }), el("option", { value: "tokens", text: "tokens" }));
  const chartsEl = el("div", { class: "charts" });
  const systemEl = el("div", { class: "charts" });
  const tablesEl = el("div");
  const histEl = el("div");
  const artifactsEl = el("div");
  const consoleEl = el("pre", { class: "console", tabindex: "0", "aria-label": "console output" });
  const configEl = el("pre", { class: "config" });
  main.append(header,
    el("div", { class: "toolbar" }, el("label", {}, "smoothing ", smooth, smoothVal), el("label", {}, logBox, " log scale"), el("label", {}, "x-axis ", xSel),
      el("a", { href: `/api/v1/runs/${id}/history.csv`, download: "", text: "history.csv" })),
    el("section", {}, el("h2", { text: "Metrics" }), chartsEl),
    el("section", {}, el("h2", { text: "System" }), systemEl),
    el("section", {}, el("h2", { text: "Samples and tables" }), tablesEl),
    el("section", {}, el("h2", { text: "Histograms" }), histEl),
    el("section", {}, el("h2", { text: "Config" }), configEl),
    el("section", {}, el("h2", { text: "Artifacts" }), artifactsEl),
    el("section", {}, el("h2", { text: "Console" }), consoleEl));
  configEl.textContent = JSON.stringify(run.config, null, 2);

  // Charts: one per key, each re-querying the server for its visible range (full fidelity).
  let tokenMap = null;  // step → tokens, from train/tokens_seen, for the tokens x-axis
  async function loadTokenMap() {
    const key = run.keys.find((k) => k.endsWith("tokens_seen"));
    if (!key) { tokenMap = null; return; }
    const res = await api(`/api/v1/runs/${id}/series?key=${encodeURIComponent(key)}&buckets=2000`);
    tokenMap = res.series[key].map((b) => [b[1], b[4]]);
  }
  const stepToTokens = (step) => {
    if (!tokenMap || !tokenMap.length) return step;
    let lo = 0, hi = tokenMap.length - 1;
    if (step <= tokenMap[0][0]) return tokenMap[0][1] * (step / Math.max(1, tokenMap[0][0]));
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; tokenMap[mid][0] <= step ? (lo = mid) : (hi = mid - 1); }
    const a = tokenMap[lo], b = tokenMap[Math.min(lo + 1, tokenMap.length - 1)];
    return b[0] === a[0] ? a[1] : a[1] + ((step - a[0]) / (b[0] - a[0])) * (b[1] - a[1]);
  };
  const tokensToStep = (t) => {
    if (!tokenMap || !tokenMap.length) return t;
    for (let i = 0; i < tokenMap.length; ++i) if (tokenMap[i][1] >= t) return tokenMap[i][0];
    return tokenMap[tokenMap.length - 1][0];
  };

  function makeChart(container, key) {
    const box = el("div", { class: "chart", "data-key": key });
    const title = el("div", { class: "charttitle", text: key });
    box.append(title);
    container.append(box);
    const c = { key, zoom: null, box, ticket: 0 };
    c.chart = new I3Chart.LineChart(box, {
      onZoom: (a, z) => { c.zoom = a === null ? null : [a, z]; loadChart(c); },
      xLabel: (v) => state.x === "time" ? fmtDuration(v) : fmt(Math.round(v)),
    });
    c.chart.setSmoothing(state.smoothing);
    state.charts.set(key, c);
    onPageLeave(() => c.chart.destroy());
    return c;
  }

  const bucketsFor = (c) => Math.max(50, Math.min(2000, Math.round(c.box.clientWidth || 600)));
  // Draws a chart's buckets with x as the axis shows it.
  function showSeries(c, b) {
    const x = b.map((r) => state.x === "time" ? r[5] - run.created_at : state.x === "tokens" ? stepToTokens(r[1]) : r[1]);
    c.chart.setSeries([{ label: c.key, color: COLORS[0], x, min: b.map((r) => r[2]), max: b.map((r) => r[3]), last: b.map((r) => r[4]) }]);
    c.box.dataset.loaded = String(b.length);
  }

  // One chart, zoomed or not. Its ticket drops an answer that a later request overtook.
  async function loadChart(c) {
    const ticket = ++c.ticket;
    const p = new URLSearchParams({ key: c.key, buckets: String(bucketsFor(c)) });
    if (c.zoom) {
      if (state.x === "time") { p.set("x", "time"); p.set("from", String(run.created_at + c.zoom[0])); p.set("to", String(run.created_at + c.zoom[1])); }
      else if (state.x === "tokens") { p.set("from", String(Math.floor(tokensToStep(c.zoom[0])))); p.set("to", String(Math.ceil(tokensToStep(c.zoom[1])))); }
      else { p.set("from", String(Math.floor(c.zoom[0]))); p.set("to", String(Math.ceil(c.zoom[1]))); }
    }
    const res = await api(`/api/v1/runs/${id}/series?` + p);
    if (ticket === c.ticket) showSeries(c, res.series[c.key] || []);
  }

  async function loadCharts() {
    for (const key of run.keys) {
      if (state.charts.has(key)) continue;
      makeChart(key.startsWith("system/") ? systemEl : chartsEl, key);
    }
    if (state.x === "tokens") await loadTokenMap();
    // The charts not zoomed in, 64 keys per request (the API's most), not one request each: a
    // live run refreshes them all on every change.
    const whole = [...state.charts.values()].filter((c) => !c.zoom);
    const groups = [];
    for (let i = 0; i < whole.length; i += 64) groups.push(whole.slice(i, i + 64));
    await Promise.all(groups.map(async (group) => {
      const tickets = group.map((c) => ++c.ticket);
      const p = new URLSearchParams({ buckets: String(bucketsFor(group[0])) });
      for (const c of group) p.append("key", c.key);
      const res = await api(`/api/v1/runs/${id}/series?` + p);
      group.forEach((c, i) => { if (tickets[i] === c.ticket) showSeries(c, res.series[c.key] || []); });
    }));
  }

  smooth.addEventListener("input", () => {
    state.smoothing = Number(smooth.value);
    smoothVal.textContent = smooth.value;
    localStorage.setItem("i3lab.smoothing", smooth.value);
    for (const c of state.charts.values()) c.chart.setSmoothing(state.smoothing);
  });
  logBox.addEventListener("change", () => { for (const c of state.charts.values()) c.chart.setLog(logBox.checked); });
  xSel.addEventListener("change", async () => {
    state.x = xSel.value;
    for (const c of state.charts.values()) c.zoom = null;
    await loadCharts();
  });

  // Tables (the trainer's generation samples): a step slider per table.
  const TABLE_ROWS = 1000;
  const tableViews = new Map();
  async function loadTables() {
    for (const name of run.tables) {
      let v = tableViews.get(name);
      if (!v) {
        const slider = el("input", { type: "range", min: "0", max: "0", value: "0", "aria-label": `step of table ${name}` });
        const stepLabel = el("span", { class: "muted" });
        const holder = el("div", { class: "tablewrap" });
        v = { name, slider, stepLabel, holder, steps: [], follow: true };
        tablesEl.append(el("div", { class: "tableview", "data-table": name }, el("h3", { text: name }), el("label", {}, "step ", slider, " ", stepLabel), holder));
        slider.addEventListener("input", () => { v.follow = Number(slider.value) === v.steps.length - 1; showTable(v, v.steps[Number(slider.value)]); });
        tableViews.set(name, v);
      }
      const t = await api(`/api/v1/runs/${id}/table?name=${encodeURIComponent(name)}`);
      v.steps = t.steps;
      v.slider.max = String(t.steps.length - 1);
      if (v.follow) { v.slider.value = String(t.steps.length - 1); renderTable(v, t); }
    }
  }
  async function showTable(v, step) {
    const ticket = v.ticket = (v.ticket || 0) + 1;  // a slider dragged fast: the newest step wins
    const t = await api(`/api/v1/runs/${id}/table?name=${encodeURIComponent(v.name)}&step=${step}`);
    if (ticket === v.ticket) renderTable(v, t);
  }
  function renderTable(v, t) {
    v.stepLabel.textContent = `${t.step} (${Number(v.slider.value) + 1} of ${v.steps.length})`;
    if (!Array.isArray(t.columns)) { v.holder.replaceChildren(el("p", { class: "error", text: t.error || "damaged table" })); return; }
    // At most TABLE_ROWS rows in the page: a table may hold 4 MB of small cells.
    const shown = t.rows.slice(0, TABLE_ROWS);
    v.holder.replaceChildren(dataTable({}, t.columns.map(valueText), shown.map((r) => el("tr", {}, ...r.map((c) => el("td", { text: valueText(c) }))))),
      ...(t.rows.length > shown.length ? [el("p", { class: "muted", text: `the first ${shown.length} of ${t.rows.length} rows` })] : []));
    v.holder.dataset.step = String(t.step);
  }

  // Histograms: a heat map of the chosen key over steps.
  const histSel = el("select", { "aria-label": "histogram" });
  const histCanvas = el("canvas", { class: "heatmap", role: "img", "aria-label": "histogram heat map" });
  histEl.append(el("label", {}, "tensor ", histSel), el("div", { class: "heatwrap" }, histCanvas));
  async function loadHistograms() {
    if (!run.histograms.length) { histEl.classList.add("hidden"); return; }
    histEl.classList.remove("hidden");
    const current = histSel.value;
    if (histSel.options.length !== run.histograms.length)
      histSel.replaceChildren(...run.histograms.map((k) => el("option", { value: k, text: k })));
    histSel.value = current && run.histograms.includes(current) ? current : run.histograms[0];
    const res = await api(`/api/v1/runs/${id}/histograms?key=${encodeURIComponent(histSel.value)}&steps=200`);
    histCanvas.setAttribute("aria-label", `histograms of ${histSel.value} over ${res.histograms.length} steps`);
    I3Chart.heatmap(histCanvas, res.histograms);
  }
  histSel.addEventListener("change", loadHistograms);

  async function loadArtifacts() {
    const mine = await api(`/api/v1/artifacts?run=${encodeURIComponent(run.uid)}`);
    if (!mine.length) { artifactsEl.replaceChildren(el("p", { class: "muted", text: "none" })); return; }
    artifactsEl.replaceChildren(dataTable({}, ["artifact", "type", "aliases", "size", "lineage", "files"],
      mine.map((v) => el("tr", {},
        el("td", { text: `${v.name}:${v.version}` }), el("td", { text: v.type }),
        el("td", {}, ...(v.aliases || []).map((a) => el("span", { class: "tag", text: a }))),
        el("td", { class: "num", text: fmtBytes(v.size) }),
        el("td", { text: v.run_uid === run.uid ? `logged here; used by ${(v.used_by || []).length} runs` : `used here; logged by ${v.run_uid || "–"}` }),
        el("td", {}, ...(v.files || []).map((f) => el("div", {}, el("a", { href: `/api/v1/artifact/file?ref=${encodeURIComponent(v.name + ":" + v.version)}&path=${encodeURIComponent(f.path)}`, download: "", text: f.path }))))))));
  }

  // The console keeps its newest CONSOLE_LINES lines in the page (the API keeps them all), so
  // a run printing a million lines does not grow the page without end.
  const CONSOLE_LINES = 5000;
  let consoleSeq = -1;
  async function loadConsole() {
    for (let page = 0; page < 20; ++page) {
      const lines = await api(`/api/v1/runs/${id}/console?after=${consoleSeq}&limit=1000`);
      if (!lines.length) break;
      const atBottom = consoleEl.scrollTop + consoleEl.clientHeight >= consoleEl.scrollHeight - 4;
      consoleEl.append(...lines.map((l) => el("span", { class: l.stream === "stderr" ? "stderr" : "", text: l.line + "\n" })));
      for (let extra = consoleEl.childElementCount - CONSOLE_LINES; extra > 0; --extra) consoleEl.firstElementChild.remove();
      consoleSeq = lines[lines.length - 1].seq;
      if (atBottom) consoleEl.scrollTop = consoleEl.scrollHeight;
      if (lines.length < 1000) break;
    }
  }

  // Charts, tables and the console follow every change; histograms (hundreds of bins per
  // step) and artifacts (checkpoints) change rarely: read them again at most every 10 s, and
  // when the run's status or histogram keys change.
  let slowAt = Date.now();
  async function refresh() {
    const before = run;
    run = await api(`/api/v1/runs/${id}`);
    renderHeader();
    configEl.textContent = JSON.stringify(run.config, null, 2);
    const slow = Date.now() - slowAt > 10000 || before.status !== run.status || before.histograms.length !== run.histograms.length;
    if (slow) slowAt = Date.now();
    await Promise.all([loadCharts(), loadTables(), loadConsole(), ...(slow ? [loadHistograms(), loadArtifacts()] : [])]);
  }
  await Promise.all([loadCharts(), loadTables(), loadHistograms(), loadConsole(), loadArtifacts()]);
  const follow = throttle(() => refresh().catch((e) => report(e)), 500);
  live(`/api/v1/runs/${id}/stream`, { run: (e) => { if (JSON.parse(e.data) !== run.version) follow(); } });
}

function fmtBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; ++i; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

// --- compare page ------------------------------------------------------------------------------

async function comparePage(main, params) {
  document.title = "Compare · i3lab";
  const ids = (params.get("runs") || "").split(",").map(Number).filter((n) => n > 0).slice(0, 50);
  main.append(el("h1", { text: "Compare" }));
  if (!ids.length) { main.append(el("p", { class: "muted", text: "Select runs on the Runs page and press “Compare selected”." })); return; }
  const runs = await Promise.all(ids.map((id) => api(`/api/v1/runs/${id}`)));
  const legend = el("div", { class: "legend" }, ...runs.map((r, i) => el("a", { href: `/runs/${r.id}`, class: "legenditem", style: `border-color:${COLORS[i % COLORS.length]}`, text: r.name })));
  main.append(legend);

  // Overlay: every key some run has, one chart each, a line per run.
  const keys = [...new Set(runs.flatMap((r) => r.keys))].filter((k) => !k.startsWith("system/")).sort();
  const charts = el("div", { class: "charts" });
  main.append(el("section", {}, el("h2", { text: "Metrics" }), charts));
  // A run's series for `wanted` keys, 64 keys per request (the API's most), over [a, z] if given.
  async function read(r, wanted, a, z) {
    const out = {};
    for (let i = 0; i < wanted.length; i += 64) {
      const p = new URLSearchParams({ buckets: "600" });
      for (const k of wanted.slice(i, i + 64)) p.append("key", k);
      if (a !== null && a !== undefined) { p.set("from", String(Math.floor(a))); p.set("to", String(Math.ceil(z))); }
      Object.assign(out, (await api(`/api/v1/runs/${r.id}/series?` + p)).series);
    }
    return out;
  }
  const lines = (key, perRun) => runs.map((r, i) => {
    const b = perRun[i][key];
    return b && { label: r.name, color: COLORS[i % COLORS.length], x: b.map((q) => q[1]), min: b.map((q) => q[2]), max: b.map((q) => q[3]), last: b.map((q) => q[4]) };
  }).filter(Boolean);
  const shown = new Map();
  for (const key of keys) {
    const box = el("div", { class: "chart", "data-key": key }, el("div", { class: "charttitle", text: key }));
    charts.append(box);
    // A zoom reads this chart again, from each run that has the key.
    const chart = new I3Chart.LineChart(box, {
      onZoom: async (a, z) => chart.setSeries(lines(key, await Promise.all(runs.map((r) => r.keys.includes(key) ? read(r, [key], a, z) : {})))),
    });
    chart.setSmoothing(Number(localStorage.getItem("i3lab.smoothing") || 0.6));
    onPageLeave(() => chart.destroy());
    shown.set(key, { chart, box });
  }
  // Every chart at once: one request per run (per 64 keys), not one per run and key. The rest
  // of the page does not wait for it.
  Promise.all(runs.map((r) => read(r, r.keys.filter((k) => keys.includes(k))))).then((perRun) => {
    for (const [key, { chart, box }] of shown) {
      chart.setSeries(lines(key, perRun));
      box.dataset.loaded = "1";
    }
  }).catch(report);

  // Config diff: only the keys whose values differ.
  const flat = runs.map((r) => flatten(r.config));
  const allKeys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  const differing = allKeys.filter((k) => new Set(flat.map((f) => JSON.stringify(f[k]))).size > 1);
  main.append(el("section", {}, el("h2", { text: `Config: ${differing.length} of ${allKeys.length} keys differ` }),
    el("div", { class: "tablewrap" }, dataTable({ id: "config-diff" }, ["key", ...runs.map((r) => r.name)],
      differing.map((k) => el("tr", {}, el("td", { text: k }), ...flat.map((f) => el("td", { text: valueText(f[k]) }))))))));

  // Parallel coordinates: the numeric keys that differ, then a metric.
  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.summary || {})))].sort();
  const metricSel = el("select", { "aria-label": "metric" }, ...metricKeys.map((k) => el("option", { value: k, text: k })));
  const preferred = metricKeys.find((k) => k === "val/loss") || metricKeys.find((k) => k === "train/loss");
  if (preferred) metricSel.value = preferred;
  const pc = el("canvas", { class: "parallel", role: "img", "aria-label": "parallel coordinates" });
  main.append(el("section", {}, el("h2", { text: "Parameters against a metric" }), el("label", {}, "metric ", metricSel), el("div", { class: "heatwrap" }, pc)));
  const numeric = differing.filter((k) => flat.every((f) => f[k] === undefined || typeof f[k] === "number"));
  const drawParallel = () => {
    const m = metricSel.value;
    const axes = numeric.map((k) => ({ label: k, values: flat.map((f) => f[k]) }));
    axes.push({ label: m, values: runs.map((r) => r.summary && r.summary[m] ? (r.summary[m].best ?? r.summary[m].last) : null) });
    I3Chart.parallel(pc, axes, runs.map((r) => r.name));
  };
  metricSel.addEventListener("change", drawParallel);
  drawParallel();
}

// --- sweeps and sweep pages --------------------------------------------------------------------

// The coordinator's sweeps live in its loop: i3lab ui (a database alone) has none to show.
async function needCoordinator(main, what) {
  const info = await api("/api/v1/info");
  if (!info.coordinator) main.append(el("p", { class: "muted", text: `This is i3lab ui, serving a database alone: no coordinator, so no ${what}. Start one with i3lab coordinator --http HOST:PORT, or i3lab up.` }));
  return info.coordinator;
}

function countsText(counts) { return Object.entries(counts || {}).map(([s, n]) => `${n} ${s}`).join(", ") || "no trials yet"; }

async function sweepsPage(main) {
  document.title = "Sweeps · i3lab";
  main.append(el("h1", { text: "Sweeps" }));
  if (!(await needCoordinator(main, "sweeps"))) return;
  const box = el("div", { class: "tablewrap" });
  main.append(box);
  async function load() {
    const sweeps = await api("/api/v1/sweeps?limit=200");
    if (!sweeps.length) { box.replaceChildren(el("p", { class: "muted", text: "No sweeps yet: i3lab sweep SWEEP.yaml, or i3lab up SWEEP.yaml (docs/sweeps.md)." })); return; }
    box.replaceChildren(dataTable({ id: "sweeps" }, ["id", "name", "status", "method", "trials", "", "best", "created"],
      sweeps.map((w) => el("tr", { "data-sweep": w.id },
        el("td", { class: "num", text: w.id }), el("td", {}, el("a", { href: `/sweeps/${w.id}`, text: w.name })),
        el("td", {}, statusBadge(w.status)), el("td", { text: w.method }), el("td", { class: "num", text: w.trials }),
        el("td", { text: countsText(w.counts) }),
        el("td", { class: "num", text: w.best ? `${w.metric.name} ${fmt(w.best.value)}` : "–" }), el("td", { text: fmtTime(w.created_at) })))));
  }
  await load();
  live("/api/v1/stream", { jobs: throttle(() => load().catch(report), 1000), runs: throttle(() => load().catch(report), 2000) });
}

async function sweepPage(main, id) {
  document.title = `Sweep ${id} · i3lab`;
  if (!(await needCoordinator(main, "sweeps"))) return;
  const head = el("div"), progress = el("div", { class: "chart" }, el("div", { class: "charttitle", text: "best value as trials end (x: trials ended)" })), pc = el("canvas", { class: "parallel", role: "img", "aria-label": "parallel coordinates" });
  const importance = el("div", { class: "tablewrap" }), trials = el("div", { class: "tablewrap" });
  main.append(head,
    el("section", {}, el("h2", { text: "Best so far" }), el("div", { class: "charts" }, progress)),
    el("section", {}, el("h2", { text: "Parameter importance" }), importance),
    el("section", {}, el("h2", { text: "Parameters against the metric" }), el("div", { class: "heatwrap" }, pc)),
    el("section", {}, el("h2", { text: "Trials" }), trials));
  const chart = new I3Chart.LineChart(progress, {});
  onPageLeave(() => chart.destroy());
  async function load() {
    const s = await api(`/api/v1/sweeps/${id}`);
    const metric = s.metric.name || "metric";
    document.title = `${s.name} · i3lab`;
    head.replaceChildren(el("h1", { text: s.name }),
      el("p", {}, statusBadge(s.status), ` ${s.method} · ${countsText(s.counts)}${s.note ? " · " + s.note : ""}`),
      el("p", { id: "sweep-best", text: s.best ? `best: trial ${s.best.trial}, ${metric} ${fmt(s.best.value)}, ` +
        Object.entries(s.best.params).map(([k, v]) => `${k}=${valueText(v)}`).join(" ") : "no trial has reported " + metric + " yet" }));
    // The best value as trials end, and each ended trial's own.
    const xs = s.best_so_far.map((_, i) => i + 1);
    const line = (label, color, ys) => ({ label, color, x: xs, min: ys, max: ys, last: ys });
    chart.setSeries([line(`best ${metric}`, COLORS[0], s.best_so_far.map((p) => p.best)), line(`trial's ${metric}`, COLORS[1], s.best_so_far.map((p) => p.value))]);
    progress.dataset.points = String(xs.length);
    importance.replaceChildren(dataTable({ id: "importance" }, ["parameter", "importance", "correlation with " + metric],
      [...s.importance].sort((a, b) => (b.importance ?? -1) - (a.importance ?? -1)).map((p) => el("tr", {},
        el("td", { text: p.path }),
        el("td", {}, el("span", { class: "bar", style: `width:${Math.round((p.importance || 0) * 120)}px` }), ` ${p.importance === null ? "–" : (p.importance * 100).toFixed(0) + "%"}`),
        el("td", { class: "num", text: p.correlation === null ? "–" : p.correlation.toFixed(2) })))));
    // Parallel coordinates: each parameter (a category as its index), then the metric.
    const paths = s.importance.map((p) => p.path);
    const reported = s.trials.filter((t) => t.value !== null);
    const axes = paths.map((k) => {
      const seen = [...new Set(reported.map((t) => JSON.stringify(t.params[k])))];
      return { label: k, values: reported.map((t) => typeof t.params[k] === "number" ? t.params[k] : seen.indexOf(JSON.stringify(t.params[k]))) };
    });
    axes.push({ label: metric, values: reported.map((t) => t.value) });
    I3Chart.parallel(pc, axes, reported.map((t) => `trial ${t.trial}`));
    trials.replaceChildren(dataTable({ id: "trials" }, ["trial", "status", "step", metric, ...paths, "run"],
      s.trials.map((t) => el("tr", { "data-trial": t.trial },
        el("td", { class: "num", text: t.trial }), el("td", {}, statusBadge(t.status)),
        el("td", { class: "num", text: t.step ?? "–" }), el("td", { class: "num", text: fmt(t.value) }),
        ...paths.map((k) => el("td", { text: valueText(t.params[k]) })),
        el("td", {}, t.run_id ? el("a", { href: `/runs/${t.run_id}`, text: t.run.slice(0, 8) }) : "")))));
  }
  await load();
  live("/api/v1/stream", { jobs: throttle(() => load().catch(report), 1000), runs: throttle(() => load().catch(report), 2000) });
}

// --- cluster page ------------------------------------------------------------------------------

async function clusterPage(main) {
  document.title = "Cluster · i3lab";
  const info = await api("/api/v1/info");
  main.append(el("h1", { text: "Cluster" }));
  if (!info.coordinator) {
    main.append(el("p", { class: "muted", text: "This is i3lab ui, serving a database alone: no coordinator, no workers. Start one with i3lab coordinator --http HOST:PORT." }));
    return;
  }
  const workersEl = el("div", { class: "tablewrap" }), jobsEl = el("div", { class: "tablewrap" });
  main.append(el("section", {}, el("h2", { text: "Workers" }), workersEl), el("section", {}, el("h2", { text: "Jobs" }), jobsEl));

  async function loadWorkers() {
    const workers = await api("/api/v1/workers");
    workersEl.replaceChildren(dataTable({ id: "workers" }, ["worker", "host", "status", "CPU slots", "GPUs", "memory", "labels", "jobs", "last seen"],
      workers.map((w) => el("tr", {},
        el("td", { text: w.id }), el("td", { text: w.hostname }), el("td", {}, statusBadge(w.status)),
        el("td", { class: "num", text: `${w.used_slots} / ${w.cpu_slots}` }),
        el("td", { text: (w.gpus || []).map((g, i) => (w.used_gpus || []).includes(i) ? `${g.name || "GPU " + i} (busy)` : g.name || `GPU ${i}`).join(", ") || "–" }),
        el("td", { class: "num", text: w.memory_mb ? `${Math.round(w.memory_mb / 1024)} GiB` : "–" }),
        el("td", { text: Object.entries(w.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ") }),
        el("td", { text: (w.jobs || []).join(", ") }), el("td", { text: fmtTime(w.last_seen) })))));
  }

  async function loadJobs() {
    const jobs = await api("/api/v1/jobs?limit=500");
    jobsEl.replaceChildren(dataTable({ id: "jobs" }, ["id", "name", "kind", "status", "attempts", "worker", "submitted", "run", ""],
      jobs.map((j) => {
        const open = ["queued", "assigned", "running"].includes(j.status);
        const cancel = open ? el("button", { type: "button", text: "Cancel", "aria-label": `cancel job ${j.id}`, onclick: async () => {
          try { const r = await api(`/api/v1/jobs/${j.id}/cancel`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" }); toast(`job ${j.id}: ${r.note || r.status}`); loadJobs(); }
          catch (err) { report(err); }
        } }) : null;
        return el("tr", { "data-job": j.id },
          el("td", { class: "num", text: j.id }), el("td", { text: j.name }), el("td", { text: j.kind }), el("td", {}, statusBadge(j.status)),
          el("td", { class: "num", text: j.attempts }), el("td", { text: j.worker }), el("td", { text: fmtTime(j.submitted_at) }),
          el("td", { text: j.run ? j.run.slice(0, 8) : "" }), el("td", {}, cancel));
      })));
  }
  await Promise.all([loadWorkers(), loadJobs()]);
  live("/api/v1/stream", { jobs: throttle(loadJobs, 500), workers: throttle(loadWorkers, 500) });
  // Slot use changes without a row changing: look again every few seconds too.
  const timer = setInterval(() => loadWorkers().catch(() => {}), 3000);
  onPageLeave(() => clearInterval(timer));
}

route();
