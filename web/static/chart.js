// i3lab's charts, on a canvas: line charts of server-side buckets (a min/max band plus the
// last value per bucket, smoothed with an EMA over a faded raw line), log scale, drag to zoom
// (the page re-queries the server for the new range), hover read-out; and heat maps of
// histograms over steps; and parallel coordinates. No dependencies.
"use strict";

const I3Chart = (() => {
  const DPR = () => window.devicePixelRatio || 1;
  const PAD = { left: 56, right: 12, top: 10, bottom: 26 };

  function niceTicks(lo, hi, count) {
    if (!isFinite(lo) || !isFinite(hi)) return [];
    if (hi === lo) return [lo];
    const raw = (hi - lo) / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    if (!(step > 0) || lo + step === lo) return [lo];  // a step below the values' precision
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9 && out.length < 100; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    if (Number.isInteger(v)) return String(v);
    return v.toPrecision(4).replace(/\.?0+$/, "");
  }

  function setupCanvas(canvas, height) {
    const width = canvas.parentElement.clientWidth || 400;
    const w = Math.round(width * DPR()), h = Math.round(height * DPR());
    if (canvas.width !== w || canvas.height !== h) {  // a new size reallocates the bitmap: only then
      canvas.style.width = width + "px";
      canvas.style.height = height + "px";
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(DPR(), 0, 0, DPR(), 0, 0);
    return { ctx, width, height };
  }

  // EMA with a debias term (as TensorBoard and W&B do), over the bucket's last values.
  function ema(values, alpha) {
    if (!alpha) return values;
    let acc = 0, weight = 0;
    return values.map((v) => {
      if (v === null || !isFinite(v)) return v;
      acc = alpha * acc + (1 - alpha) * v;
      weight = alpha * weight + (1 - alpha);
      return acc / weight;
    });
  }

  // The index of the value in sorted `xs` nearest to `at` (-1 if there is none).
  function nearest(xs, at) {
    if (!xs.length) return -1;
    let lo = 0, hi = xs.length - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; xs[mid] < at ? (lo = mid + 1) : (hi = mid); }
    return lo > 0 && Math.abs(xs[lo - 1] - at) <= Math.abs(xs[lo] - at) ? lo - 1 : lo;
  }

  // A line chart. `el` is an empty container; options: {height, onZoom(x0, x1), xLabel(v)}.
  // setSeries([{label, color, x: [...], last: [...], min: [...], max: [...]}]).
  class LineChart {
    constructor(el, options = {}) {
      this.el = el;
      this.options = options;
      this.series = [];
      this.smoothing = 0;
      this.log = false;
      this.canvas = document.createElement("canvas");
      this.canvas.setAttribute("role", "img");
      this.readout = document.createElement("div");
      this.readout.className = "readout";
      el.append(this.canvas, this.readout);
      this.hoverX = null;
      this.drag = null;
      // Mouse moves are drawn once per frame, however many arrive.
      this.frame = 0;
      this.canvas.addEventListener("mousemove", (e) => {
        this.moveX = this.localX(e);
        if (this.drag) this.drag.to = this.moveX;  // a mouseup before the frame zooms to here
        if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.onMove(this.moveX); });
      });
      this.canvas.addEventListener("mouseleave", () => { this.hoverX = null; this.drag = null; this.draw(); });
      this.canvas.addEventListener("mousedown", (e) => { this.drag = { from: this.localX(e), to: this.localX(e) }; });
      this.canvas.addEventListener("mouseup", () => this.endDrag());
      this.canvas.addEventListener("dblclick", () => this.options.onZoom && this.options.onZoom(null, null));
      this.resize = () => this.draw();
      window.addEventListener("resize", this.resize);
    }
    destroy() {
      window.removeEventListener("resize", this.resize);
      cancelAnimationFrame(this.frame);
    }
    localX(e) { return e.clientX - this.canvas.getBoundingClientRect().left; }
    setSeries(series) { this.series = series; this.draw(); }
    setSmoothing(a) { this.smoothing = a; this.draw(); }
    setLog(on) { this.log = on; this.draw(); }
    // Whether a value can be drawn (a log scale has no place for 0 or below).
    plotted(v) { return v !== null && isFinite(v) && (!this.log || v > 0); }
    // A series' smoothed values, kept until the series or the smoothing changes.
    smoothed(s) {
      if (s.smoothedWith !== this.smoothing) { s.smooth = ema(s.last, this.smoothing); s.smoothedWith = this.smoothing; }
      return s.smooth;
    }
    // How many points have been drawn (tests read it from data-points).
    points() { return this.series.reduce((n, s) => n + s.x.length, 0); }

    bounds() {
      let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
      const ok = (v) => this.plotted(v);
      for (const s of this.series) {
        s.x.forEach((x, i) => {
          x0 = Math.min(x0, x); x1 = Math.max(x1, x);
          for (const v of [s.min[i], s.max[i], s.last[i]]) if (ok(v)) { y0 = Math.min(y0, v); y1 = Math.max(y1, v); }
        });
      }
      if (!isFinite(x0)) return null;
      if (x1 === x0) { x0 -= 1; x1 += 1; }
      if (!isFinite(y0)) { y0 = 0; y1 = 1; }
      if (this.log) { y0 = Math.log10(y0); y1 = Math.log10(y1); }
      if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
      const pad = (y1 - y0) * 0.05;
      return { x0, x1, y0: y0 - pad, y1: y1 + pad };
    }

    draw() {
      const { ctx, width, height } = setupCanvas(this.canvas, this.options.height || 220);
      this.canvas.dataset.points = String(this.points());
      ctx.clearRect(0, 0, width, height);
      const b = this.bounds();
      const styles = getComputedStyle(document.body);
      const fg = styles.getPropertyValue("--muted") || "#888";
      ctx.font = "11px system-ui, sans-serif";
      ctx.fillStyle = fg;
      if (!b) { ctx.fillText("no points yet", PAD.left, height / 2); return; }
      this.b = b;
      const W = width - PAD.left - PAD.right, H = height - PAD.top - PAD.bottom;
      const X = (x) => PAD.left + ((x - b.x0) / (b.x1 - b.x0)) * W;
      const Y = (v) => PAD.top + (1 - ((this.log ? Math.log10(v) : v) - b.y0) / (b.y1 - b.y0)) * H;
      this.X = X;
      this.W = W;
      // Axes and grid.
      ctx.strokeStyle = "rgba(128,128,128,0.2)";
      ctx.lineWidth = 1;
      ctx.textAlign = "right";
      for (const t of niceTicks(b.y0, b.y1, 4)) {
        const y = PAD.top + (1 - (t - b.y0) / (b.y1 - b.y0)) * H;
        ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(PAD.left + W, y); ctx.stroke();
        ctx.fillText(this.log ? fmt(Math.pow(10, t)) : fmt(t), PAD.left - 4, y + 3);
      }
      ctx.textAlign = "center";
      const xl = this.options.xLabel || fmt;
      for (const t of niceTicks(b.x0, b.x1, Math.max(2, Math.floor(W / 90)))) ctx.fillText(xl(t), X(t), height - 8);
      ctx.save();
      ctx.beginPath(); ctx.rect(PAD.left, PAD.top, W, H); ctx.clip();
      const ok = (v) => this.plotted(v);
      for (const s of this.series) {
        // Band: min..max of each bucket.
        ctx.fillStyle = s.color; ctx.globalAlpha = 0.15;
        ctx.beginPath();
        let started = false;
        s.x.forEach((x, i) => { if (ok(s.max[i])) { started ? ctx.lineTo(X(x), Y(s.max[i])) : ctx.moveTo(X(x), Y(s.max[i])); started = true; } });
        for (let i = s.x.length - 1; i >= 0; --i) if (ok(s.min[i])) ctx.lineTo(X(s.x[i]), Y(s.min[i]));
        ctx.fill();
        const line = (values, alpha, widthPx) => {
          ctx.globalAlpha = alpha; ctx.strokeStyle = s.color; ctx.lineWidth = widthPx;
          ctx.beginPath();
          let pen = false;
          s.x.forEach((x, i) => {
            if (!ok(values[i])) { pen = false; return; }
            pen ? ctx.lineTo(X(x), Y(values[i])) : ctx.moveTo(X(x), Y(values[i]));
            pen = true;
          });
          ctx.stroke();
          if (s.x.length === 1 && ok(values[0])) { ctx.fillStyle = s.color; ctx.fillRect(X(s.x[0]) - 2, Y(values[0]) - 2, 4, 4); }
        };
        // A series of a few points (evaluations) is drawn as logged: an EMA over 5 points misleads.
        if (this.smoothing > 0 && s.x.length >= 20) { line(s.last, 0.3, 1); line(this.smoothed(s), 1, 1.5); }
        else line(s.last, 1, 1.5);
      }
      ctx.restore();
      ctx.globalAlpha = 1;
      if (this.drag && Math.abs(this.drag.to - this.drag.from) > 2) {
        ctx.fillStyle = "rgba(80,140,255,0.15)";
        ctx.fillRect(Math.min(this.drag.from, this.drag.to), PAD.top, Math.abs(this.drag.to - this.drag.from), H);
      }
      if (this.hoverX !== null) {
        ctx.strokeStyle = fg; ctx.beginPath(); ctx.moveTo(this.hoverX, PAD.top); ctx.lineTo(this.hoverX, PAD.top + H); ctx.stroke();
      }
    }

    toX(px) { return this.b.x0 + ((px - PAD.left) / this.W) * (this.b.x1 - this.b.x0); }

    onMove(x) {
      if (this.drag) this.drag.to = x;
      this.hoverX = x;
      this.draw();
      if (!this.b) return;
      const at = this.toX(x);
      const parts = [];
      for (const s of this.series) {
        const best = nearest(s.x, at);
        if (best >= 0) {
          const sm = this.smoothing && s.x.length >= 20 ? this.smoothed(s)[best] : s.last[best];
          parts.push(`${s.label}: ${fmt(sm)}` + (s.min[best] !== s.max[best] ? ` [${fmt(s.min[best])}…${fmt(s.max[best])}]` : ""));
        }
      }
      this.readout.textContent = (this.options.xLabel || fmt)(at) + "  " + parts.join("  ");
    }

    endDrag() {
      const d = this.drag;
      this.drag = null;
      if (!d || !this.b || Math.abs(d.to - d.from) < 5) return this.draw();
      const a = this.toX(Math.min(d.from, d.to)), z = this.toX(Math.max(d.from, d.to));
      if (this.options.onZoom) this.options.onZoom(a, z);
    }
  }

  // Histograms over steps: one column per logged step, value bins up the y-axis, darker where
  // more of the tensor's values fell. `hists`: [{step, lo, hi, counts}].
  function heatmap(canvas, hists, height = 180) {
    const { ctx, width } = setupCanvas(canvas, height);
    ctx.clearRect(0, 0, width, height);
    canvas.dataset.columns = String(hists.length);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#888";
    if (!hists.length) { ctx.fillText("no histograms", PAD.left, height / 2); return; }
    let lo = Infinity, hi = -Infinity;
    for (const h of hists) if (h.lo !== null && h.hi !== null) { lo = Math.min(lo, h.lo); hi = Math.max(hi, h.hi); }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (hi <= lo) { hi = lo + 1; }
    const rows = 96;
    const W = width - PAD.left - PAD.right, H = height - PAD.top - PAD.bottom;
    const cw = W / hists.length, rh = H / rows;
    hists.forEach((h, col) => {
      const grid = new Array(rows).fill(0);
      const n = h.counts.length;
      h.counts.forEach((c, i) => {
        const v = n === 1 ? h.lo : h.lo + ((i + 0.5) / n) * (h.hi - h.lo);
        const r = Math.min(rows - 1, Math.max(0, Math.floor(((v - lo) / (hi - lo)) * rows)));
        grid[r] += c;
      });
      const peak = Math.max(1, ...grid);
      grid.forEach((c, r) => {
        if (!c) return;
        ctx.fillStyle = `rgba(60,110,230,${0.15 + 0.85 * Math.log1p(c) / Math.log1p(peak)})`;
        ctx.fillRect(PAD.left + col * cw, PAD.top + H - (r + 1) * rh, Math.ceil(cw), Math.ceil(rh));
      });
    });
    ctx.fillStyle = "#888";
    ctx.textAlign = "right";
    ctx.fillText(fmt(hi), PAD.left - 4, PAD.top + 8);
    ctx.fillText(fmt(lo), PAD.left - 4, PAD.top + H);
    ctx.textAlign = "left";
    ctx.fillText("step " + hists[0].step, PAD.left, height - 8);
    ctx.textAlign = "right";
    ctx.fillText("step " + hists[hists.length - 1].step, PAD.left + W, height - 8);
  }

  // Parallel coordinates: `axes` [{label, values: [per run]}], the last axis colours the lines.
  function parallel(canvas, axes, labels, height = 260) {
    const { ctx, width } = setupCanvas(canvas, height);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px system-ui, sans-serif";
    canvas.dataset.lines = String(labels.length);
    if (axes.length < 2 || !labels.length) { ctx.fillStyle = "#888"; ctx.fillText("pick runs whose configs differ in a number", 10, 20); return; }
    const top = 24, bottom = height - 20, left = 40, right = width - 40;
    const ax = axes.map((a) => {
      const vals = a.values.filter((v) => typeof v === "number" && isFinite(v));
      let lo = Math.min(...vals), hi = Math.max(...vals);
      if (!isFinite(lo)) { lo = 0; hi = 1; }
      if (hi === lo) { lo -= 1; hi += 1; }
      return { ...a, lo, hi };
    });
    const xOf = (i) => left + (i / (ax.length - 1)) * (right - left);
    const yOf = (a, v) => bottom - ((v - a.lo) / (a.hi - a.lo)) * (bottom - top);
    const metric = ax[ax.length - 1];
    labels.forEach((_, r) => {
      const m = metric.values[r];
      const t = typeof m === "number" && isFinite(m) ? (m - metric.lo) / (metric.hi - metric.lo) : 0.5;
      ctx.strokeStyle = `hsl(${Math.round(240 - 240 * t)}, 70%, 50%)`;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let pen = false;
      ax.forEach((a, i) => {
        const v = a.values[r];
        if (typeof v !== "number" || !isFinite(v)) { pen = false; return; }
        pen ? ctx.lineTo(xOf(i), yOf(a, v)) : ctx.moveTo(xOf(i), yOf(a, v));
        pen = true;
      });
      ctx.stroke();
    });
    ctx.fillStyle = "#888";
    ctx.strokeStyle = "#888";
    ctx.textAlign = "center";
    ax.forEach((a, i) => {
      ctx.beginPath(); ctx.moveTo(xOf(i), top); ctx.lineTo(xOf(i), bottom); ctx.stroke();
      ctx.fillText(a.label.length > 24 ? "…" + a.label.slice(-23) : a.label, xOf(i), 12);
      ctx.fillText(fmt(a.hi), xOf(i), top - 2 + 12 > bottom ? top : top + 10);
      ctx.fillText(fmt(a.lo), xOf(i), height - 6);
    });
  }

  return { LineChart, heatmap, parallel, fmt };
})();
