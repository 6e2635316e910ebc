// Time-series and curve charts on uPlot (vendor/uPlot.iife.min.js, MIT), shared by the
// dashboard and the evaluation report (report.py inlines this file and uPlot into report.html).
//
// AnomalyCharts.timeChart(el, opts) draws one metric (or the score) over time:
//   opts.x        seconds since the epoch (ascending)
//   opts.series   [{label, values, color, width, dash}]  (null / NaN = no value)
//   opts.band     {expected, lower, upper} arrays or null: the expected band, drawn under the line
//   opts.shade    [{from, to, color, label}] time spans (seconds) shaded behind the lines
//   opts.threshold a horizontal line (the score's 1.0), or null
//   opts.unit     the y-axis label (the metric's own units; never rescaled)
//   opts.tz       "UTC" or "local": the axis says which
//   opts.group    an AnomalyCharts.group(): charts in a group zoom and hover together
// Drag across a chart to zoom in time; double-click resets to everything loaded.
// AnomalyCharts.curve(el, opts) draws a PR or ROC curve on [0, 1] x [0, 1].
"use strict";

const AnomalyCharts = (() => {
  const U = typeof uPlot !== "undefined" ? uPlot : null;

  function zoneName() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "local"; } catch (e) { return "local"; }
  }

  function offsetText(date) {
    const off = -date.getTimezoneOffset();
    const sign = off >= 0 ? "+" : "-";
    const a = Math.abs(off);
    return `UTC${sign}${String(Math.floor(a / 60)).padStart(2, "0")}:${String(a % 60).padStart(2, "0")}`;
  }

  // What the time axis says: "time (UTC)" or "time (local: Europe/Berlin, UTC+01:00)".
  function tzLabel(tz) {
    return tz === "local" ? `time (local: ${zoneName()}, ${offsetText(new Date())})` : "time (UTC)";
  }

  function pad2(v) { return String(v).padStart(2, "0"); }

  // "2026-03-01 14:05" in the chosen zone (for tooltips and tables).
  function fmtTime(sec, tz) {
    const d = new Date(sec * 1000);
    if (tz === "local") {
      return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
        `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    }
    return d.toISOString().slice(0, 16).replace("T", " ");
  }

  // Time-axis ticks in 24-hour time of the chosen zone; the date where it changes or when the
  // ticks are a day or more apart.
  function timeTicks(splits, tz) {
    const step = splits.length > 1 ? splits[1] - splits[0] : 0;
    let lastDay = null;
    return splits.map((sec) => {
      const full = fmtTime(sec, tz); // "YYYY-MM-DD HH:MM"
      const day = full.slice(5, 10), hm = full.slice(11);
      const showDay = step >= 86400 || day !== lastDay;
      lastDay = day;
      if (step >= 86400) return day;
      return showDay ? `${hm}\n${day}` : hm;
    });
  }

  function fmtNum(v) {
    if (v == null || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e5 || (a > 0 && a < 1e-3)) return v.toExponential(2);
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    return v.toFixed(3);
  }

  function clean(values) {
    const out = new Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      out[i] = v == null || !isFinite(v) ? null : v;
    }
    return out;
  }

  // A set of charts that zoom and hover together. onZoom(from, to) is called after the user
  // zooms by dragging (from/to in seconds) or resets by double-click (null, null);
  // setRange(from, to) sets every chart's window (null: everything loaded) without calling it.
  function group(onZoom) {
    const g = { charts: new Set(), key: `g${Math.random().toString(36).slice(2)}`, userAt: -1e9,
      last: null, onZoom };
    g.setRange = (from, to) => {
      g.userAt = -1e9;
      for (const u of g.charts) {
        const xs = u.data[0];
        if (from == null) {
          if (xs.length) u.setScale("x", { min: xs[0], max: xs[xs.length - 1] });
        } else {
          u.setScale("x", { min: from, max: to });
        }
      }
    };
    return g;
  }

  function shadePlugin() {
    return {
      hooks: {
        drawClear: [(u) => {
          const { ctx, bbox } = u;
          ctx.save();
          for (const s of u.shadeSpans || []) {
            const x0 = u.valToPos(s.from, "x", true);
            const x1 = u.valToPos(s.to, "x", true);
            const a = Math.max(bbox.left, Math.min(x0, x1));
            const b = Math.min(bbox.left + bbox.width, Math.max(x0, x1));
            if (b < bbox.left || a > bbox.left + bbox.width) continue;
            ctx.fillStyle = s.color;
            ctx.fillRect(a, bbox.top, Math.max(b - a, 2), bbox.height);
          }
          ctx.restore();
        }],
      },
    };
  }

  function thresholdPlugin(value, el) {
    return {
      hooks: {
        draw: [(u) => {
          const { ctx, bbox } = u;
          const y = u.valToPos(value, "y", true);
          if (y < bbox.top || y > bbox.top + bbox.height) return;
          ctx.save();
          ctx.strokeStyle = "#dc2626";
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(bbox.left, y);
          ctx.lineTo(bbox.left + bbox.width, y);
          ctx.stroke();
          ctx.setLineDash([]);
          ctx.fillStyle = "#dc2626";
          ctx.font = `${11 * devicePixelRatio}px sans-serif`;
          ctx.textAlign = "right";
          ctx.fillText(`threshold ${fmtNum(value)}`, bbox.left + bbox.width - 4, y - 4 * devicePixelRatio);
          ctx.restore();
          el.dataset.threshold = String(value);
        }],
      },
    };
  }

  // The data columns and series of a time chart; `signature` changes when the layout does.
  function layout(o) {
    const x = Array.from(o.x);
    const data = [x];
    const labels = [];
    let bandPoints = 0;
    if (o.band && o.band.upper && o.band.lower) {
      const up = clean(o.band.upper), lo = clean(o.band.lower), ex = clean(o.band.expected || []);
      for (let i = 0; i < up.length; i++) if (up[i] != null && lo[i] != null) bandPoints++;
      if (bandPoints) {
        data.push(up, lo);
        labels.push("upper", "lower");
        if (ex.length) { data.push(ex); labels.push("expected"); }
      }
    }
    for (const s of o.series) { data.push(clean(s.values)); labels.push(s.label); }
    return { data, labels, bandPoints, signature: labels.join("|") };
  }

  function countBand(u, el) {
    if (!u.bandPoints) { delete el.dataset.band; return; }
    // How many band points lie inside the visible time range (read by the tests).
    const xs = u.data[0], up = u.data[1];
    const a = u.scales.x.min, b = u.scales.x.max;
    let n = 0;
    for (let i = 0; i < xs.length; i++) if (xs[i] >= a && xs[i] <= b && up[i] != null) n++;
    el.dataset.band = n ? "drawn" : "out-of-view";
    el.dataset.bandPoints = String(n);
  }

  function timeChart(el, o) {
    if (!U) throw new Error("uPlot is not loaded");
    const tz = o.tz === "local" ? "local" : "UTC";
    const lay = layout(o);
    const series = [{ value: (u, v) => (v == null ? "–" : fmtTime(v, tz)) }];
    const bands = [];
    if (lay.bandPoints) {
      series.push({ label: "upper", stroke: "rgba(37, 99, 235, 0.35)", width: 1,
        value: (u, v) => fmtNum(v), points: { show: false } },
      { label: "lower", stroke: "rgba(37, 99, 235, 0.35)", width: 1,
        value: (u, v) => fmtNum(v), points: { show: false } });
      bands.push({ series: [1, 2], fill: "rgba(37, 99, 235, 0.13)" });
      if (lay.labels.includes("expected")) {
        series.push({ label: "expected", stroke: "rgba(37, 99, 235, 0.85)", width: 1, dash: [4, 3],
          value: (u, v) => fmtNum(v), points: { show: false } });
      }
    }
    for (const s of o.series) {
      series.push({ label: s.label, stroke: s.color || "#2563eb", width: s.width || 1.6,
        dash: s.dash, value: (u, v) => fmtNum(v), points: { show: false } });
    }
    const plugins = [shadePlugin()];
    if (o.threshold != null) plugins.push(thresholdPlugin(o.threshold, el));
    const grp = o.group || null;
    const yRange = (u, min, max) => {
      let lo = min, hi = max;
      if (lo == null || hi == null) { lo = 0; hi = 1; }
      if (o.threshold != null) { lo = Math.min(0, lo); hi = Math.max(hi, o.threshold * 1.2); }
      if (!(hi > lo)) { hi = lo + Math.max(Math.abs(lo) * 0.1, 1); }
      const pad = (hi - lo) * 0.06;
      return [o.threshold != null ? Math.max(lo, 0) : lo - pad, hi + pad];
    };
    const opts = {
      title: o.title,
      width: Math.max(el.clientWidth || 600, 320),
      height: o.height || 180,
      tzDate: tz === "UTC" ? (ts) => U.tzDate(new Date(ts * 1e3), "Etc/UTC") : (ts) => new Date(ts * 1e3),
      scales: { x: { time: true }, y: { range: yRange } },
      series,
      bands,
      axes: [
        { label: tzLabel(tz), labelSize: 18, labelFont: "11px sans-serif", font: "11px sans-serif",
          values: (u, splits) => timeTicks(splits, tz) },
        { label: o.unit || "", labelSize: 18, size: 60, labelFont: "11px sans-serif",
          font: "11px sans-serif", values: (u, vals) => vals.map(fmtNum) },
      ],
      legend: { live: true },
      cursor: {
        drag: { x: true, y: false, setScale: true },
        sync: grp ? { key: grp.key, setSeries: false } : undefined,
      },
      plugins,
      hooks: {
        draw: [(u) => countBand(u, el)],
        setScale: [(u, key) => {
          if (key !== "x") return;
          el.dataset.from = String(u.scales.x.min);
          el.dataset.to = String(u.scales.x.max);
          // uPlot applies scales in a batch after the call that set them, so a zoom the user
          // made is told from one the page made by the gesture just before it (drag, double-click).
          if (!grp || !(performance.now() - grp.userAt < 1500)) return;
          const min = u.scales.x.min, max = u.scales.x.max;
          if (grp.last && grp.last[0] === min && grp.last[1] === max) return;
          grp.last = [min, max];
          for (const other of grp.charts) if (other !== u) other.setScale("x", { min, max });
          const xs = u.data[0];
          const full = xs.length && min <= xs[0] && max >= xs[xs.length - 1];
          if (grp.onZoom) grp.onZoom(full ? null : min, full ? null : max);
        }],
      },
    };
    el.replaceChildren();
    el.dataset.tz = tz;
    el.dataset.timeAxis = tzLabel(tz); // what the (canvas-drawn) time axis says
    const u = new U(opts, lay.data, el);
    u.signature = lay.signature;
    u.bandPoints = lay.bandPoints;
    u.shadeSpans = o.shade || [];
    if (grp) {
      grp.charts.add(u);
      const mark = () => { grp.userAt = performance.now(); grp.last = null; };
      u.over.addEventListener("mousedown", mark, true);
      u.over.addEventListener("dblclick", mark, true);
    }
    return u;
  }

  // New data for a chart made by timeChart, keeping its zoom; false when the layout changed
  // (the caller draws a new chart then).
  function update(u, o) {
    const lay = layout(o);
    if (lay.signature !== u.signature || lay.bandPoints === 0 && u.bandPoints > 0) return false;
    u.bandPoints = lay.bandPoints;
    u.shadeSpans = o.shade || [];
    u.setData(lay.data, false);
    return true;
  }

  function curve(el, o) {
    if (!U) throw new Error("uPlot is not loaded");
    const xs = [], ys = [];
    const order = o.x.map((v, i) => i).sort((a, b) => o.x[a] - o.x[b]);
    for (const i of order) { xs.push(o.x[i]); ys.push(o.y[i]); }
    const data = [xs, ys];
    const series = [{ label: o.xLabel, value: (u, v) => fmtNum(v) },
      { label: o.yLabel, stroke: o.color || "#2563eb", width: 2, value: (u, v) => fmtNum(v) }];
    if (o.diagonal) {
      data.push(xs.slice());
      series.push({ label: "chance", stroke: "#9ca3af", width: 1, dash: [4, 4] });
    }
    const plugins = [];
    if (o.point) {
      plugins.push({ hooks: { draw: [(u) => {
        const cx = u.valToPos(o.point[0], "x", true), cy = u.valToPos(o.point[1], "y", true);
        u.ctx.save();
        u.ctx.fillStyle = "#dc2626";
        u.ctx.beginPath();
        u.ctx.arc(cx, cy, 4.5 * devicePixelRatio, 0, 2 * Math.PI);
        u.ctx.fill();
        u.ctx.restore();
      }] } });
    }
    const opts = {
      title: o.title, width: o.width || 340, height: o.height || 300,
      scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1.02] } },
      series, plugins,
      axes: [{ label: o.xLabel, labelSize: 18 }, { label: o.yLabel, labelSize: 18, size: 44 }],
      cursor: { drag: { x: true, y: true, setScale: true } },
    };
    el.replaceChildren();
    return new U(opts, data, el);
  }

  return { timeChart, update, curve, group, tzLabel, fmtTime, fmtNum };
})();

if (typeof window !== "undefined") window.AnomalyCharts = AnomalyCharts;
