// Small SVG charts: lines and dots over time or over a number, with axes, a grid, hover titles
// and a legend. Enough for a handful of series of up to a few thousand points.
import { h, s } from "./dom.js";
import { num } from "./format.js";

/**
 * @typedef {{ x: number, y: number, title?: string }} Point
 * @typedef {{ name: string, points: Point[], color: string, kind?: "line" | "dots" | "line+dots" | "steps", dash?: boolean }} Series
 * @typedef {{
 *   series: Series[],
 *   x: "time" | "number",
 *   yMin?: number, yMax?: number,
 *   height?: number,
 *   yFormat?: (v: number) => string,
 *   xFormat?: (v: number) => string,
 *   yTicks?: number[],
 *   xIntegers?: boolean,
 *   width?: number,
 *   empty?: string,
 *   label?: string,
 * }} ChartOptions
 */

const M = { left: 46, right: 14, top: 12, bottom: 26 };

/** Round tick values covering [lo, hi]. @param {number} lo @param {number} hi @param {number} n */
export function niceTicks(lo, hi, n = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo === hi) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) ?? raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** @param {number} t */
function timeTick(t, span = 0) {
  const d = new Date(t);
  if (span > 2 * 86400_000) return d.toLocaleDateString([], { month: "short", day: "numeric" });
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", ...(span < 600_000 ? { second: "2-digit" } : {}) });
}

/** @param {ChartOptions} o @returns {HTMLElement} */
export function chart(o) {
  // Drawn at the width it is shown at, so text keeps its size on wide and narrow screens.
  const W = Math.max(280, Math.round(o.width ?? 640));
  const H = o.height ?? 200;
  const pts = o.series.flatMap((se) => se.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const fig = h("figure", { class: "chart", "aria-label": o.label ?? null });
  if (pts.length === 0) {
    fig.append(h("div", { class: "chart-empty" }, o.empty ?? "No data yet"));
    return fig;
  }
  let x0 = Math.min(...pts.map((p) => p.x));
  let x1 = Math.max(...pts.map((p) => p.x));
  if (x0 === x1) {
    x0 -= o.x === "time" ? 60_000 : 1;
    x1 += o.x === "time" ? 60_000 : 1;
  }
  let y0 = o.yMin ?? Math.min(...pts.map((p) => p.y));
  let y1 = o.yMax ?? Math.max(...pts.map((p) => p.y));
  if (y0 === y1) {
    y0 -= Math.abs(y0) * 0.1 || 1;
    y1 += Math.abs(y1) * 0.1 || 1;
  } else if (o.yMin === undefined || o.yMax === undefined) {
    const pad = (y1 - y0) * 0.08;
    if (o.yMin === undefined) y0 -= pad;
    if (o.yMax === undefined) y1 += pad;
  }
  const px = (/** @type {number} */ x) => M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (/** @type {number} */ y) => M.top + (1 - (y - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const yFmt = o.yFormat ?? ((/** @type {number} */ v) => num(v, 3));
  const xFmt = o.xFormat ?? (o.x === "time" ? (/** @type {number} */ v) => timeTick(v, x1 - x0) : (/** @type {number} */ v) => num(v, 2));

  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img" });
  const grid = s("g", { class: "grid" });
  for (const t of o.yTicks ?? niceTicks(y0, y1, 4)) {
    if (t < y0 || t > y1) continue;
    grid.append(s("line", { x1: M.left, x2: W - M.right, y1: py(t), y2: py(t) }));
    grid.append(s("text", { x: M.left - 6, y: py(t) + 4, class: "tick tick-y" }, yFmt(t)));
  }
  const xt = o.x === "time" ? niceTimeTicks(x0, x1) : niceTicks(x0, x1, Math.max(2, Math.round(W / 110))).filter((t) => !o.xIntegers || Number.isInteger(t));
  for (const t of xt) grid.append(s("text", { x: px(t), y: H - 7, class: "tick tick-x" }, xFmt(t)));
  grid.append(s("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "axis" }));
  svg.append(grid);

  for (const se of o.series) {
    const ps = se.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    const kind = se.kind ?? "line";
    const g = s("g", { class: `series series-${kind}` });
    g.style.setProperty("--c", se.color);
    if ((kind === "line" || kind === "line+dots" || kind === "steps") && ps.length) {
      let d = "";
      ps.forEach((p, i) => {
        if (i === 0) d += `M${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`;
        else if (kind === "steps") d += `H${px(p.x).toFixed(1)}V${py(p.y).toFixed(1)}`;
        else d += `L${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`;
      });
      g.append(s("path", { d, class: se.dash ? "line dashed" : "line" }));
    }
    if (kind === "dots" || kind === "line+dots" || ps.length === 1) {
      for (const p of ps) {
        g.append(s("circle", { cx: px(p.x).toFixed(1), cy: py(p.y).toFixed(1), r: kind === "dots" ? 3.4 : 3.2, class: "dot" }, s("title", null, p.title ?? `${se.name}: ${yFmt(p.y)}`)));
      }
    }
    svg.append(g);
  }
  fig.append(svg);
  if (o.series.length > 1 || o.series[0]?.name) {
    fig.append(
      h(
        "figcaption",
        { class: "legend" },
        o.series.map((se) => {
          const sw = h("i", { class: `swatch swatch-${se.kind ?? "line"}` });
          sw.style.setProperty("--c", se.color);
          return h("span", { class: "legend-item" }, sw, se.name);
        }),
      ),
    );
  }
  return fig;
}

/** @param {number} t0 @param {number} t1 */
function niceTimeTicks(t0, t1) {
  const span = t1 - t0;
  const steps = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400].map((x) => x * 1000);
  const step = steps.find((st) => span / st <= 6) ?? 30 * 86400_000;
  const offset = new Date().getTimezoneOffset() * 60_000;
  const out = [];
  for (let t = Math.ceil((t0 - offset) / step) * step + offset; t <= t1; t += step) out.push(t);
  return out;
}
