// When a step runs: as soon as B samples are ready, or once the oldest ready sample has waited
// T seconds. A partial batch is never held back waiting for a full one beyond that.

export interface BatchPolicy {
  batchSize: number;
  maxWaitMs: number;
}

export interface Decision<T> {
  batch: T[] | null;
  /** When nothing is due: how long until the oldest ready item will be (null: nothing ready). */
  dueInMs: number | null;
}

/** `ready` in training order; `firstSeen` gives when each became ready (ms). */
export function decideBatch<T>(ready: T[], firstSeen: (item: T) => number, now: number, p: BatchPolicy): Decision<T> {
  if (ready.length === 0) return { batch: null, dueInMs: null };
  if (ready.length >= p.batchSize) return { batch: ready.slice(0, p.batchSize), dueInMs: 0 };
  const oldest = Math.min(...ready.map(firstSeen));
  const waited = now - oldest;
  if (waited >= p.maxWaitMs) return { batch: ready.slice(), dueInMs: 0 };
  return { batch: null, dueInMs: p.maxWaitMs - waited };
}

/** Remembers when each id was first seen ready by this process, forgetting ids no longer ready. */
export class ReadyClock {
  private seen = new Map<string, number>();

  observe(ids: string[], now: number): void {
    const keep = new Set(ids);
    for (const id of this.seen.keys()) if (!keep.has(id)) this.seen.delete(id);
    for (const id of ids) if (!this.seen.has(id)) this.seen.set(id, now);
  }

  firstSeen(id: string): number {
    return this.seen.get(id) ?? Number.POSITIVE_INFINITY;
  }
}
