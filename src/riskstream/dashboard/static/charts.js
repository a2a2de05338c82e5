/* riskstream charts: small inline-SVG charts, no library. window.RSCharts = {timeSeries,
   histogram, hbars, timeline, esc, fmtNum}. Every function redraws its container from scratch
   (cheap: a few hundred elements) and escapes all text it is given. */
(function () {
  "use strict";

  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function esc(value) {
    return String(value == null ? "" : value).replace(/[&<>"']/g, (c) => ESC[c]);
  }

  /** 1234 -> "1.2k", 0.0123 -> "0.012", 50 -> "50"; compact, for axes and bar labels. */
  function fmtNum(v) {
    if (v == null || !isFinite(v)) return "–";
    return compact(v).replace(/\.0+(?=[kMG]?$)/, "");
  }

  function compact(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100 || a === 0) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    return v.toPrecision(2);
  }

  /** Counts: exact below 10,000 ("1,234"), compact above ("12k"). */
  function fmtCount(n) {
    return n == null ? "–" : Math.abs(n) < 1e4 ? Math.round(n).toLocaleString("en-US") : fmtNum(n);
  }

  /** A "nice" axis maximum >= v: 1, 2, 2.5 or 5 times a power of ten. */
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  let measurer = null;
  /** Rendered width of `text` at the chart font size `px` (canvas measureText). */
  function textWidth(text, px) {
    measurer = measurer || document.createElement("canvas").getContext("2d");
    measurer.font = `${px}px ${getComputedStyle(document.body).fontFamily}`;
    return measurer.measureText(String(text)).width;
  }

  function box(el) {
    return { w: Math.max(el.clientWidth, 120), h: Math.max(el.clientHeight, 80) };
  }

  function svg(w, h, body) {
    return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none">${body}</svg>`;
  }

  function noData(el, message) {
    el.innerHTML = `<div class="nodata">${esc(message || "waiting for data…")}</div>`;
  }

  /** Wall-clock label: HH:MM:SS for spans under an hour, HH:MM beyond. */
  function clock(t, span) {
    const d = new Date(t * 1000);
    return d.toTimeString().slice(0, span < 3600 ? 8 : 5);
  }

  /**
   * Time series with a left and an optional right axis.
   * opts.series: [{values: [[t, y|null]...], color, axis: "left"|"right", area: bool, name}]
   * opts.leftFormat / rightFormat: value -> label.
   */
  function timeSeries(el, opts) {
    const all = opts.series.flatMap((s) => s.values);
    if (!all.length) return noData(el);
    const { w, h } = box(el);
    const hasRight = opts.series.some((s) => s.axis === "right");
    const pad = { l: 38, r: hasRight ? 38 : 10, t: 8, b: 18 };
    const ts = all.map((p) => p[0]);
    const t0 = Math.min(...ts), t1 = Math.max(...ts);
    const span = Math.max(t1 - t0, 1);
    const x = (t) => pad.l + ((t - t0) / span) * (w - pad.l - pad.r);
    const maxOf = (axis) => niceMax(Math.max(0, ...opts.series.filter((s) => (s.axis || "left") === axis)
      .flatMap((s) => s.values.map((p) => p[1]).filter((v) => v != null))));
    const lmax = maxOf("left"), rmax = hasRight ? maxOf("right") : 1;
    const y = (v, axis) => pad.t + (1 - v / (axis === "right" ? rmax : lmax)) * (h - pad.t - pad.b);
    let body = "";
    for (let i = 0; i <= 4; i++) {
      const gy = pad.t + (i / 4) * (h - pad.t - pad.b);
      body += `<line class="grid-line" x1="${pad.l}" x2="${w - pad.r}" y1="${gy}" y2="${gy}"/>`;
      body += `<text x="${pad.l - 5}" y="${gy + 3}" text-anchor="end">${esc((opts.leftFormat || fmtNum)(lmax * (1 - i / 4)))}</text>`;
      if (hasRight) body += `<text x="${w - pad.r + 5}" y="${gy + 3}">${esc((opts.rightFormat || fmtNum)(rmax * (1 - i / 4)))}</text>`;
    }
    for (let i = 0; i <= 4; i++) {
      const t = t0 + (i / 4) * span;
      const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
      body += `<text x="${x(t)}" y="${h - 4}" text-anchor="${anchor}">${esc(clock(t, span))}</text>`;
    }
    for (const s of opts.series) {
      const axis = s.axis || "left";
      let d = "", open = false;
      for (const [t, v] of s.values) {
        if (v == null) { open = false; continue; }
        d += `${open ? "L" : "M"}${x(t).toFixed(1)},${y(v, axis).toFixed(1)}`;
        open = true;
      }
      if (!d) continue;
      if (s.area) {
        const pts = s.values.filter((p) => p[1] != null);
        const base = y(0, axis).toFixed(1);
        body += `<path d="${d}L${x(pts[pts.length - 1][0]).toFixed(1)},${base}L${x(pts[0][0]).toFixed(1)},${base}Z" fill="${s.color}" fill-opacity="0.14" stroke="none"/>`;
      }
      body += `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6" stroke-linejoin="round"><title>${esc(s.name || "")}</title></path>`;
    }
    el.innerHTML = svg(w, h, body);
  }

  /**
   * Histogram on equally spaced bins with a log count axis.
   * opts: {counts, ticks: [{at: bin-position 0..n, label}], markers: [{at, color, label}]}
   */
  function histogram(el, opts) {
    const counts = opts.counts || [];
    const total = counts.reduce((a, b) => a + b, 0);
    if (!total) return noData(el);
    const { w, h } = box(el);
    const pad = { l: 38, r: 10, t: 8, b: 18 };
    const n = counts.length;
    const bw = (w - pad.l - pad.r) / n;
    const top = Math.pow(10, Math.ceil(Math.log10(Math.max(...counts, 1))));
    const y = (c) => (c <= 0 ? h - pad.b : pad.t + (1 - Math.log10(c) / Math.log10(top)) * (h - pad.t - pad.b));
    let body = "";
    for (let p = 1; p <= top; p *= 10) {
      const gy = y(p);
      body += `<line class="grid-line" x1="${pad.l}" x2="${w - pad.r}" y1="${gy}" y2="${gy}"/>`;
      body += `<text x="${pad.l - 5}" y="${gy + 3}" text-anchor="end">${esc(fmtCount(p))}</text>`;
    }
    counts.forEach((c, i) => {
      if (c <= 0) return;
      const bx = pad.l + i * bw, by = y(c);
      const color = opts.colorOf ? opts.colorOf(i) : "#38bdf8";
      body += `<rect x="${(bx + 1).toFixed(1)}" y="${by.toFixed(1)}" width="${Math.max(bw - 2, 1).toFixed(1)}" height="${(h - pad.b - by).toFixed(1)}" fill="${color}" fill-opacity="0.8"><title>${esc(opts.binLabel ? opts.binLabel(i) : i)}: ${c}</title></rect>`;
    });
    for (const t of opts.ticks || []) {
      const anchor = t.at === 0 ? "start" : t.at === n ? "end" : "middle";
      body += `<text x="${pad.l + t.at * bw}" y="${h - 4}" text-anchor="${anchor}">${esc(t.label)}</text>`;
    }
    for (const m of opts.markers || []) {
      const mx = pad.l + m.at * bw;
      body += `<line x1="${mx}" x2="${mx}" y1="${pad.t}" y2="${h - pad.b}" stroke="${m.color}" stroke-width="1.5" stroke-dasharray="4 3"><title>${esc(m.label)}</title></line>`;
    }
    el.innerHTML = svg(w, h, body);
  }

  /** Horizontal bars. opts: {items: [{label, value, note}], color, format}. */
  function hbars(el, opts) {
    const items = (opts.items || []).filter((it) => it.value > 0);
    if (!items.length) return noData(el, opts.empty);
    const { w, h } = box(el);
    const fmt = opts.format || fmtNum;
    const text = (it) => fmt(it.value) + (it.note ? " · " + it.note : "");
    // Labels get the room they need (up to 45 % of the width); the value text always fits
    // after the longest bar.
    const labelW = Math.min(w * 0.45, 12 + Math.max(...items.map((it) => textWidth(it.label, 11))));
    const valueW = 12 + Math.max(...items.map((it) => textWidth(text(it), 10)));
    const rowH = Math.min(21, h / items.length);
    const max = Math.max(...items.map((it) => it.value));
    let body = "";
    items.forEach((it, i) => {
      const cy = i * rowH + rowH / 2;
      const bw = Math.max(2, (it.value / max) * Math.max(20, w - labelW - valueW));
      body += `<text class="bar-label" x="${labelW - 6}" y="${cy + 4}" text-anchor="end">${esc(it.label)}</text>`;
      body += `<rect x="${labelW}" y="${(cy - rowH * 0.32).toFixed(1)}" width="${bw.toFixed(1)}" height="${(rowH * 0.64).toFixed(1)}" rx="2" fill="${it.color || opts.color || "#38bdf8"}" fill-opacity="0.85"><title>${esc(it.label)}: ${esc(fmt(it.value))}${it.note ? " · " + esc(it.note) : ""}</title></rect>`;
      body += `<text class="bar-note" x="${labelW + bw + 6}" y="${cy + 4}">${esc(text(it))}</text>`;
    });
    el.innerHTML = svg(w, h, body);
  }

  /** A user's recent transactions: time vs amount (log), coloured by decision. */
  function timeline(el, opts) {
    const pts = (opts.points || []).filter((p) => p.amount > 0 && p.t);
    if (!pts.length) return noData(el, "no history");
    const { w, h } = box(el);
    const pad = { l: 44, r: 12, t: 10, b: 18 };
    const ts = pts.map((p) => p.t), la = pts.map((p) => Math.log10(p.amount));
    const t0 = Math.min(...ts), t1 = Math.max(...ts), span = Math.max(t1 - t0, 1);
    const a0 = Math.floor(Math.min(...la)), a1 = Math.max(Math.ceil(Math.max(...la)), a0 + 1);
    const x = (t) => pad.l + ((t - t0) / span) * (w - pad.l - pad.r);
    const y = (a) => pad.t + (1 - (Math.log10(a) - a0) / (a1 - a0)) * (h - pad.t - pad.b);
    let body = "";
    for (let e = a0; e <= a1; e++) {
      const gy = y(Math.pow(10, e));
      body += `<line class="grid-line" x1="${pad.l}" x2="${w - pad.r}" y1="${gy}" y2="${gy}"/>`;
      body += `<text x="${pad.l - 5}" y="${gy + 3}" text-anchor="end">${esc(fmtNum(Math.pow(10, e)))}</text>`;
    }
    const day = (t) => new Date(t * 1000).toISOString().slice(5, 16).replace("T", " ");
    body += `<text x="${pad.l}" y="${h - 4}">${esc(day(t0))}</text><text x="${w - pad.r}" y="${h - 4}" text-anchor="end">${esc(day(t1))} UTC</text>`;
    const colors = opts.colors || {};
    const line = pts.slice().sort((a, b) => a.t - b.t).map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.amount).toFixed(1)}`).join("");
    body += `<path d="${line}" fill="none" stroke="#2b3b5c" stroke-width="1"/>`;
    for (const p of pts) {
      const cx = x(p.t).toFixed(1), cy = y(p.amount).toFixed(1);
      if (p.current) body += `<circle cx="${cx}" cy="${cy}" r="8" fill="none" stroke="#38bdf8" stroke-width="2"/>`;
      body += `<circle cx="${cx}" cy="${cy}" r="${p.decision === "allow" ? 3.2 : 4.5}" fill="${colors[p.decision] || "#8a9ab5"}"><title>${esc(p.title || "")}</title></circle>`;
    }
    el.innerHTML = svg(w, h, body);
  }

  window.RSCharts = { timeSeries, histogram, hbars, timeline, esc, fmtNum, fmtCount };
})();
