// The learning curve as a self-contained SVG: satisfaction on held-out questions (with ±1
// standard error bars) against interactions, one point per measured version, the target as a
// dashed line. No fonts or scripts from outside; it opens in any browser.
import type { CurvePoint } from "./summary.js";

export interface ChartOptions {
  title: string;
  subtitle?: string;
  target?: number;
  width?: number;
  height?: number;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const fmt = (x: number) => (Math.round(x * 10) / 10).toString();

export function learningCurveSvg(points: CurvePoint[], opts: ChartOptions): string {
  const W = opts.width ?? 720;
  const H = opts.height ?? 420;
  const m = { left: 64, right: 36, top: 64, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const maxX = Math.max(1, ...points.map((p) => p.afterInteractions));
  const x = (v: number) => m.left + (v / maxX) * pw;
  const y = (r: number) => m.top + (1 - Math.min(1, Math.max(0, r))) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${m.left}" y="28" font-size="18" font-weight="600" fill="#111">${esc(opts.title)}</text>`);
  if (opts.subtitle) out.push(`<text x="${m.left}" y="48" font-size="13" fill="#555">${esc(opts.subtitle)}</text>`);
  // Grid and y axis.
  for (let r = 0; r <= 1.0001; r += 0.2) {
    const yy = fmt(y(r));
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${yy}" y2="${yy}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.left - 8}" y="${fmt(y(r) + 4)}" font-size="12" text-anchor="end" fill="#555">${Math.round(r * 100)}%</text>`);
  }
  // X axis ticks: about six, on round numbers.
  const step = [1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 250, 500].find((s) => maxX / s <= 8) ?? Math.ceil(maxX / 8);
  for (let v = 0; v <= maxX; v += step) {
    out.push(`<line x1="${fmt(x(v))}" x2="${fmt(x(v))}" y1="${m.top + ph}" y2="${m.top + ph + 5}" stroke="#888"/>`);
    out.push(`<text x="${fmt(x(v))}" y="${m.top + ph + 20}" font-size="12" text-anchor="middle" fill="#555">${v}</text>`);
  }
  out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}" stroke="#888"/>`);
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}" stroke="#888"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 14}" font-size="13" text-anchor="middle" fill="#333">interactions with the simulated user</text>`);
  out.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" font-size="13" text-anchor="middle" fill="#333">held-out satisfaction</text>`);
  if (opts.target !== undefined) {
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${fmt(y(opts.target))}" y2="${fmt(y(opts.target))}" stroke="#d97706" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${m.left + pw - 4}" y="${fmt(y(opts.target) - 6)}" font-size="12" text-anchor="end" fill="#d97706">target ${Math.round(opts.target * 100)}%</text>`);
  }
  const sorted = [...points].sort((a, b) => a.afterInteractions - b.afterInteractions);
  for (const p of sorted) {
    if (p.stderr > 0) {
      out.push(`<line x1="${fmt(x(p.afterInteractions))}" x2="${fmt(x(p.afterInteractions))}" y1="${fmt(y(p.rate - p.stderr))}" y2="${fmt(y(p.rate + p.stderr))}" stroke="#93c5fd" stroke-width="2"/>`);
    }
  }
  if (sorted.length > 1) out.push(`<polyline fill="none" stroke="#2563eb" stroke-width="2.5" points="${sorted.map((p) => `${fmt(x(p.afterInteractions))},${fmt(y(p.rate))}`).join(" ")}"/>`);
  for (const p of sorted) {
    const label = `${p.version ?? "base"}: ${Math.round(p.rate * 100)}% ± ${Math.round(p.stderr * 100)} after ${p.afterInteractions} interactions; perplexity ${p.perplexityChange >= 0 ? "+" : ""}${(p.perplexityChange * 100).toFixed(1)}%`;
    out.push(`<circle cx="${fmt(x(p.afterInteractions))}" cy="${fmt(y(p.rate))}" r="4.5" fill="${p.version ? "#2563eb" : "#6b7280"}"><title>${esc(label)}</title></circle>`);
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
