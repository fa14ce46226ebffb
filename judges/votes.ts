// Reading a judge model's answer and combining votes, as OpenClaw-RL does: the last
// `\boxed{…}` counts, only 1, −1 and 0 are valid; invalid votes are ignored; the most common
// valid vote wins, and a tie for first place (or no valid vote) gives 0.
import type { Reward } from "../core/index.js";

export interface ParsedAnswer {
  score: Reward | null;
  hint: string | null;
}

const BOXED = /\\boxed\s*\{\s*([+-]?\d+)\s*\}/g;
const HINT = /\[HINT_START\]([\s\S]*?)\[HINT_END\]/g;

export function parseAnswer(raw: string): ParsedAnswer {
  let score: Reward | null = null;
  const boxes = [...raw.matchAll(BOXED)];
  const last = boxes[boxes.length - 1];
  if (last) {
    const n = Number(last[1]);
    score = n === 1 || n === -1 || n === 0 ? (n as Reward) : null;
  }
  const hints = [...raw.matchAll(HINT)];
  const hint = hints.length ? hints[hints.length - 1]![1]!.trim() || null : null;
  return { score, hint };
}

/** [1, −1, null] → 0; [1, null, null] → 1; [] or all null → 0. */
export function majority(votes: (Reward | null)[]): Reward {
  const counts = new Map<Reward, number>();
  for (const v of votes) if (v !== null) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: Reward = 0;
  let bestCount = 0;
  let tie = false;
  for (const [v, c] of counts) {
    if (c > bestCount) {
      best = v;
      bestCount = c;
      tie = false;
    } else if (c === bestCount) {
      tie = true;
    }
  }
  return bestCount === 0 || tie ? 0 : best;
}
