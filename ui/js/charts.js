// Inline SVG charts drawn from numbers the API sent (no images, no library): curves, a histogram, a 2×2 matrix.

import { s } from "./dom.js";

const W = 320;
const H = 260;
const PAD = { left: 46, right: 12, top: 12, bottom: 42 };
const IW = W - PAD.left - PAD.right;
const IH = H - PAD.top - PAD.bottom;
const TICKS = [0, 0.25, 0.5, 0.75, 1];

const num = (v) => typeof v === "number" && Number.isFinite(v);
const X = (x) => PAD.left + Math.max(0, Math.min(1, x)) * IW;
const Y = (y) => PAD.top + (1 - Math.max(0, Math.min(1, y))) * IH;

/** Pairs of finite numbers from two parallel arrays (an API may send nulls or unequal lengths). */
export function pairs(xs, ys) {
  if (!Array.isArray(xs) || !Array.isArray(ys)) return [];
  const out = [];
  for (let i = 0; i < Math.min(xs.length, ys.length); i += 1) if (num(xs[i]) && num(ys[i])) out.push([xs[i], ys[i]]);
  return out;
}

function frame(label, xLabel, yLabel, xTicks = TICKS, yTicks = TICKS, yFormat = (v) => v.toFixed(2)) {
  const svg = s("svg", { class: "chart-svg", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, focusable: "false" }, s("title", null, label));
  const grid = s("g", { class: "chart-grid", "aria-hidden": "true" });
  for (const t of yTicks) {
    grid.append(s("line", { x1: PAD.left, x2: PAD.left + IW, y1: Y(t), y2: Y(t) }));
    grid.append(s("text", { class: "chart-tick", x: PAD.left - 6, y: Y(t) + 4, "text-anchor": "end" }, yFormat(t)));
  }
  for (const t of xTicks) {
    grid.append(s("line", { x1: X(t), x2: X(t), y1: PAD.top, y2: PAD.top + IH, class: "chart-grid-v" }));
    grid.append(s("text", { class: "chart-tick", x: X(t), y: PAD.top + IH + 16, "text-anchor": "middle" }, t.toFixed(2)));
  }
  grid.append(s("text", { class: "chart-axis", x: PAD.left + IW / 2, y: H - 6, "text-anchor": "middle" }, xLabel));
  grid.append(s("text", { class: "chart-axis", x: 12, y: PAD.top + IH / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${PAD.top + IH / 2})` }, yLabel));
  svg.append(grid);
  return svg;
}

const path = (points) => points.map(([x, y], i) => `${i ? "L" : "M"}${X(x).toFixed(1)} ${Y(y).toFixed(1)}`).join(" ");

/**
 * A chart of curves on [0, 1]²: `series` [{points, cls, label}] drawn in order; `reference` an optional dashed
 * line [[x, y], ...] (chance, perfect calibration); `dots` [{x, y, r}] optional markers.
 */
export function curveChart({ label, xLabel, yLabel, series, reference = null, dots = null }) {
  const svg = frame(label, xLabel, yLabel);
  const g = s("g", { "aria-hidden": "true" });
  if (reference) g.append(s("path", { class: "chart-ref", d: path(reference) }));
  for (const line of series) {
    if (line.points.length) g.append(s("path", { class: `chart-line ${line.cls || ""}`.trim(), d: path(line.points), "data-series": line.key || "" }));
  }
  for (const d of dots || []) g.append(s("circle", { class: "chart-dot", cx: X(d.x), cy: Y(d.y), r: d.r }, s("title", null, d.title || "")));
  svg.append(g);
  return svg;
}

/** Bars of counts over [0, 1] in equal bins; `marker` a vertical line (the threshold); `tone(center)` a class. */
export function histogram({ label, values, bins = 20, marker = null, markerLabel = "", tone = () => "" }) {
  const counts = new Array(bins).fill(0);
  for (const v of values) if (num(v)) counts[Math.min(bins - 1, Math.max(0, Math.floor(v * bins)))] += 1;
  const most = Math.max(...counts, 1);
  // A round step (1, 2, 5, 10, 20, 50, …) and an axis that ends on one.
  const rough = most / 4;
  const mag = 10 ** Math.floor(Math.log10(Math.max(rough, 1)));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= rough) || 10 * mag);
  const top = Math.ceil(most / step) * step;
  const yTicks = [];
  for (let c = 0; c <= top; c += step) yTicks.push(c / top);
  const svg = frame(label, "churn probability", "customers", TICKS, yTicks, (v) => String(Math.round(v * top)));
  const g = s("g", { class: "chart-bars" });
  counts.forEach((c, i) => {
    const x0 = i / bins;
    const x1 = (i + 1) / bins;
    const bar = s("rect", {
      class: `chart-bar ${tone((x0 + x1) / 2)}`.trim(),
      x: X(x0) + 1,
      y: Y(c / top),
      width: Math.max(0, X(x1) - X(x0) - 2),
      height: Math.max(0, Y(0) - Y(c / top)),
      "data-bin": i,
      "data-count": c,
    });
    bar.append(s("title", null, `${Math.round(x0 * 100)}–${Math.round(x1 * 100)}%: ${c} customer${c === 1 ? "" : "s"}`));
    g.append(bar);
  });
  if (num(marker)) {
    g.append(s("line", { class: "chart-marker", x1: X(marker), x2: X(marker), y1: PAD.top, y2: PAD.top + IH }));
    g.append(s("text", { class: "chart-marker-label", x: X(marker) + 4, y: PAD.top + 10 }, markerLabel));
  }
  svg.append(g);
  svg.dataset.counts = counts.join(",");
  return svg;
}

/** The 2×2 confusion matrix: rows are the actual class, columns the model's verdict; shade = share of the row. */
export function confusionChart({ tn, fp, fn, tp }, label) {
  const size = 300;
  const left = 92;
  const topPad = 44;
  const cell = (size - left - 8) / 2;
  const svg = s("svg", { class: "chart-svg chart-cm", viewBox: `0 0 ${size} ${topPad + 2 * cell + 8}`, role: "img", "aria-label": label, focusable: "false" }, s("title", null, label));
  const g = s("g", { "aria-hidden": "true" });
  g.append(s("text", { class: "chart-axis", x: left + cell, y: 14, "text-anchor": "middle" }, "predicted"));
  g.append(s("text", { class: "chart-tick", x: left + cell / 2, y: topPad - 10, "text-anchor": "middle" }, "stays"));
  g.append(s("text", { class: "chart-tick", x: left + 1.5 * cell, y: topPad - 10, "text-anchor": "middle" }, "churns"));
  const rows = [
    ["actually stays", [["tn", tn, "true negative"], ["fp", fp, "false alarm"]]],
    ["actually churns", [["fn", fn, "missed churner"], ["tp", tp, "caught churner"]]],
  ];
  rows.forEach(([rowLabel, cells], r) => {
    const total = cells.reduce((sum, [, v]) => sum + v, 0) || 1;
    g.append(s("text", { class: "chart-tick", x: left - 8, y: topPad + r * cell + cell / 2 + 4, "text-anchor": "end" }, rowLabel));
    cells.forEach(([key, value, name], c) => {
      const good = key === "tn" || key === "tp";
      const share = value / total;
      const x = left + c * cell;
      const y = topPad + r * cell;
      g.append(s("rect", { class: `cm-cell ${good ? "cm-good" : "cm-bad"}`, x: x + 2, y: y + 2, width: cell - 4, height: cell - 4, rx: 8, "fill-opacity": (0.12 + 0.55 * share).toFixed(2), "data-cell": key }));
      g.append(s("text", { class: "cm-count", x: x + cell / 2, y: y + cell / 2, "text-anchor": "middle" }, String(value)));
      g.append(s("text", { class: "cm-name", x: x + cell / 2, y: y + cell / 2 + 17, "text-anchor": "middle" }, name));
      g.append(s("text", { class: "cm-name", x: x + cell / 2, y: y + cell / 2 + 30, "text-anchor": "middle" }, `${(share * 100).toFixed(0)}% of the row`));
    });
  });
  svg.append(g);
  return svg;
}
