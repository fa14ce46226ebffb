import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig, Store, type Config, type NextState, type Turn } from "../core/index.js";
import { makeTurn } from "../test/support/rows.js";
import type { JudgeInput } from "./input.js";
import { startJudgeLoop, type JudgeLoop } from "./loop.js";
import { readJudgeStatus } from "./status.js";
import { startScriptedJudge, type ScriptedJudge } from "./testing/scripted-judge.js";
import type { Judge, Verdict } from "./verdict.js";

let dir: string;
let sidecar: Store;
let loop: JudgeLoop | null = null;
let scripted: ScriptedJudge | null = null;
let clock = Date.parse("2026-11-21T10:00:00Z");
const now = () => clock;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "judge-loop-"));
  // The test plays the sidecar: it writes turns and next states.
  sidecar = await Store.open({ dataDir: dir, writes: ["turns", "next_states"] });
  clock = Date.parse("2026-11-21T10:00:00Z");
  nsSeq = 0;
});

afterEach(async () => {
  await loop?.stop();
  loop = null;
  await sidecar.close();
  await scripted?.close();
  scripted = null;
  fs.rmSync(dir, { recursive: true, force: true });
});

function config(judge: Record<string, unknown> = {}): Config {
  return loadConfig({ env: {}, flags: { dataDir: dir, logLevel: "silent", judge: { method: "rules", settleMs: 5000, ...judge } } });
}

let nsSeq = 0;
function state(turnId: string | null, kind: NextState["kind"], text: string | null, over: Partial<NextState> = {}): NextState {
  const at = new Date(clock).toISOString();
  return {
    id: `ns-${++nsSeq}`,
    kind,
    sessionId: "s1",
    forRunId: null,
    forCallId: turnId,
    turnId,
    text,
    score: null,
    toolName: null,
    toolCallId: null,
    exitCode: null,
    at,
    receivedAt: at,
    source: "plugin",
    ...over,
  };
}

function withTools(i: number, n: number): Turn {
  return makeTurn(i, {
    response: {
      id: "c",
      content: "",
      reasoning: null,
      finishReason: "tool_calls",
      toolCalls: Array.from({ length: n }, (_, k) => ({ id: `t${k}`, type: "function" as const, function: { name: "exec", arguments: `{"command":"ls ${k}"}` } })),
    },
  });
}

async function write(turns: Turn[], states: NextState[]): Promise<void> {
  for (const t of turns) sidecar.put("turns", t);
  for (const s of states) sidecar.put("next_states", s);
  await sidecar.flush();
}

// Store.list reads LanceDB, then the rows still waiting in memory; a flush finishing in between
// could hide a row from that one read, so the tests flush first.
async function judgment(l: JudgeLoop, id: string) {
  await l.store.flush();
  return l.store.get("judgments", id);
}
async function judgments(l: JudgeLoop) {
  await l.store.flush();
  return l.store.list("judgments", { orderBy: "id" });
}

async function start(cfg = config(), judge?: Judge): Promise<JudgeLoop> {
  loop = await startJudgeLoop(cfg, { manual: true, now, judge, retryBaseMs: 1000, retryCapMs: 4000 });
  return loop;
}

describe("judge loop", () => {
  it("judges each main, completed turn that has a next state, once, with the turn's id", async () => {
    await write(
      [makeTurn(1), makeTurn(2), makeTurn(3, { turnType: "side" }), makeTurn(4, { status: "upstream_error" }), makeTurn(5)],
      [
        state("call-1", "user_message", "perfect, thanks!"),
        state("call-2", "user_message", "no, that's wrong"),
        state("call-3", "user_message", "thanks"),
        state("call-4", "user_message", "thanks"),
        state(null, "user_message", "an event no turn was found for"),
      ],
    );
    const l = await start();
    await l.runUntilIdle();
    const rows = await judgments(l);
    expect(rows.map((r) => [r.id, r.turnId, r.score, r.method])).toEqual([
      ["call-1", "call-1", 1, "rules"],
      ["call-2", "call-2", -1, "rules"],
    ]);
    expect(rows[0]!.nextStateIds).toEqual(["ns-1"]);
    expect(l.status()).toMatchObject({ judged: 2, judgedThisRun: 2, waiting: 0 });
    await l.runUntilIdle();
    expect(l.status().judgedThisRun).toBe(2);
  });

  it("never judges a turn twice, across restarts", async () => {
    await write([makeTurn(1), makeTurn(2)], [state("call-1", "user_message", "thanks"), state("call-2", "user_message", "thanks")]);
    let l = await start();
    await l.runUntilIdle();
    const first = await judgments(l);
    await l.stop();
    await write([makeTurn(3)], [state("call-3", "user_message", "great")]);
    clock += 60_000;
    l = await start();
    await l.runUntilIdle();
    expect(l.status().judgedThisRun).toBe(1);
    const all = await judgments(l);
    expect(all.map((r) => r.id)).toEqual(["call-1", "call-2", "call-3"]);
    expect(all.slice(0, 2).map((r) => r.createdAt)).toEqual(first.map((r) => r.createdAt));
  });

  it("waits for every tool call's result, or for the settle time, before judging", async () => {
    await write([withTools(1, 2)], [state("call-1", "tool_result", "a.txt", { toolName: "exec" })]);
    const l = await start();
    await l.runUntilIdle();
    expect(l.status()).toMatchObject({ judgedThisRun: 0, settling: 1, waiting: 1 });
    await write([], [state("call-1", "tool_result", "b.txt", { toolName: "exec" })]);
    await l.runUntilIdle();
    const j = await judgment(l, "call-1");
    expect(j?.nextStateIds).toEqual(["ns-1", "ns-2"]);
    // A turn whose other results never come is judged once its last state is settleMs old.
    await write([withTools(2, 3)], [state("call-2", "tool_error", "ENOENT: no such file or directory, open 'x'")]);
    await l.runUntilIdle();
    expect(await judgment(l, "call-2")).toBeNull();
    clock += 5000;
    await l.runUntilIdle();
    expect((await judgment(l, "call-2"))?.score).toBe(-1);
  });

  it("judges from all of a turn's next states, and explicit feedback overrides the rest", async () => {
    await write([makeTurn(1)], [state("call-1", "tool_result", "ok"), state("call-1", "user_message", "thanks!"), state("call-1", "feedback", "", { score: -1 })]);
    const l = await start();
    await l.runUntilIdle();
    expect(await judgment(l, "call-1")).toMatchObject({ score: -1, method: "feedback", nextStateIds: ["ns-1", "ns-2", "ns-3"] });
  });

  it("rewrites a judgment when explicit feedback arrives after it (same id)", async () => {
    await write([makeTurn(1)], [state("call-1", "user_message", "too long — two sentences at most, please")]);
    const l = await start();
    await l.runUntilIdle();
    const before = await judgment(l, "call-1");
    expect(before).toMatchObject({ score: -1, method: "rules", hint: "Answer in at most two sentences." });
    clock += 1000;
    await write([], [state("call-1", "feedback", "/bad", { score: -1 })]);
    await l.runUntilIdle();
    const after = await judgment(l, "call-1");
    expect(after).toMatchObject({ score: -1, method: "feedback", hint: "Answer in at most two sentences.", nextStateIds: ["ns-1", "ns-2"] });
    expect(after!.createdAt).not.toBe(before!.createdAt);
    clock += 1000;
    await write([], [state("call-1", "feedback", "/good", { score: 1 })]);
    await l.runUntilIdle();
    expect(await judgment(l, "call-1")).toMatchObject({ score: 1, method: "feedback", hint: null });
    expect(await l.store.count("judgments")).toBe(1);
    expect(l.status().overriddenThisRun).toBe(2);
  });

  it("waits for a turn the sidecar has not written yet", async () => {
    await write([], [state("call-9", "user_message", "thanks")]);
    const l = await start();
    await l.runUntilIdle();
    expect(l.status().judgedThisRun).toBe(0);
    await write([makeTurn(9)], []);
    await l.runUntilIdle();
    expect((await judgment(l, "call-9"))?.score).toBe(1);
  });

  it("leaves a turn whose session ended without a next state unscored, or judges it from the end, as configured", async () => {
    await write([makeTurn(1), makeTurn(2)], [state("call-1", "user_message", "thanks"), state(null, "session_end", null)]);
    clock += 10_000;
    let l = await start(config({ sessionEnd: "skip" }));
    await l.runUntilIdle();
    expect(await judgment(l, "call-2")).toBeNull();
    expect(l.status().unscoredSessionEnd).toBe(1);
    expect(readJudgeStatus(dir)?.unscoredSessionEnd).toBe(1);
    await l.stop();
    l = await start(config({ sessionEnd: "judge" }));
    await l.runUntilIdle();
    const j = await judgment(l, "call-2");
    expect(j).toMatchObject({ score: 0, method: "rules", nextStateIds: ["ns-2"] });
    expect(await l.store.count("judgments")).toBe(2);
  });

  it("retries a failing judge with backoff and skips nothing; the status file shows the error meanwhile", async () => {
    scripted = await startScriptedJudge({ failFirst: 4 });
    await write([makeTurn(1), makeTurn(2)], [state("call-1", "user_message", "hmm"), state("call-2", "user_message", "guess so")]);
    const l = await start(config({ method: "prm", endpoint: scripted.url, model: "m", votes: 1, retries: 0, rulesFirst: true }));
    await l.runUntilIdle();
    expect(l.status()).toMatchObject({ judgedThisRun: 0, retrying: 2, failuresThisRun: 2 });
    const s = readJudgeStatus(dir)!;
    expect(s.lastError?.message).toMatch(/HTTP 503/);
    expect(s.waiting).toBe(2);
    clock += 1000;
    await l.runUntilIdle();
    expect(l.status()).toMatchObject({ judgedThisRun: 0, failuresThisRun: 4 });
    clock += 1500;
    await l.runUntilIdle();
    expect(l.status().retrying).toBe(2);
    clock += 500;
    await l.runUntilIdle();
    expect(l.status()).toMatchObject({ judgedThisRun: 2, retrying: 0, waiting: 0 });
    const rows = await judgments(l);
    expect(rows.map((r) => r.method)).toEqual(["prm", "prm"]);
    expect(rows.every((r) => r.votes.length === 1 && r.raw.length === 1 && r.judgeModel === "m")).toBe(true);
  });

  it("keeps at most `concurrency` turns in flight", async () => {
    let active = 0;
    let peak = 0;
    const slow: Judge = {
      name: "slow",
      async judge(_i: JudgeInput): Promise<Verdict> {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 20));
        active--;
        return { score: 1, method: "prm", votes: [1], raw: ["\\boxed{1}"], hint: null, judgeModel: "m", costTokens: 1, costMs: 20 };
      },
    };
    const turns = Array.from({ length: 9 }, (_, i) => makeTurn(i));
    await write(turns, turns.map((t) => state(t.id, "user_message", "hmm")));
    const l = await start(config({ concurrency: 3 }), slow);
    await l.runUntilIdle();
    expect(l.status().judgedThisRun).toBe(9);
    expect(peak).toBe(3);
  });

  it("writes a status file for `clawloop status`", async () => {
    await write([makeTurn(1)], [state("call-1", "user_message", "thanks")]);
    const l = await start();
    await l.runUntilIdle();
    const s = readJudgeStatus(dir)!;
    expect(s).toMatchObject({ loop: "judge", state: "running", judge: "rules", judged: 1, waiting: 0, byScore: { "1": 1, "0": 0, "-1": 0 }, lastError: null });
    expect(s.pid).toBe(process.pid);
    await l.stop();
    loop = null;
    expect(readJudgeStatus(dir)!.state).toBe("stopped");
  });
});
