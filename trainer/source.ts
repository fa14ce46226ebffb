// Judged main-line turns from the store, as samples ready to train on. Each judged turn is fetched
// and tokenized once; a judgment may be rewritten (explicit feedback overrides the model judge),
// so its sample is rebuilt whenever the judgment's score or hint changes.
import type { Judgment, Sample, Store, Turn } from "../core/index.js";
import { sqlString } from "../core/index.js";
import { buildSample, exchangeFromTurn, SKIP_REASONS, type SampleContext, type SampleResult, type SkipReason } from "./samples.js";

export interface ReadySample {
  sample: Sample;
  /** Order key: when the turn was served. */
  startedAt: string;
  /** How many steps have used it so far. */
  uses: number;
}

export interface Scan {
  /** In training order: least used first, then oldest first. */
  ready: ReadySample[];
  skipped: Record<SkipReason, number>;
  /** Judged, not yet trained on, but their turn is not visible in the store yet. */
  awaitingTurn: number;
}

export function emptySkips(): Record<SkipReason, number> {
  return Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>;
}

const FETCH_CHUNK = 200;

interface Built {
  signature: string;
  /** null: the turn is not a trainable main-line call (side turn, failed call). */
  result: SampleResult | null;
  startedAt: string;
}

/** What the trainer keeps of a judgment. */
type JudgmentKey = Pick<Judgment, "id" | "turnId" | "score" | "hint" | "createdAt">;

/**
 * Polls read only judgments written since the last one seen (a rewritten judgment gets a new
 * createdAt), minus this overlap for rows that reach LanceDB out of order; a full read every
 * FULL_SCAN_MS is the backstop.
 */
const OVERLAP_MS = 120_000;
const FULL_SCAN_MS = 10 * 60_000;

export class StoreSampleSource {
  private built = new Map<string, Built>();
  private judgments = new Map<string, JudgmentKey>();
  private newest: string | null = null;
  private lastFullScan = 0;

  constructor(
    private readonly store: Store,
    private readonly ctx: SampleContext,
    private readonly now: () => number = Date.now,
  ) {}

  private async refreshJudgments(): Promise<void> {
    const full = this.newest === null || this.now() - this.lastFullScan >= FULL_SCAN_MS;
    let rows: Judgment[];
    if (full) {
      rows = await this.store.list("judgments");
      this.judgments.clear();
      this.lastFullScan = this.now();
    } else {
      const since = new Date(Date.parse(this.newest!) - OVERLAP_MS).toISOString();
      rows = await this.store.list("judgments", { sql: `created_at >= ${sqlString(since)}` });
    }
    for (const j of rows) {
      this.judgments.set(j.id, { id: j.id, turnId: j.turnId, score: j.score, hint: j.hint, createdAt: j.createdAt });
      if (this.newest === null || j.createdAt > this.newest) this.newest = j.createdAt;
    }
  }

  /** `uses`: how often each sample id was trained on (from the version manifests). */
  async scan(uses: Map<string, number>, epochs: number, exclude: Set<string> = new Set()): Promise<Scan> {
    await this.refreshJudgments();
    const judgments = [...this.judgments.values()];
    const open = judgments.filter((j) => (uses.get(j.id) ?? 0) < epochs && !exclude.has(j.id));
    const stale = open.filter((j) => this.built.get(j.id)?.signature !== signatureOf(j));
    const turns = await this.fetchTurns(stale.map((j) => j.turnId));
    let awaitingTurn = 0;
    for (const j of stale) {
      const turn = turns.get(j.turnId);
      if (!turn) {
        // Not visible yet (the sidecar may not have flushed it): ask again next scan.
        this.built.delete(j.id);
        awaitingTurn++;
        continue;
      }
      this.built.set(j.id, this.build(turn, j));
    }

    const skipped = emptySkips();
    const ready: ReadySample[] = [];
    for (const j of open) {
      const b = this.built.get(j.id);
      if (!b?.result) continue;
      if ("skip" in b.result) skipped[b.result.skip]++;
      else ready.push({ sample: b.result.sample, startedAt: b.startedAt, uses: uses.get(j.id) ?? 0 });
    }
    ready.sort((a, b) => a.uses - b.uses || cmp(a.startedAt, b.startedAt) || cmp(a.sample.id, b.sample.id));
    return { ready, skipped, awaitingTurn };
  }

  private build(turn: Turn, j: JudgmentKey): Built {
    const ex = exchangeFromTurn(turn, j);
    // The sample is keyed by the judgment's id (= the turn id), which the manifests record.
    const result = ex ? buildSample({ ...ex, id: j.id }, this.ctx) : null;
    return { signature: signatureOf(j), result, startedAt: turn.startedAt };
  }

  private async fetchTurns(ids: string[]): Promise<Map<string, Turn>> {
    const found = new Map<string, Turn>();
    for (let i = 0; i < ids.length; i += FETCH_CHUNK) {
      const chunk = ids.slice(i, i + FETCH_CHUNK);
      const rows = await this.store.list("turns", { sql: `id IN (${chunk.map(sqlString).join(", ")})` });
      for (const t of rows) found.set(t.id, t);
    }
    return found;
  }

  /** Drops cached samples that will never be needed again (trained `epochs` times). */
  forget(ids: string[]): void {
    for (const id of ids) this.built.delete(id);
  }
}

function signatureOf(j: JudgmentKey): string {
  return `${j.score}\u0000${j.hint ?? ""}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
