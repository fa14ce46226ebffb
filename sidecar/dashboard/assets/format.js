// How numbers, times and rewards read on the page.

/** @param {string | null | undefined} iso */
export function ago(iso) {
  if (!iso) return "—";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 0) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** @param {string | null | undefined} iso */
export function clock(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const sameDay = new Date().toDateString() === d.toDateString();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return sameDay ? time : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

/** @param {number | null | undefined} ms */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60_000)}m ${Math.round((ms % 60_000) / 1000)}s`;
}

/** @param {number | null | undefined} x @param {number} [digits] */
export function num(x, digits = 3) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "—";
  if (x !== 0 && (Math.abs(x) >= 1e5 || Math.abs(x) < 1e-3)) return x.toExponential(2);
  return Number(x.toFixed(digits)).toLocaleString();
}

/** @param {number | null | undefined} n */
export function count(n) {
  return n === null || n === undefined ? "—" : n.toLocaleString();
}

/** @param {number | null | undefined} score */
export function rewardText(score) {
  if (score === null || score === undefined) return "unjudged";
  return score > 0 ? "+1" : score < 0 ? "−1" : "0";
}

/** @param {number | null | undefined} score */
export function rewardClass(score) {
  if (score === null || score === undefined) return "reward reward-none";
  return score > 0 ? "reward reward-pos" : score < 0 ? "reward reward-neg" : "reward reward-zero";
}

/** @param {string} s @param {number} max */
export function clip(s, max) {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
