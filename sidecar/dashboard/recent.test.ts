// latestRows on a real LanceDB store: the newest rows by time, exactly as sorting the whole table
// would give them, while no query fetches more than its cap (the table is never loaded whole).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Store, type Judgment, type QueryOptions, type TableName, type Tables } from "../../core/index.js";
import { latestRows, type ReadStore } from "./recent.js";

const DAY = 86_400_000;
const NOW = Date.now();
let dir: string;
let store: Store;
let all: Judgment[];

function judgment(i: number, at: number): Judgment {
  return {
    id: `j-${i}`, turnId: `t-${i}`, sessionId: `s-${i % 7}`, score: ([1, 0, -1] as const)[i % 3]!, method: "prm", votes: [1],
    raw: [], hint: null, nextStateIds: [], judgeModel: null, costTokens: 0, costMs: 0, createdAt: new Date(at).toISOString(),
  };
}

/** The store, counting what each query asked for and got. */
function counting(s: ReadStore) {
  const calls: { limit: number | undefined; got: number }[] = [];
  const wrapped: ReadStore = {
    async list<T extends TableName>(table: T, q?: QueryOptions<T>): Promise<Tables[T][]> {
      const rows = await s.list(table, q);
      calls.push({ limit: q?.limit, got: rows.length });
      return rows;
    },
    count: (t, w) => s.count(t, w),
    health: () => s.health(),
  };
  return { store: wrapped, calls };
}

const newestFirst = (rows: Judgment[]) => [...rows].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-recent-"));
  store = await Store.open({ dataDir: dir, writes: ["judgments"], flushBatch: 100_000 });
  all = [];
  let i = 0;
  // 60 days of sparse history, then a busy last hour with a burst of 900 rows in one minute.
  for (let d = 60; d >= 1; d--) for (let k = 0; k < 15; k++) all.push(judgment(i++, NOW - d * DAY + k * 3_600_000 + i));
  for (let k = 0; k < 900; k++) all.push(judgment(i++, NOW - 30 * 60_000 + k * 50));
  for (let k = 0; k < 100; k++) all.push(judgment(i++, NOW - 20 * 60_000 + k * 6_000));
  for (const j of all) store.put("judgments", j, { insert: true });
  await store.flush();
});

afterAll(async () => {
  await store?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe("latestRows", () => {
  it("returns exactly the newest rows, narrowing a full window, with every query capped", async () => {
    const { store: s, calls } = counting(store);
    for (const limit of [10, 150, 400]) {
      calls.length = 0;
      const res = await latestRows(s, { table: "judgments", timeField: "createdAt", limit });
      expect(res.rows.map((r) => r.id)).toEqual(newestFirst(all).slice(0, limit).map((r) => r.id));
      expect(res.more).toBe(true);
      const cap = Math.max(4 * limit, 200);
      for (const c of calls) {
        expect(c.limit).toBe(cap);
        expect(c.got).toBeLessThanOrEqual(cap);
      }
      // The burst made the first window full at least once for the small limits.
      if (limit < 225) expect(calls.some((c) => c.got === cap)).toBe(true);
      expect(calls.reduce((n, c) => n + c.got, 0)).toBeLessThan(all.length);
      expect(res.queries).toBe(calls.length);
    }
  });

  it("pages backwards with `before` and stops at `since`, with no gap and no repeat", async () => {
    const pages: string[] = [];
    let before: string | null = null;
    for (let n = 0; n < 8; n++) {
      const res: Awaited<ReturnType<typeof latestRows<"judgments">>> = await latestRows(store, { table: "judgments", timeField: "createdAt", limit: 120, before });
      pages.push(...res.rows.map((r) => r.id));
      before = res.rows.at(-1)!.createdAt;
    }
    expect(pages).toEqual(newestFirst(all).slice(0, 960).map((r) => r.id));
    const since = new Date(NOW - 3 * DAY).toISOString();
    const res = await latestRows(store, { table: "judgments", timeField: "createdAt", limit: 5_000, since });
    const want = newestFirst(all).filter((r) => r.createdAt >= since);
    expect(res.rows.map((r) => r.id)).toEqual(want.map((r) => r.id));
    expect(res.more).toBe(false);
  });

  it("applies the SQL pre-filter and the exact test in JS", async () => {
    const res = await latestRows(store, {
      table: "judgments",
      timeField: "createdAt",
      limit: 40,
      sql: "session_id = 's-3'",
      keep: (j) => j.score === 1,
    });
    expect(res.rows.map((r) => r.id)).toEqual(newestFirst(all).filter((j) => j.sessionId === "s-3" && j.score === 1).slice(0, 40).map((r) => r.id));
  });

  it("includes this process's rows that wait for a flush (they skip LanceDB's SQL)", async () => {
    const fresh = judgment(99_999, NOW + 1_000);
    store.put("judgments", fresh);
    const res = await latestRows(store, { table: "judgments", timeField: "createdAt", limit: 3 });
    expect(res.rows[0]!.id).toBe(fresh.id);
    expect(res.rows.map((r) => r.id).slice(1)).toEqual(newestFirst(all).slice(0, 2).map((r) => r.id));
    await store.flush();
  });

  it("rows crowding one millisecond beyond the cap: the newer rows exactly, then some of the crowd, in bounded queries", async () => {
    const crowdAt = NOW - 5 * DAY + 123;
    const writer = await Store.open({ dataDir: dir, writes: ["judgments"] });
    const crowd = Array.from({ length: 30 }, (_, k) => ({ ...judgment(50_000 + k, crowdAt), sessionId: "crowd" }));
    const newer = [1, 2].map((k) => ({ ...judgment(60_000 + k, crowdAt + k * 1_000), sessionId: "crowd" }));
    for (const j of [...crowd, ...newer]) writer.put("judgments", j, { insert: true });
    await writer.close();
    const res = await latestRows(store, { table: "judgments", timeField: "createdAt", limit: 5, cap: 10, where: { sessionId: "crowd" } });
    expect(res.rows.slice(0, 2).map((r) => r.id)).toEqual([newer[1]!.id, newer[0]!.id]);
    expect(res.rows.length).toBe(5);
    expect(res.rows.slice(2).every((r) => r.createdAt === new Date(crowdAt).toISOString())).toBe(true);
    expect(res.queries).toBeLessThanOrEqual(40);
  });

  it("an empty or missing table answers at once with nothing", async () => {
    const { store: s, calls } = counting(store);
    const res = await latestRows(s, { table: "train_steps", timeField: "createdAt", limit: 50 });
    expect(res.rows).toEqual([]);
    expect(res.more).toBe(false);
    // From the last hour back to 2020, widening four times each step.
    expect(calls.length).toBeLessThanOrEqual(12);
  });
});
