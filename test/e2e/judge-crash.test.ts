// The judge loop is idempotent across a crash: `clawloop judge` in a real child process is
// killed with SIGKILL mid-way, restarted, and in the end every turn has exactly one judgment,
// the judgments written before the kill are the ones kept (never judged again), and none is skipped.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Store, type NextState } from "../../core/index.js";
import { startScriptedJudge, type ScriptedJudge } from "../../judges/testing/scripted-judge.js";
import { makeTurn } from "../support/rows.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const ENTRY = 'const { main } = await import("./cli/main.ts"); await main(["node", "clawloop", ...process.argv.slice(1)]);';
const TURNS = 24;

let dir = "";
let judge: ScriptedJudge | null = null;
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.length = 0;
  await judge?.close();
  judge = null;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Logged {
  turnId: string;
  createdAt: string;
}

function runJudge(args: string[], onJudged: (l: Logged) => void): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", ENTRY, "--", "judge", "--data", dir, ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      CLAWLOOP_HOME: dir,
      CLAWLOOP_JUDGE_VOTES: "1",
      CLAWLOOP_JUDGE_CONCURRENCY: "2",
      CLAWLOOP_JUDGE_POLL_MS: "100",
      CLAWLOOP_JUDGE_RULES_FIRST: "false",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  readline.createInterface({ input: child.stdout! }).on("line", (line) => {
    try {
      const rec = JSON.parse(line) as { msg?: string; turnId?: string; createdAt?: string };
      if (rec.msg === "judged" && rec.turnId && rec.createdAt) onJudged({ turnId: rec.turnId, createdAt: rec.createdAt });
    } catch {
      // Not a log line.
    }
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      if (code && code !== 0) process.stderr.write(stderr);
      resolve(code);
    }),
  );
  return { child, exited };
}

describe("clawloop judge after kill -9", () => {
  it("judges every turn exactly once: nothing twice, nothing skipped", async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "judge-crash-"));
    const sidecar = await Store.open({ dataDir: dir, writes: ["turns", "next_states"] });
    const at = new Date().toISOString();
    for (let i = 0; i < TURNS; i++) {
      sidecar.put("turns", makeTurn(i, { request: { messages: [{ role: "user", content: `question ${i}` }], params: {} } }));
      const ns: NextState = {
        id: `ns-${i}`, kind: "user_message", sessionId: "s1", forRunId: null, forCallId: `call-${i}`, turnId: `call-${i}`,
        text: "hmm", score: null, toolName: null, toolCallId: null, exitCode: null, at, receivedAt: at, source: "plugin",
      };
      sidecar.put("next_states", ns);
    }
    await sidecar.close();

    // Each judge call takes a while, so the kill lands with judgments written and others in flight.
    const asked = new Map<string, number>();
    let phase = 1;
    const askedInPhase2 = new Set<string>();
    judge = await startScriptedJudge({
      delayMs: 120,
      chat: (messages) => {
        const turn = `call-${/question (\d+)/.exec(messages[1]!.content)![1]}`;
        asked.set(turn, (asked.get(turn) ?? 0) + 1);
        if (phase === 2) askedInPhase2.add(turn);
        return Number(turn.slice(5)) % 2 ? "\\boxed{1}" : "\\boxed{-1}";
      },
    });
    const flags = ["--method", "prm", "--endpoint", judge.url, "--model", "m", "--log-level", "info"];

    const beforeKill = new Map<string, string>();
    const first = runJudge(flags, (l) => {
      beforeKill.set(l.turnId, l.createdAt);
      if (beforeKill.size === 8) first.child.kill("SIGKILL");
    });
    expect(await first.exited).toBeNull();
    expect(first.child.signalCode).toBe("SIGKILL");
    expect(beforeKill.size).toBeGreaterThanOrEqual(8);
    expect(beforeKill.size).toBeLessThan(TURNS);

    phase = 2;
    const afterRestart = new Map<string, string>();
    const second = runJudge([...flags, "--once"], (l) => afterRestart.set(l.turnId, l.createdAt));
    expect(await second.exited).toBe(0);

    const store = await Store.open({ dataDir: dir });
    const rows = await store.list("judgments", { orderBy: "id" });
    await store.close();
    const ids = rows.map((r) => r.id).sort();
    expect(ids).toEqual(Array.from({ length: TURNS }, (_, i) => `call-${i}`).sort());
    // Written before the kill: kept as they were, and never sent to the judge again.
    for (const [turnId, createdAt] of beforeKill) {
      expect(rows.find((r) => r.id === turnId)!.createdAt).toBe(createdAt);
      expect(askedInPhase2.has(turnId)).toBe(false);
      expect(afterRestart.has(turnId)).toBe(false);
    }
    // Everything else was judged by the restarted loop.
    expect(afterRestart.size).toBe(TURNS - beforeKill.size);
    for (const r of rows) expect(r.score).toBe(Number(r.id.slice(5)) % 2 ? 1 : -1);
    // Only turns in flight at the kill were asked twice (at most the concurrency limit).
    const twice = [...asked.entries()].filter(([, n]) => n > 1).map(([t]) => t);
    expect(twice.length).toBeLessThanOrEqual(2);
    for (const t of twice) expect(beforeKill.has(t)).toBe(false);
  });
});
