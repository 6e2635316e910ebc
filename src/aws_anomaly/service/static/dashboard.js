// The aws-anomaly dashboard: polls the API every few seconds and redraws without reloading.
// The API token (needed only for feedback) is kept in sessionStorage, never in the URL or a
// cookie; a "#token=..." fragment printed by `aws-anomaly serve` is moved there and removed.
"use strict";

const POLL_MS = 3000;
const COLORS = ["#2563eb", "#0d9488", "#9333ea", "#ea580c", "#0891b2", "#65a30d"];
const state = { entity: null, entities: [], cursor: null, extra: [], busy: false };

const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem("aws-anomaly-token") || ""; }

function takeTokenFromHash() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("aws-anomaly-token", decodeURIComponent(m[1]));
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

function fmtTs(iso) { return iso ? iso.replace("T", " ").replace(/:\d\d(\.\d+)?(Z|\+00:00)$/, "") : ""; }

function duration(a, b) {
  const min = (Date.parse(b) - Date.parse(a)) / 60000;
  if (min < 1) return "1 point";
  if (min < 120) return `${min.toFixed(0)} min`;
  return `${(min / 60).toFixed(1)} h`;
}

function banner(msg, kind) {
  const b = $("banner");
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
        `missed intervals will be scored when it recovers. Errors: ${errs.join(", ")}`, "warn");
    } else if (training) {
      banner(`Training the model: ${job.training.step}`, "info");
    } else {
      banner(null);
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

function selectEntity(entity) {
  state.entity = entity;
  for (const li of document.querySelectorAll(".entity")) li.classList.toggle("active", li.dataset.entity === entity);
  refreshCharts().catch(showError);
}

// ------------------------------------------------------------------ charts
async function refreshCharts() {
  const box = $("charts");
  if (!state.entity) { box.replaceChildren(make("p", "muted", "Waiting for the first scores…")); return; }
  let res;
  try {
    res = await api(`/v1/entities/${encodeURIComponent(state.entity)}/series`);
  } catch (e) {
    box.replaceChildren(make("p", "muted", `No data for ${state.entity} yet.`));
    return;
  }
  const s = res.body;
  text($("chart-title"), `${s.entity} · last ${s.timestamps.length} points`);
  box.replaceChildren();
  const shade = s.is_anomaly;
  s.metrics.forEach((metric, i) => {
    const div = make("div", "chart-box");
    div.dataset.metric = metric;
    box.appendChild(div);
    Charts.line(div, { title: metric, times: s.timestamps, shade, markAnomalies: true,
      series: [{ name: metric, values: s.values[metric], color: COLORS[i % COLORS.length] }], height: 150 });
  });
  const div = make("div", "chart-box score");
  div.dataset.metric = "anomaly_score";
  box.appendChild(div);
  Charts.line(div, { title: "anomaly score", times: s.timestamps, shade, threshold: s.threshold,
    series: [{ name: "score", values: s.anomaly_score, color: "#dc2626" }], height: 170 });
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
    const val = make("span", "contrib-val", `${Math.round(t.contribution * 100)}%` +
      (t.deviation != null ? ` · ${t.deviation >= 0 ? "+" : ""}${t.deviation.toFixed(1)}σ` : ""));
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
  tr.append(ent, make("td", "mono", fmtTs(ev.start)), make("td", null, duration(ev.start, ev.end)),
    score, status, expl, fb);
  return tr;
}

async function refreshAnomalies() {
  const { body } = await api(anomalyQuery(null));
  const tb = $("anomaly-body");
  tb.replaceChildren();
  const items = body.items.concat(state.extra);
  if (!items.length) {
    const tr = make("tr");
    const td = make("td", "muted", "No anomalies yet.");
    td.colSpan = 7;
    tr.appendChild(td);
    tb.appendChild(tr);
  }
  for (const ev of items) tb.appendChild(anomalyRow(ev));
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

async function sendFeedback(eventId, label, row) {
  if (!token()) {
    banner("Enter the API token (top right) to send feedback.", "warn");
    $("token").focus();
    return;
  }
  for (const b of row.querySelectorAll("button")) b.disabled = true;
  try {
    const res = await fetch(`/v1/anomalies/${eventId}/feedback`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token()}` },
      body: JSON.stringify({ label, note: "from the dashboard" }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.detail || `${res.status}`);
    banner(`Feedback saved: ${label.replace("_", " ")}.`, "ok");
    await Promise.all([refreshAnomalies(), refreshHeader()]);
  } catch (e) {
    banner(`Feedback not saved: ${e.message}`, "error");
    for (const b of row.querySelectorAll("button")) b.disabled = false;
  }
}

// ------------------------------------------------------------------ loop
function showError(e) { banner(`Cannot reach the service: ${e.message}`, "error"); }

async function poll() {
  if (state.busy) return;
  state.busy = true;
  try {
    await refreshHeader();
    await refreshEntities();
    await Promise.all([refreshCharts(), refreshAnomalies()]);
    document.body.dataset.loaded = "true";
  } catch (e) {
    showError(e);
  } finally {
    state.busy = false;
  }
}

function init() {
  takeTokenFromHash();
  text($("token-state"), token() ? "saved for this tab" : "");
  $("token").value = token();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("aws-anomaly-token", $("token").value.trim());
    text($("token-state"), $("token").value.trim() ? "saved for this tab" : "cleared");
  });
  for (const id of ["filter-entity", "filter-status"]) {
    $(id).addEventListener("change", () => { state.extra = []; state.cursor = null; refreshAnomalies().catch(showError); });
  }
  $("more").addEventListener("click", () => loadMore().catch(showError));
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => refreshCharts(), 200); });
  poll();
  setInterval(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", init);
