// Grouping sequences into padded runs. Sequences are right-padded to a length bucket: under a
// causal mask a real token never attends to the padding after it, so padding changes nothing but
// cost, and few distinct lengths keep ONNX Runtime's memory arena warm.

/** Sequence lengths are rounded up to a multiple of 32 (≤ 256), 64 (≤ 1024), then 128. */
export function bucketLength(T: number): number {
  const step = T <= 256 ? 32 : T <= 1024 ? 64 : 128;
  return Math.max(step, Math.ceil(T / step) * step);
}

export interface Run {
  /** Positions of the items in the caller's list. */
  items: number[];
  /** Padded sequence length. */
  T: number;
}

/**
 * Packs sequences (longest first) into runs of B × T ≤ batchTokens, where T is the bucket of the
 * run's longest sequence. A sequence longer than batchTokens gets a run of its own.
 */
export function planRuns(lengths: readonly number[], batchTokens: number): Run[] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const runs: Run[] = [];
  let current: Run | null = null;
  for (const i of order) {
    if (current && (current.items.length + 1) * current.T <= batchTokens) {
      current.items.push(i);
      continue;
    }
    current = { items: [i], T: bucketLength(lengths[i]!) };
    runs.push(current);
  }
  return runs;
}
