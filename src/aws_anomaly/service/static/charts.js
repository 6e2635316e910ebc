// Small SVG time-series charts for the dashboard: no dependencies, no CDN.
// Charts.line(container, {title, times, series: [{name, values, color}], shade: bool[],
//   threshold: number|null, yLabel, height}) draws a line chart with shaded anomalous spans.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }

  function niceTicks(min, max, count) {
    if (!(max > min)) { max = min + 1; }
    const span = max - min;
    const step0 = span / Math.max(count, 1);
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const norm = step0 / mag;
    const step = (norm >= 5 ? 10 : norm >= 2 ? 5 : norm >= 1 ? 2 : 1) * mag;
    const ticks = [];
    for (let v = Math.ceil(min / step) * step; v <= max + 1e-12; v += step) ticks.push(+v.toFixed(10));
    return ticks;
  }

  function fmtTime(t, spanMs) {
    const d = new Date(t);
    const hh = String(d.getUTCHours()).padStart(2, "0");
    const mm = String(d.getUTCMinutes()).padStart(2, "0");
    if (spanMs > 36 * 3600e3) return `${d.getUTCMonth() + 1}/${d.getUTCDate()} ${hh}:${mm}`;
    return `${hh}:${mm}`;
  }

  function fmtNum(v) {
    const a = Math.abs(v);
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  function line(container, opts) {
    const width = Math.max(container.clientWidth || 600, 320);
    const height = opts.height || 170;
    const m = { l: 48, r: 14, t: 22, b: 24 };
    const w = width - m.l - m.r;
    const h = height - m.t - m.b;
    const times = opts.times.map((t) => (typeof t === "number" ? t : Date.parse(t)));
    const n = times.length;
    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart",
      role: "img", "aria-label": opts.title });
    el("text", { x: m.l, y: 14, class: "chart-title" }, svg).textContent = opts.title;
    if (n === 0) {
      el("text", { x: width / 2, y: height / 2, class: "chart-empty", "text-anchor": "middle" },
        svg).textContent = "no data yet";
      container.appendChild(svg);
      return svg;
    }
    let lo = Infinity, hi = -Infinity;
    for (const s of opts.series) for (const v of s.values) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (opts.threshold != null) { lo = Math.min(lo, 0); hi = Math.max(hi, opts.threshold * 1.15); }
    const pad = (hi - lo) * 0.08 || 0.5;
    lo -= pad; hi += pad;
    if (opts.threshold != null) lo = Math.max(lo, 0);
    const t0 = times[0], t1 = times[n - 1] > t0 ? times[n - 1] : t0 + 1;
    const x = (t) => m.l + ((t - t0) / (t1 - t0)) * w;
    const y = (v) => m.t + h - ((v - lo) / (hi - lo)) * h;

    const g = el("g", {}, svg);
    // Shaded anomalous spans (each point covers half a step on either side).
    if (opts.shade) {
      const half = n > 1 ? (t1 - t0) / (n - 1) / 2 : 0;
      let i = 0;
      while (i < n) {
        if (!opts.shade[i]) { i++; continue; }
        let j = i;
        while (j + 1 < n && opts.shade[j + 1]) j++;
        const xa = Math.max(m.l, x(times[i] - half));
        const xb = Math.min(m.l + w, x(times[j] + half));
        el("rect", { x: xa, y: m.t, width: Math.max(xb - xa, 2), height: h, class: "shade" }, g);
        i = j + 1;
      }
    }
    // Grid and axes.
    for (const v of niceTicks(lo, hi, 4)) {
      el("line", { x1: m.l, x2: m.l + w, y1: y(v), y2: y(v), class: "grid" }, g);
      el("text", { x: m.l - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, g).textContent = fmtNum(v);
    }
    const xt = 6;
    for (let k = 0; k <= xt; k++) {
      const t = t0 + ((t1 - t0) * k) / xt;
      el("text", { x: x(t), y: height - 6, class: "tick", "text-anchor": k === 0 ? "start" : k === xt ? "end" : "middle" },
        g).textContent = fmtTime(t, t1 - t0);
    }
    el("line", { x1: m.l, x2: m.l + w, y1: m.t + h, y2: m.t + h, class: "axis" }, g);
    if (opts.threshold != null) {
      el("line", { x1: m.l, x2: m.l + w, y1: y(opts.threshold), y2: y(opts.threshold), class: "threshold" }, g);
      el("text", { x: m.l + w - 4, y: y(opts.threshold) - 4, class: "tick thr-label", "text-anchor": "end" },
        g).textContent = `threshold ${fmtNum(opts.threshold)}`;
    }
    // Lines.
    for (const s of opts.series) {
      let d = "";
      s.values.forEach((v, i) => { d += `${i ? "L" : "M"}${x(times[i]).toFixed(1)},${y(v).toFixed(1)}`; });
      el("path", { d, class: "series", stroke: s.color || "#3b82f6" }, g);
      if (opts.markAnomalies && opts.shade) {
        s.values.forEach((v, i) => {
          if (opts.shade[i]) el("circle", { cx: x(times[i]), cy: y(v), r: 2.6, class: "dot" }, g);
        });
      }
    }
    // Hover read-out.
    const cursor = el("line", { y1: m.t, y2: m.t + h, class: "cursor hidden" }, svg);
    const tip = el("text", { x: m.l + 4, y: m.t + 12, class: "tip" }, svg);
    const hit = el("rect", { x: m.l, y: m.t, width: w, height: h, class: "hit" }, svg);
    hit.addEventListener("mousemove", (ev) => {
      const r = svg.getBoundingClientRect();
      const tx = t0 + ((ev.clientX - r.left - m.l) / w) * (t1 - t0);
      let best = 0;
      for (let i = 1; i < n; i++) if (Math.abs(times[i] - tx) < Math.abs(times[best] - tx)) best = i;
      cursor.setAttribute("x1", x(times[best])); cursor.setAttribute("x2", x(times[best]));
      cursor.classList.remove("hidden");
      tip.textContent = `${new Date(times[best]).toISOString().slice(0, 16).replace("T", " ")}  ` +
        opts.series.map((s) => `${s.name}: ${fmtNum(s.values[best])}`).join("  ");
    });
    hit.addEventListener("mouseleave", () => { cursor.classList.add("hidden"); tip.textContent = ""; });
    container.appendChild(svg);
    return svg;
  }

  return { line };
})();
