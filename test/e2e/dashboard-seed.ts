// A data directory as the loops leave it after a while of use, for the dashboard's tests: turns of
// a few sessions with their next states, judgments, training steps, adapter version directories
// (real PEFT files and manifests), the judge and train loops' status files, and demo runs.
// Times are relative to now, so "recent" means what it says.
import fs from "node:fs";
import path from "node:path";
import { dataPaths, Store, type Judgment, type NextState, type Reward, type TrainStep, type Turn } from "../../core/index.js";
import { versionName, writeVersion } from "../support/adapter-versions.js";

export interface Seeded {
  turns: Turn[];
  judgments: Judgment[];
  nextStates: NextState[];
  steps: TrainStep[];
  /** The newest turn (main line, judged +1). */
  latest: Turn;
  /** Turn ids each version was trained on. */
  samplesOf: Record<string, string[]>;
}

const MIN = 60_000;

interface Script {
  session: string;
  user: string;
  answer?: string;
  tool?: { name: string; arguments: string };
  adapter: string | null;
  type?: "main" | "side";
  next?: { kind: NextState["kind"]; text?: string; score?: number; toolName?: string; exitCode?: number };
  judged?: { score: Reward; votes?: (Reward | null)[]; hint?: string; method?: Judgment["method"] };
  status?: Turn["status"];
}

// Oldest first; the last one is the newest turn.
const SCRIPT: Script[] = [
  { session: "s-alice", user: "List the files in the repo root.", tool: { name: "list_dir", arguments: '{"path":"."}' }, adapter: null, next: { kind: "tool_result", text: "README.md\npackage.json\nsrc/", toolName: "list_dir" }, judged: { score: 1, votes: [1, 1, 0] } },
  { session: "s-alice", user: "Now open src/index.ts", tool: { name: "read_file", arguments: '{"path":"src/idx.ts"}' }, adapter: null, next: { kind: "tool_error", text: "ENOENT: no such file src/idx.ts", toolName: "read_file", exitCode: 1 }, judged: { score: -1, votes: [-1, -1, -1], hint: "Use the exact path the user gave (src/index.ts); do not abbreviate file names." } },
  { session: "s-bob", user: "Write a two-line poem about the sea.", answer: "The sea keeps time in silver bars,\nand hums its tides to patient stars.", adapter: null, next: { kind: "user_message", text: "lovely, thanks!" }, judged: { score: 1, votes: [1, 1, 1] } },
  { session: "s-bob", user: "Make it rhyme less and sound more casual.", answer: "The sea's just out there doing its thing,\nwaves rolling in like they own the place.", adapter: "v000001", next: { kind: "user_message", text: "no — I said *less* formal, and keep it about the tide" }, judged: { score: -1, votes: [-1, 0, -1], hint: "Keep the subject the user asked for (the tide) when changing the tone." } },
  { session: "s-ci", user: "Summarise this conversation in five words.", answer: "Files, poem, tone, tests, verbose.", adapter: "v000001", type: "side" },
  { session: "s-alice", user: "Run the tests", tool: { name: "exec", arguments: '{"cmd":"npm test"}' }, adapter: "v000001", next: { kind: "tool_result", text: "12 passed, 0 failed", toolName: "exec", exitCode: 0 }, judged: { score: 1, votes: [1, 1, 1] } },
  { session: "s-bob", user: "Translate 'good morning' to French.", answer: "Bonjour !", adapter: "v000002", next: { kind: "feedback", score: 1, text: "/good" }, judged: { score: 1, votes: [], method: "feedback" } },
  { session: "s-alice", user: "Why did the build fail on CI yesterday?", answer: "", adapter: "v000002", status: "upstream_error" },
  { session: "s-bob", user: "What's the capital of Australia?", answer: "Sydney.", adapter: "v000002", next: { kind: "user_message", text: "wrong, it's Canberra" }, judged: { score: -1, votes: [-1, -1, null], hint: "Canberra is the capital; check facts you are unsure of." } },
  { session: "s-alice", user: "Can you run the tests again with --verbose and tell me which one is slowest?", answer: "Ran `npm test -- --verbose`: all 12 pass; the slowest is “store survives kill -9” at 4.1 s.", adapter: "v000003", next: { kind: "user_message", text: "perfect, that's what I needed" }, judged: { score: 1, votes: [1, 1, 1] } },
];

function turnOf(s: Script, i: number, at: number, seqBySession: Map<string, number>): Turn {
  const seq = seqBySession.get(s.session) ?? 0;
  seqBySession.set(s.session, seq + 1);
  const run = `${s.session}-run-${seq}`;
  const failed = s.status && s.status !== "ok";
  return {
    id: `${run}:model:1`,
    sessionId: s.session,
    runId: run,
    callId: `${run}:model:1`,
    turnType: s.type ?? "main",
    seq,
    endpoint: "chat",
    model: "scripted-model",
    adapter: s.adapter,
    request: { messages: [{ role: "system", content: "You are a helpful agent." }, { role: "user", content: s.user }], params: { temperature: 0.7 } },
    response: failed
      ? null
      : {
          id: `chatcmpl-${i}`,
          content: s.answer ?? "",
          reasoning: null,
          toolCalls: s.tool ? [{ id: `call_${i}`, type: "function", function: s.tool }] : [],
          finishReason: s.tool ? "tool_calls" : "stop",
        },
    promptTokenIds: [1, 2, 3],
    completionTokenIds: failed ? null : [4, 5, 6],
    completionLogprobs: failed ? null : [-0.1, -0.2, -0.3],
    usage: failed ? null : { promptTokens: 3, completionTokens: 3, totalTokens: 6 },
    startedAt: new Date(at).toISOString(),
    ttfbMs: failed ? null : 40 + i * 3,
    totalMs: failed ? 5_000 : 350 + i * 41,
    upstreamStatus: failed ? 502 : 200,
    status: s.status ?? "ok",
    error: failed ? "upstream answered 502: Bad Gateway" : null,
    traceparent: null,
    placement: "tagged",
    parentTurnId: null,
  };
}

export async function seedDataDir(dataDir: string, now = Date.now()): Promise<Seeded> {
  const paths = dataPaths(dataDir);
  const store = await Store.open({ dataDir, writes: ["turns", "next_states", "judgments", "train_steps"] });
  const seqBySession = new Map<string, number>();
  const turns: Turn[] = [];
  const judgments: Judgment[] = [];
  const nextStates: NextState[] = [];
  SCRIPT.forEach((s, i) => {
    const at = now - (SCRIPT.length - i) * 4 * MIN;
    const t = turnOf(s, i, at, seqBySession);
    turns.push(t);
    store.put("turns", t);
    if (s.next) {
      const ns: NextState = {
        id: `ev-${i}`,
        kind: s.next.kind,
        sessionId: s.session,
        forRunId: t.runId,
        forCallId: t.callId,
        turnId: t.id,
        text: s.next.text ?? null,
        score: s.next.score ?? null,
        toolName: s.next.toolName ?? null,
        toolCallId: s.tool ? `call_${i}` : null,
        exitCode: s.next.exitCode ?? null,
        at: new Date(at + MIN).toISOString(),
        receivedAt: new Date(at + MIN).toISOString(),
        source: "plugin",
      };
      nextStates.push(ns);
      store.put("next_states", ns);
    }
    if (s.judged) {
      const j: Judgment = {
        id: t.id,
        turnId: t.id,
        sessionId: s.session,
        score: s.judged.score,
        method: s.judged.method ?? "prm",
        votes: s.judged.votes ?? [s.judged.score],
        raw: (s.judged.votes ?? []).map((v) => `\\boxed{${v ?? "?"}}`),
        hint: s.judged.hint ?? null,
        nextStateIds: s.next ? [`ev-${i}`] : [],
        judgeModel: s.judged.method === "feedback" ? null : "scripted-model",
        costTokens: 420,
        costMs: 800,
        createdAt: new Date(at + 2 * MIN).toISOString(),
      };
      judgments.push(j);
      store.put("judgments", j);
    }
  });

  // Three versions, each trained on the judged main turns before it.
  const judgedMain = turns.filter((t) => t.turnType === "main" && judgments.some((j) => j.turnId === t.id));
  const samplesOf: Record<string, string[]> = {
    v000001: judgedMain.slice(0, 2).map((t) => t.id),
    v000002: judgedMain.slice(2, 4).map((t) => t.id),
    v000003: judgedMain.slice(4, 7).map((t) => t.id),
  };
  const steps: TrainStep[] = [];
  fs.mkdirSync(paths.adapters, { recursive: true });
  [1, 2, 3].forEach((n) => {
    const name = versionName(n);
    const at = now - (36 - n * 10) * MIN;
    const ids = samplesOf[name]!;
    const step: TrainStep = {
      id: name,
      step: n,
      version: name,
      mode: "combined",
      loss: 0.9 / n,
      lossRl: 0.6 / n,
      lossOpd: 0.3 / n,
      klToBase: 0.002 * n,
      meanReward: [0, 0, 0.34][n - 1]!,
      meanAbsAdvantage: 0.8,
      gradNorm: 1.5 - n * 0.3,
      tokens: 800 + n * 120,
      samples: ids.length,
      sampleIds: ids,
      lr: 5e-5,
      durationMs: 3_300 + n * 100,
      behaviourMismatch: 0.01,
      createdAt: new Date(at).toISOString(),
    };
    steps.push(step);
    store.put("train_steps", step);
    const dir = writeVersion(paths.adapters, n, { step: n });
    // The trainer's manifest names the turns it trained on; the helper writes placeholders.
    const file = path.join(dir, "manifest.json");
    const manifest = JSON.parse(fs.readFileSync(file, "utf8")) as { sampleIds: string[]; sampleCount: number; createdAt: string };
    fs.writeFileSync(file, JSON.stringify({ ...manifest, sampleIds: ids, sampleCount: ids.length, createdAt: step.createdAt }, null, 2));
  });
  await store.close();

  // The loops' status files: the judge runs (in this process), the trainer's process is gone.
  fs.mkdirSync(paths.loops, { recursive: true });
  const iso = (ms: number) => new Date(ms).toISOString();
  fs.writeFileSync(
    path.join(paths.loops, "judge.json"),
    JSON.stringify({
      loop: "judge", state: "running", pid: process.pid, startedAt: iso(now - 60 * MIN), updatedAt: iso(now - MIN),
      judge: "rules+prm", endpoint: null, waiting: 2, ready: 1, settling: 1, retrying: 0, inFlight: 0,
      judged: judgments.length, judgedThisRun: judgments.length, overriddenThisRun: 0, failuresThisRun: 1, unscoredSessionEnd: 0,
      byScore: { "1": judgments.filter((j) => j.score === 1).length, "0": 0, "-1": judgments.filter((j) => j.score === -1).length },
      lastJudgedAt: iso(now - 2 * MIN), lastError: { message: "judge endpoint timed out after 120000 ms", at: iso(now - 20 * MIN), turnId: turns[3]!.id },
    }),
  );
  fs.writeFileSync(
    path.join(paths.loops, "train.json"),
    JSON.stringify({
      pid: 2 ** 22 + 12345, state: "waiting", mode: "combined", model: "scripted-model", samplesWaiting: 3,
      samplesSkipped: { zeroReward: 0, noTokens: 0, failed: 0 }, awaitingTurn: 0, version: "v000003",
      lastStep: { version: "v000003", step: 3, loss: 0.3, meanReward: 0.34, samples: 3, durationMs: 3600, at: steps[2]!.createdAt },
      rewardTrend: [0, 0, 0.34], lastError: { message: "engine: out of memory while building step 4", at: iso(now - 5 * MIN) },
      startedAt: iso(now - 60 * MIN), updatedAt: iso(now - 5 * MIN),
    }),
  );

  // Demo runs: two finished, one still going (no summary yet), one broken.
  const run = (id: string, summary: unknown) => {
    fs.mkdirSync(path.join(paths.runs, id), { recursive: true });
    if (summary !== undefined) fs.writeFileSync(path.join(paths.runs, id, "summary.json"), typeof summary === "string" ? summary : JSON.stringify(summary));
  };
  run("run-student-combined", {
    persona: "student", mode: "combined", interactions: 36, perplexityChange: -0.12, startedAt: iso(now - 50 * MIN),
    satisfaction: [
      { version: null, afterInteractions: 0, rate: 0.17 }, { version: "v000001", afterInteractions: 12, rate: 0.42 },
      { version: "v000002", afterInteractions: 24, rate: 0.63 }, { version: "v000003", afterInteractions: 36, rate: 0.76 },
    ],
  });
  run("run-student-rl", {
    persona: "student", mode: "rl", interactions: 36, perplexityChange: -0.03, startedAt: iso(now - 45 * MIN),
    satisfaction: [
      { version: null, afterInteractions: 0, rate: 0.17 }, { version: "v000001", afterInteractions: 12, rate: 0.2 },
      { version: "v000002", afterInteractions: 24, rate: 0.23 }, { version: "v000003", afterInteractions: 36, rate: 0.25 },
    ],
  });
  run("run-in-progress", undefined);
  run("run-broken", '{"persona": "teacher", "mode": "opd", "satisfaction": "lots"');

  const latest = turns.at(-1)!;
  return { turns, judgments, nextStates, steps, latest, samplesOf };
}
