// The aws-anomaly dashboard: polls the API every few seconds and updates the charts in place
// (zoom and hover survive an update). The API token (needed only for feedback) is kept in
// sessionStorage, never in the URL or a cookie; a "#token=..." fragment printed by
// `aws-anomaly serve` is moved there and removed.
//
// The page's own URL carries the view, so a link opens what its sender saw:
//   ?entity=X            the entity whose charts are shown
//   &anomaly=EVENT_ID    zoom to that anomaly event (alert links carry entity and anomaly)
//   &from=T&to=T         zoom to a time window (ISO 8601 or seconds since the epoch)
//   &range=1h|6h|24h|7d  the last hour ... week of the entity's points (default: all kept)
//   &tz=local            times in the browser's zone (default: UTC; the axes say which)
"use strict";

const POLL_MS = 3000;
const COLORS = ["#2563eb", "#0d9488", "#9333ea", "#ea580c", "#0891b2", "#65a30d"];
const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400 };
const TOKEN_KEY = "aws-anomaly-token";
const state = {
  entity: null, entities: [], cursor: null, extra: [], busy: false,
  tz: "UTC",
  view: { range: "all" }, // {range: "1h" | ... | "all"} or {from, to} (seconds)
  anomaly: null, // the deep-linked event id, until it is shown
  charts: null, // {entity, tz, group, byMetric: {metric: uPlot}}
  series: null,
};

const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function takeTokenFromHash() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

async function api(path, options) {
  const res = await fetch(path, Object.assign({ headers: { Accept: "application/json" } }, options || {}));
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok && res.status !== 503) {
    const msg = body && body.detail ? body.detail : `${res.status} ${res.statusText}`;
    throw new Error(msg);
  }
  return { status: res.status, body };
}

function text(el, value) { el.textContent = value == null ? "" : String(value); return el; }

function make(tag, cls, content) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (content != null) e.textContent = content;
  return e;
}

function ago(seconds) {
  if (seconds == null) return "never";
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function fmtTs(iso) { return iso ? AnomalyCharts.fmtTime(Date.parse(iso) / 1000, state.tz) : ""; }

function duration(a, b) {
  const min = (Date.parse(b) - Date.parse(a)) / 60000;
  if (min < 1) return "1 point";
  if (min < 120) return `${min.toFixed(0)} min`;
  return `${(min / 60).toFixed(1)} h`;
}

// One banner line. Service status (from the poll) never hides a message the user's own action
// produced (feedback, a deep link); those stay until the next such message or a click.
function banner(msg, kind, fromStatus) {
  const b = $("banner");
  if (fromStatus && b.dataset.from === "user" && !b.classList.contains("hidden")) return;
  b.dataset.from = fromStatus ? "status" : "user";
  if (!msg) { b.classList.add("hidden"); return; }
  b.className = `banner ${kind || "info"}`;
  text(b, msg);
}

// ------------------------------------------------------------------ header
async function refreshHeader() {
  const [ready, status, models] = await Promise.all([api("/readyz"), api("/v1/status"), api("/v1/models")]);
  const r = ready.body;
  const pill = $("ready");
  pill.className = `pill ${r.ready ? "ok" : "warn"}`;
  text(pill, r.ready ? "ready" : `degraded: ${r.degraded.join(", ")}`);
  pill.title = Object.entries(r.checks).map(([k, c]) => `${k}: ${c.ok ? "ok" : c.detail}`).join("\n");
  const job = status.body.jobs[0];
  text($("version"), `aws-anomaly ${status.body.version}`);
  if (job) {
    const mi = job.model_info;
    const training = job.training.state === "training";
    text($("model-info"), training ? `training… ${job.training.step}` :
      mi.detector ? `${mi.detector} · ${mi.features} features · ${mi.metrics.length} metrics` : job.training.state);
    const lt = job.last_tick;
    text($("last-run"), lt ? `${ago(job.last_success)} · ${lt.points} pts · ${(lt.seconds * 1000).toFixed(0)} ms` +
      (lt.ok ? "" : ` · failed at ${lt.stage}`) : "not yet");
    const errs = Object.entries(job.errors).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`);
    if (!job.source_ok && job.source_ok !== null) {
      banner(`Source problem (${job.source}): ${job.last_errors.fetch || "unreachable"} — ` +
        `missed intervals will be scored when it recovers. Errors: ${errs.join(", ")}`, "warn", true);
    } else if (training) {
      banner(`Training the model: ${job.training.step}`, "info", true);
    } else {
      banner(null, null, true);
    }
  }
  const m = models.body.items[0];
  if (m) {
    const p = m.precision;
    text($("precision"), p.precision == null ? "no feedback yet" :
      `${(p.precision * 100).toFixed(0)}% of ${p.reviewed} reviewed`);
  }
}

// ------------------------------------------------------------------ entities
async function refreshEntities() {
  const { body } = await api("/v1/entities");
  state.entities = body.items;
  const list = $("entity-list");
  list.replaceChildren();
  text($("entity-count"), `(${body.items.length})`);
  if (!state.entity && body.items.length) {
    const bad = body.items.find((e) => e.status === "anomalous");
    state.entity = (bad || body.items[0]).entity;
  }
  const sel = $("filter-entity");
  const chosen = sel.value;
  sel.replaceChildren(make("option", null, "all"));
  sel.firstChild.value = "";
  for (const e of body.items) {
    const li = make("li", `entity ${e.entity === state.entity ? "active" : ""}`);
    li.dataset.entity = e.entity;
    li.tabIndex = 0;
    const dot = make("span", `dot ${e.status}`);
    dot.title = e.status.replace("_", " ");
    const name = make("span", "name", e.entity);
    const meta = make("span", "meta", e.last_score == null ? e.status.replace("_", " ") :
      `score ${e.last_score.toFixed(2)}${e.open_events ? ` · ${e.open_events} open` : ""}`);
    li.append(dot, name, meta);
    li.addEventListener("click", () => selectEntity(e.entity));
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") selectEntity(e.entity); });
    list.appendChild(li);
    const opt = make("option", null, e.entity);
    opt.value = e.entity;
    sel.appendChild(opt);
  }
  sel.value = chosen;
}

function selectEntity(entity, keepView) {
  if (entity !== state.entity && !keepView) {
    state.view = { range: state.view.range || "all" };
    state.anomaly = null;
    state.focused = null;
  }
  state.entity = entity;
  for (const li of document.querySelectorAll(".entity")) li.classList.toggle("active", li.dataset.entity === entity);
  writeUrl();
  refreshCharts().catch(showError);
}

// ------------------------------------------------------------------ URL (deep links)
function parseTime(v) {
  if (v == null || v === "") return null;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) > 1e11 ? Number(v) / 1000 : Number(v);
  const t = Date.parse(v);
  return isNaN(t) ? null : t / 1000;
}

function readUrl() {
  const q = new URLSearchParams(location.search);
  const problems = [];
  if (q.get("entity")) state.entity = q.get("entity");
  if (q.get("anomaly")) state.anomaly = q.get("anomaly");
  if (q.get("tz")) state.tz = q.get("tz").toLowerCase() === "local" ? "local" : "UTC";
  const range = q.get("range");
  if (range) {
    if (range in RANGES || range === "all") state.view = { range };
    else problems.push(`range=${range} (use 1h, 6h, 24h, 7d or all)`);
  }
  if (q.has("from") || q.has("to")) {
    const from = parseTime(q.get("from")), to = parseTime(q.get("to"));
    if (from == null || to == null || !(to > from)) {
      problems.push(`from=${q.get("from")}&to=${q.get("to")} (need both, ISO 8601 or epoch seconds, from < to)`);
    } else {
      state.view = { from, to };
    }
  }
  if (problems.length) banner(`Ignored in the link: ${problems.join("; ")}.`, "warn");
}

function writeUrl() {
  const q = new URLSearchParams();
  if (state.entity) q.set("entity", state.entity);
  if (state.anomaly) q.set("anomaly", state.anomaly);
  if (state.view.from != null) {
    q.set("from", new Date(state.view.from * 1000).toISOString().replace(".000Z", "Z"));
    q.set("to", new Date(state.view.to * 1000).toISOString().replace(".000Z", "Z"));
  } else if (state.view.range && state.view.range !== "all") {
    q.set("range", state.view.range);
  }
  if (state.tz === "local") q.set("tz", "local");
  const qs = q.toString();
  history.replaceState(null, "", location.pathname + (qs ? `?${qs}` : ""));
}

// The deep-linked anomaly: select its entity and zoom to it (with some context either side).
async function focusAnomaly() {
  const id = state.anomaly;
  if (!id) return;
  let ev;
  try {
    ev = (await api(`/v1/anomalies/${encodeURIComponent(id)}`)).body;
  } catch (e) {
    banner(`The linked anomaly ${id} is not known to this service (${e.message}).`, "warn");
    state.anomaly = null;
    writeUrl();
    return;
  }
  const start = Date.parse(ev.start) / 1000, end = Date.parse(ev.end) / 1000;
  const padding = Math.max(end - start, 3600);
  state.entity = ev.entity;
  state.view = { from: start - padding, to: end + padding };
  state.focused = ev;
  for (const li of document.querySelectorAll(".entity")) li.classList.toggle("active", li.dataset.entity === ev.entity);
  writeUrl();
  await refreshCharts();
  const xs = state.series ? state.series.x : [];
  if (xs.length && end < xs[0]) {
    banner(`Anomaly ${id} on ${ev.entity} (${fmtTs(ev.start)}) is older than the points kept ` +
      `for the dashboard (from ${AnomalyCharts.fmtTime(xs[0], state.tz)}).`, "warn");
  } else {
    banner(`Showing anomaly ${id} on ${ev.entity}: ${fmtTs(ev.start)} – ${fmtTs(ev.end)} ` +
      `(${state.tz}), peak score ${ev.peak_score.toFixed(2)}.`, "info");
  }
  $("charts").scrollIntoView({ block: "start" });
  markFocusedRow();
}

function markFocusedRow() {
  for (const tr of document.querySelectorAll("#anomaly-body tr[data-event-id]")) {
    tr.classList.toggle("focused", tr.dataset.eventId === state.anomaly);
  }
}

// ------------------------------------------------------------------ charts
function seriesToColumns(s) {
  const x = s.timestamps.map((t) => Date.parse(t) / 1000);
  return { x, s };
}

function anomalySpans(x, flags) {
  // Each anomalous point covers half a step either side.
  const spans = [];
  const half = x.length > 1 ? (x[1] - x[0]) / 2 : 150;
  let i = 0;
  while (i < x.length) {
    if (!flags[i]) { i++; continue; }
    let j = i;
    while (j + 1 < x.length && flags[j + 1]) j++;
    spans.push({ from: x[i] - half, to: x[j] + half, color: "rgba(220, 38, 38, 0.16)" });
    i = j + 1;
  }
  return spans;
}

function focusSpan() {
  const ev = state.focused;
  if (!ev || ev.entity !== state.entity) return [];
  return [{ from: Date.parse(ev.start) / 1000 - 60, to: Date.parse(ev.end) / 1000 + 60,
    color: "rgba(234, 179, 8, 0.22)" }];
}

function chartSpecs(cols) {
  const { x, s } = cols;
  const shade = anomalySpans(x, s.is_anomaly).concat(focusSpan());
  const specs = s.metrics.map((metric, i) => ({
    key: metric, title: metric, unit: "", x, height: 160,
    series: [{ label: metric, values: s.values[metric], color: COLORS[i % COLORS.length] }],
    band: s.expected && s.expected[metric] ? { expected: s.expected[metric], lower: s.lower[metric],
      upper: s.upper[metric] } : null,
    shade, tz: state.tz,
  }));
  specs.push({ key: "anomaly_score", title: "anomaly score (calibrated: ≥ 1.0 is anomalous)",
    unit: "score", x, height: 170, threshold: s.threshold,
    series: [{ label: "score", values: s.anomaly_score, color: "#dc2626" }], shade, tz: state.tz });
  return specs;
}

// The time window the view asks for, in seconds, or null for everything loaded.
function viewWindow(x) {
  if (state.view.from != null) return [state.view.from, state.view.to];
  const span = RANGES[state.view.range];
  if (!span || !x.length) return null;
  const last = x[x.length - 1];
  return [last - span, last];
}

function describeView(x) {
  const w = viewWindow(x);
  const first = x.length ? x[0] : null;
  let t;
  if (!x.length) t = "";
  else if (!w) t = `all ${x.length} points kept: ${AnomalyCharts.fmtTime(first, state.tz)} – ` +
    `${AnomalyCharts.fmtTime(x[x.length - 1], state.tz)} ${state.tz}`;
  else t = `${AnomalyCharts.fmtTime(w[0], state.tz)} – ${AnomalyCharts.fmtTime(w[1], state.tz)} ${state.tz}` +
    (w[0] < first ? ` (points kept from ${AnomalyCharts.fmtTime(first, state.tz)})` : "");
  text($("view-text"), t);
  for (const b of document.querySelectorAll("#range button")) {
    b.classList.toggle("on", state.view.from == null && b.dataset.range === (state.view.range || "all"));
  }
  for (const b of document.querySelectorAll("#tz button")) b.classList.toggle("on", b.dataset.tz === state.tz);
}

function applyView(charts, x) {
  const w = viewWindow(x);
  charts.group.setRange(w ? w[0] : null, w ? w[1] : null);
  describeView(x);
}

function buildCharts(cols) {
  const box = $("charts");
  box.replaceChildren();
  const group = AnomalyCharts.group((from, to) => {
    state.view = from == null ? { range: "all" } : { from, to };
    writeUrl();
    describeView(state.series ? state.series.x : []);
  });
  const byKey = {};
  for (const spec of chartSpecs(cols)) {
    const div = make("div", `chart-box${spec.key === "anomaly_score" ? " score" : ""}`);
    div.dataset.metric = spec.key;
    box.appendChild(div);
    byKey[spec.key] = AnomalyCharts.timeChart(div, Object.assign({ group }, spec));
  }
  state.charts = { entity: cols.s.entity, tz: state.tz, group, byKey };
  applyView(state.charts, cols.x);
}

async function refreshCharts() {
  const box = $("charts");
  if (!state.entity) { box.replaceChildren(make("p", "muted", "Waiting for the first scores…")); return; }
  let res;
  try {
    res = await api(`/v1/entities/${encodeURIComponent(state.entity)}/series?points=5000`);
  } catch (e) {
    state.charts = null;
    box.replaceChildren(make("p", "muted", `No data for ${state.entity} yet.`));
    return;
  }
  const cols = seriesToColumns(res.body);
  state.series = cols;
  text($("chart-title"), `${cols.s.entity} · ${cols.x.length} points`);
  const c = state.charts;
  if (!c || c.entity !== cols.s.entity || c.tz !== state.tz || !box.firstChild) {
    buildCharts(cols);
    return;
  }
  const specs = chartSpecs(cols);
  for (const spec of specs) {
    const u = c.byKey[spec.key];
    if (!u || !AnomalyCharts.update(u, spec)) { buildCharts(cols); return; }
  }
  applyView(c, cols.x); // a preset follows the newest point; a chosen window stays
}

// ------------------------------------------------------------------ anomalies
function anomalyQuery(cursor) {
  const q = new URLSearchParams({ limit: "25" });
  if ($("filter-entity").value) q.set("entity", $("filter-entity").value);
  if ($("filter-status").value) q.set("status", $("filter-status").value);
  if (cursor) q.set("cursor", cursor);
  return `/v1/anomalies?${q}`;
}

function anomalyRow(ev) {
  const tr = make("tr");
  tr.dataset.eventId = ev.event_id;
  const ent = make("td", "entity-cell");
  const link = make("a", null, ev.entity);
  link.href = "#";
  link.addEventListener("click", (e) => { e.preventDefault(); selectEntity(ev.entity); });
  ent.appendChild(link);
  const when = make("td", "mono");
  const show = make("a", null, fmtTs(ev.start));
  show.href = `?entity=${encodeURIComponent(ev.entity)}&anomaly=${encodeURIComponent(ev.event_id)}`;
  show.title = "Zoom the charts to this anomaly (a link to share)";
  show.addEventListener("click", (e) => {
    e.preventDefault();
    state.anomaly = ev.event_id;
    focusAnomaly().catch(showError);
  });
  when.appendChild(show);
  const score = make("td", "num");
  const badge = make("span", `score-badge ${ev.peak_score >= 2 ? "high" : "mid"}`, ev.peak_score.toFixed(2));
  score.appendChild(badge);
  const status = make("td");
  status.appendChild(make("span", `pill ${ev.status === "open" ? "warn" : "muted-pill"}`, ev.status));
  const expl = make("td", "explain");
  const bars = make("div", "contrib");
  for (const t of ev.top_metrics.slice(0, 3)) {
    const row = make("div", "contrib-row");
    const label = make("span", "contrib-label", t.metric.replace(/^cluster_/, ""));
    const track = make("span", "contrib-track");
    const fill = make("span", "contrib-fill");
    fill.style.width = `${Math.round(t.contribution * 100)}%`;
    track.appendChild(fill);
    // deviation: distance from the expected value in band half-widths (|d| <= 1: inside)
    const dev = t.deviation == null ? "" : Math.abs(t.deviation) <= 1 ? " · in band"
      : ` · ${Math.abs(t.deviation).toFixed(1)}× band ${t.deviation > 0 ? "above" : "below"}`;
    const val = make("span", "contrib-val", `${Math.round(t.contribution * 100)}%` + dev);
    val.title = "share of the anomaly · distance from the expected value in band widths";
    row.append(label, track, val);
    bars.appendChild(row);
  }
  expl.append(bars, make("div", "muted small", ev.explanation));
  const fb = make("td", "feedback");
  if (ev.feedback) {
    fb.appendChild(make("span", `verdict ${ev.feedback}`, ev.feedback === "true_positive" ? "✓ confirmed" : "✗ false positive"));
  }
  const yes = make("button", "btn small good", "Real");
  yes.title = "Mark as a true positive";
  yes.dataset.label = "true_positive";
  const no = make("button", "btn small bad", "False alarm");
  no.title = "Mark as a false positive";
  no.dataset.label = "false_positive";
  for (const b of [yes, no]) b.addEventListener("click", () => sendFeedback(ev.event_id, b.dataset.label, tr));
  const btns = make("div", "btns");
  btns.append(yes, no);
  fb.appendChild(btns);
  const msg = make("div", "fb-msg small");
  msg.setAttribute("role", "status");
  fb.appendChild(msg);
  tr.append(ent, when, make("td", null, duration(ev.start, ev.end)), score, status, expl, fb);
  return tr;
}

async function refreshAnomalies() {
  const { body } = await api(anomalyQuery(null));
  const tb = $("anomaly-body");
  const items = body.items.concat(state.extra);
  const emptyRow = make("tr");
  const td = make("td", "muted", "No anomalies yet.");
  td.colSpan = 7;
  emptyRow.appendChild(td);
  const notes = {};
  for (const tr of tb.querySelectorAll("tr[data-event-id]")) {
    const m = tr.querySelector(".fb-msg");
    if (m && m.textContent) notes[tr.dataset.eventId] = [m.textContent, m.className];
  }
  tb.replaceChildren();
  if (!items.length) tb.appendChild(emptyRow);
  for (const ev of items) {
    const tr = anomalyRow(ev);
    const note = notes[ev.event_id];
    if (note) { const m = tr.querySelector(".fb-msg"); m.textContent = note[0]; m.className = note[1]; }
    tb.appendChild(tr);
  }
  markFocusedRow();
  state.cursor = state.extra.length ? state.cursor : body.next_cursor;
  $("more").classList.toggle("hidden", !state.cursor);
  text($("anomaly-count"), `(${items.length}${state.cursor ? "+" : ""})`);
}

async function loadMore() {
  if (!state.cursor) return;
  const { body } = await api(anomalyQuery(state.cursor));
  state.extra = state.extra.concat(body.items);
  state.cursor = body.next_cursor;
  await refreshAnomalies();
}

const NO_TOKEN = "Feedback needs the API token. Paste it into the API token field at the top " +
  "right and press Save: it is the token `aws-anomaly serve` printed at start (or the " +
  "service's configured token). It is kept in this browser tab only.";

function rowMessage(row, msg, kind) {
  const m = row.querySelector(".fb-msg");
  if (m) { m.textContent = msg; m.className = `fb-msg small ${kind}`; }
}

async function sendFeedback(eventId, label, row) {
  const what = label === "true_positive" ? "real anomaly" : "false alarm";
  if (!token()) {
    banner(NO_TOKEN, "warn");
    rowMessage(row, "Not sent: no API token set (see above).", "warn");
    $("token").focus();
    return;
  }
  for (const b of row.querySelectorAll("button")) b.disabled = true;
  rowMessage(row, "Sending…", "muted");
  let res, body;
  try {
    res = await fetch(`/v1/anomalies/${encodeURIComponent(eventId)}/feedback`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token()}` },
      body: JSON.stringify({ label, note: "from the dashboard" }),
    });
    body = await res.json().catch(() => ({}));
  } catch (e) {
    banner(`Feedback not saved: cannot reach the service (${e.message}).`, "error");
    rowMessage(row, "Not sent: the service did not answer.", "error");
    for (const b of row.querySelectorAll("button")) b.disabled = false;
    return;
  }
  for (const b of row.querySelectorAll("button")) b.disabled = false;
  if (res.status === 401 || res.status === 403) {
    banner(`Feedback not saved: the service rejected the API token (${res.status}: ` +
      `${body.detail || res.statusText}). Paste the current token into the API token field ` +
      "(top right) and press Save, then try again.", "error");
    rowMessage(row, "Not sent: token rejected.", "error");
    $("token").focus();
    return;
  }
  if (!res.ok) {
    banner(`Feedback not saved: ${body.detail || `${res.status} ${res.statusText}`}`, "error");
    rowMessage(row, `Not sent (${res.status}).`, "error");
    return;
  }
  banner(`Feedback saved: marked as a ${what}. Thank you; the job uses it to tune its thresholds.`, "ok");
  rowMessage(row, `Saved: ${what}.`, "ok");
  await Promise.all([refreshAnomalies(), refreshHeader()]);
}

// ------------------------------------------------------------------ loop
function showError(e) {
  $("banner").dataset.from = "status"; // outranks any message: nothing works without the service
  banner(`Cannot reach the service: ${e.message}`, "error", true);
}

async function poll() {
  if (state.busy) return;
  state.busy = true;
  try {
    await refreshHeader();
    await refreshEntities();
    if (state.anomaly && !state.focused) await focusAnomaly();
    await Promise.all([refreshCharts(), refreshAnomalies()]);
    document.body.dataset.loaded = "true";
  } catch (e) {
    showError(e);
  } finally {
    state.busy = false;
  }
}

function showTokenState(msg) {
  text($("token-state"), msg != null ? msg : token() ? "saved for this tab" : "not set: feedback is off");
}

function init() {
  takeTokenFromHash();
  readUrl();
  showTokenState();
  $("token").value = token();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const v = $("token").value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY);
    showTokenState(v ? "saved for this tab" : "cleared: feedback is off");
    if (v) banner(null);
  });
  for (const id of ["filter-entity", "filter-status"]) {
    $(id).addEventListener("change", () => { state.extra = []; state.cursor = null; refreshAnomalies().catch(showError); });
  }
  for (const b of document.querySelectorAll("#range button")) {
    b.addEventListener("click", () => {
      state.view = { range: b.dataset.range };
      writeUrl();
      if (state.charts && state.series) applyView(state.charts, state.series.x);
    });
  }
  for (const b of document.querySelectorAll("#tz button")) {
    b.addEventListener("click", () => {
      state.tz = b.dataset.tz;
      text($("start-head"), `Start (${state.tz})`);
      writeUrl();
      state.charts = null;
      Promise.all([refreshCharts(), refreshAnomalies()]).catch(showError);
    });
  }
  text($("start-head"), `Start (${state.tz})`);
  $("more").addEventListener("click", () => loadMore().catch(showError));
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { state.charts = null; refreshCharts().catch(showError); }, 200);
  });
  window.addEventListener("hashchange", () => {
    if (!/(?:^#|&)token=/.test(location.hash)) return;
    takeTokenFromHash();
    $("token").value = token();
    showTokenState();
  });
  $("banner").addEventListener("click", () => banner(null));
  $("banner").title = "click to dismiss";
  describeView([]);
  poll();
  setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", init);
