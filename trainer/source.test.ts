import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Store, type Judgment } from "../core/index.js";
import { makeTurn } from "../test/support/rows.js";
import { StoreSampleSource } from "./source.js";
import { fakeTokenizer } from "./testing/fake-backend.js";

let dir: string;
let writer: Store;
let reader: Store;
beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-source-"));
  writer = await Store.open({ dataDir: dir, writes: ["turns", "judgments"] });
  reader = await Store.open({ dataDir: dir });
});
afterEach(async () => {
  await writer.close();
  await reader.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const judgment = (i: number, score: -1 | 0 | 1, createdAt: string, hint: string | null = null): Judgment => ({
  id: `call-${i}`, turnId: `call-${i}`, sessionId: "s1", score, method: "prm", votes: [], raw: [], hint,
  nextStateIds: [], judgeModel: null, costTokens: 0, costMs: 0, createdAt,
});

describe("StoreSampleSource", () => {
  it("reads new and rewritten judgments incrementally, and late old rows at the next full read", async () => {
    let now = Date.parse("2026-01-01T12:00:00Z");
    const at = (msAgo: number) => new Date(now - msAgo).toISOString();
    const source = new StoreSampleSource(reader, { mode: "combined", tokenizer: fakeTokenizer, maxTokens: 64 }, () => now);
    const ids = async () => (await source.scan(new Map(), 1)).ready.map((r) => `${r.sample.id}:${r.sample.reward}`);

    for (const i of [1, 2, 3, 4]) writer.put("turns", makeTurn(i));
    writer.put("judgments", judgment(1, 1, at(0)));
    await writer.flush();
    expect(await ids()).toEqual(["call-1:1"]);

    now += 5_000;
    writer.put("judgments", judgment(2, -1, at(0)));
    writer.put("judgments", judgment(1, -1, at(0))); // feedback overrides: same id, new time
    writer.put("judgments", judgment(3, 1, at(60_000))); // late, but within the overlap
    writer.put("judgments", judgment(4, 1, at(30 * 60_000))); // far older than anything seen: next full read
    await writer.flush();
    expect(await ids()).toEqual(["call-1:-1", "call-2:-1", "call-3:1"]);
    now += 10 * 60_000;
    expect(await ids()).toEqual(["call-1:-1", "call-2:-1", "call-3:1", "call-4:1"]);
    // Trained ones (uses ≥ epochs) and set-aside ones are not ready.
    const scan = await source.scan(new Map([["call-1", 1]]), 1, new Set(["call-2"]));
    expect(scan.ready.map((r) => r.sample.id)).toEqual(["call-3", "call-4"]);
  });

  it("waits for a judged turn the store does not show yet", async () => {
    const source = new StoreSampleSource(reader, { mode: "rl", tokenizer: fakeTokenizer, maxTokens: 64 });
    writer.put("judgments", judgment(7, 1, new Date().toISOString()));
    await writer.flush();
    expect(await source.scan(new Map(), 1)).toMatchObject({ ready: [], awaitingTurn: 1 });
    writer.put("turns", makeTurn(7));
    await writer.flush();
    expect(await source.scan(new Map(), 1)).toMatchObject({ ready: [{ sample: { id: "call-7" } }], awaitingTurn: 0 });
  });
});
