// One demo run: the four loops on a fresh data directory, a simulated user talking to the model
// through the sidecar the way the OpenClaw plugin would (tagged calls, the user's next messages as
// next-state events), and at the end the learning curve on held-out questions.
//
// The judges and the trainer get nothing but what the user's replies give them: the run only
// sends chat calls and user_message / session_end events; judging, training and hot-loading are
// the loops' own work, configured by settings a user could set.
import fs from "node:fs";
import path from "node:path";
import {
  dataPaths,
  loadConfig,
  newId,
  readOrCreateToken,
  Store,
  type ChatMessage,
  type ClawloopEvent,
  type Config,
  type ConfigOverrides,
  type Judgment,
  type TrainMode,
  type TrainStep,
} from "../core/index.js";
import { listVersions, readStatus } from "../trainer/index.js";
import { learningCurveSvg } from "./chart.js";
import { SidecarClient } from "./client.js";
import { Evaluator, perplexityChange, type Measurement } from "./evaluate.js";
import type { Persona } from "./personas.js";
import type { Printer } from "./printer.js";
import { DEMO_SETTINGS, mergeSettings } from "./settings.js";
import { firstReached, TARGET_RATE, writeSummary, type CurvePoint, type DemoSummary } from "./summary.js";
import { SimulatedUser, type Reaction } from "./user.js";

/** The loops as the run needs them (cli/commands/up.ts's Loops, or a test's). */
export interface RunningLoops {
  sidecarUrl: string;
  engineUrl: string;
  /** Stops the trainer (after its step in progress) and the judge; serving goes on. */
  stopLearning(): Promise<void>;
  stop(): Promise<void>;
}

export type StartLoops = (config: Config, hooks: { onJudged: (j: Judgment) => void; trainerLog: string }) => Promise<RunningLoops>;

export interface DemoOptions {
  persona: Persona;
  mode: TrainMode;
  interactions: number;
  /** The run's own data directory (store, adapters, logs, summary, chart). */
  runDir: string;
  runId: string;
  startLoops: StartLoops;
  printer: Printer;
  /** Seed of the simulated user. */
  seed?: number;
  /** Settings on top of the demo's and the persona's. */
  settings?: ConfigOverrides;
  /** Measure every k-th version (and always the last); 1: every version. */
  evalEvery?: number;
  /** Longest wait for the trainer to finish the last samples after the last interaction. */
  drainTimeoutMs?: number;
  /**
   * After every `train.batchSize` interactions the user waits until the trainer has trained on
   * what is ready and the new version is live (default). Learning per interaction then depends on
   * the algorithm, not on how fast this machine trains; false lets the user run ahead like a real
   * one who does not wait.
   */
  lockstep?: boolean;
  /** Longest wait at a lockstep point before the user goes on anyway. */
  lockstepTimeoutMs?: number;
}

export interface InteractionRecord {
  i: number;
  sessionId: string;
  callId: string;
  prompt: string;
  reply: string;
  finishReason: string | null;
  served: string;
  reaction: Reaction["kind"];
  userSaid: string;
  satisfied: boolean;
  failures: string[];
  ms: number;
  endedAt: string;
}

export interface DemoResult {
  summary: DemoSummary;
  records: InteractionRecord[];
  steps: TrainStep[];
  measurements: Map<string | null, Measurement>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The run's settings: demo defaults < persona < caller; the data directory is the run's. */
export function runSettings(persona: Persona, mode: TrainMode, extra: ConfigOverrides = {}): Record<string, unknown> {
  return mergeSettings(DEMO_SETTINGS as Record<string, unknown>, persona.settings, extra as Record<string, unknown>, { train: { mode } });
}

/** Writes the run's `config.json` (read by every loop, the trainer child included) and loads it. */
export function prepareRunDir(runDir: string, settings: Record<string, unknown>): Config {
  if (fs.existsSync(path.join(runDir, "store")) || fs.existsSync(path.join(runDir, "adapters"))) {
    throw new Error(`${runDir} already holds a run's data; a demo run starts from a fresh data directory`);
  }
  fs.mkdirSync(runDir, { recursive: true });
  fs.writeFileSync(path.join(runDir, "config.json"), JSON.stringify(settings, null, 2) + "\n");
  return loadConfig({ flags: { dataDir: runDir } });
}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const { persona, printer: out } = opts;
  const started = new Date();
  const settings = runSettings(persona, opts.mode, opts.settings);
  const config = prepareRunDir(opts.runDir, settings);
  const logs = path.join(opts.runDir, "logs");
  fs.mkdirSync(logs, { recursive: true });
  const records: InteractionRecord[] = [];
  const byCall = new Map<string, number>();
  const judgments: Judgment[] = [];
  const judgedEarly: Judgment[] = [];
  const onJudged = (j: Judgment) => {
    judgments.push(j);
    const i = byCall.get(j.turnId);
    if (i === undefined) judgedEarly.push(j);
    else out.judgment(i, j);
  };

  out.line(`clawloop demo: persona ${persona.name} (${persona.kind}: ${persona.preference}), mode ${opts.mode}, ${opts.interactions} interactions`);
  out.line(`  run ${opts.runId}, data ${opts.runDir}`);
  out.line(`  starting the four loops (embedded engine, sidecar with hot-loading, ${config.judge.method} judge, ${opts.mode} trainer)…`);
  const loops = await opts.startLoops(config, { onJudged, trainerLog: path.join(logs, "train.log") });
  const steps: TrainStep[] = [];
  let watching = true;
  let watcher: Promise<void> = Promise.resolve();
  try {
    const token = readOrCreateToken(opts.runDir);
    const client = new SidecarClient(loops.sidecarUrl, token);
    const base = await client.baseModel();
    out.line(`  sidecar ${loops.sidecarUrl}/v1, engine ${loops.engineUrl}/v1, model ${base}`);
    out.line("");

    // Training steps and swaps, as the control API reports them.
    let live: string | null = null;
    const seenSteps = new Set<string>();
    const poll = async () => {
      const [{ steps: recent }, adapters] = await Promise.all([
        client.get<{ steps: TrainStep[] }>("/clawloop/v1/train-steps?limit=50"),
        client.get<{ live: string | null }>("/clawloop/v1/adapters"),
      ]);
      for (const s of [...recent].reverse()) {
        if (seenSteps.has(s.version)) continue;
        seenSteps.add(s.version);
        steps.push(s);
        out.step(s, interactionsBefore(records, s.createdAt));
      }
      if (adapters.live !== live) {
        out.swap(adapters.live, live);
        live = adapters.live;
      }
    };
    watcher = (async () => {
      while (watching) {
        await poll().catch(() => undefined);
        await sleep(1000);
      }
      await poll().catch(() => undefined);
    })();

    // The conversation.
    const user = new SimulatedUser(persona, opts.seed ?? 1);
    let session: { id: string; messages: ChatMessage[]; turn: number; question: string } | null = null;
    for (let i = 1; i <= opts.interactions; i++) {
      if (!session) {
        const question = user.nextQuestion();
        session = { id: `demo-${opts.runId}-s${records.length + 1}`, messages: [{ role: "system", content: persona.system }, { role: "user", content: question }], turn: 0, question };
      }
      const runId = `${session.id}-r${session.turn + 1}`;
      const callId = `${runId}:model:1`;
      byCall.set(callId, i);
      const reply = await client.chat(base, session.messages, persona.sampling, { sessionId: session.id, runId, callId });
      const reaction = user.react(reply.content, session.turn);
      const lastUser = session.messages.at(-1)!;
      out.interaction(i, opts.interactions, typeof lastUser.content === "string" ? lastUser.content : "", reply.content, reply.model === base ? null : reply.model, reaction);
      records.push({
        i,
        sessionId: session.id,
        callId,
        prompt: String(lastUser.content),
        reply: reply.content,
        finishReason: reply.finishReason,
        served: reply.model,
        reaction: reaction.kind,
        userSaid: reaction.text,
        satisfied: reaction.satisfied,
        failures: reaction.check.failures,
        ms: reply.ms,
        endedAt: new Date().toISOString(),
      });
      for (const j of judgedEarly.splice(0)) out.judgment(byCall.get(j.turnId) ?? null, j);
      // The user's next message is the reply's next state, exactly as the plugin reports it.
      const events: ClawloopEvent[] = [
        { id: newId("ev"), type: "next_state", kind: "user_message", sessionId: session.id, forRunId: runId, forCallId: callId, text: reaction.text, at: new Date().toISOString() },
      ];
      const goesOn = reaction.continues && i < opts.interactions;
      if (!goesOn) events.push({ id: newId("ev"), type: "session_end", sessionId: session.id, at: new Date().toISOString() });
      await client.events(events);
      if (goesOn) {
        session.messages = [...session.messages, { role: "assistant", content: reply.content }, { role: "user", content: reaction.text }];
        session.turn++;
      } else {
        session = null;
      }
      if ((opts.lockstep ?? true) && i % config.train.batchSize === 0 && i < opts.interactions) {
        const caughtUp = await catchUp(config, client, () => judgments.length, i, opts.lockstepTimeoutMs ?? 600_000);
        if (!caughtUp) out.line(`      (the trainer has not caught up after ${Math.round((opts.lockstepTimeoutMs ?? 600_000) / 1000)} s; the user goes on)`);
      }
    }
    fs.writeFileSync(path.join(opts.runDir, "interactions.jsonl"), records.map((r) => JSON.stringify(r)).join("\n") + "\n");

    // Let the loops finish what the last interactions gave them.
    out.line("");
    out.line(`  ${opts.interactions} interactions done; waiting for the judge and the trainer to finish the last ones…`);
    // Nothing left waiting (the last, smaller batch goes after train.maxWaitSec), the newest version decided.
    await catchUp(config, client, () => judgments.length, opts.interactions, opts.drainTimeoutMs ?? (config.train.maxWaitSec + 300) * 1000, 1);
    watching = false;
    await watcher;
    await loops.stopLearning();
    // The trainer has stopped and flushed: the store now holds every step (the control API reads
    // what has reached LanceDB, which can lag the trainer's log by a moment).
    for (const s of await readTrainSteps(opts.runDir)) {
      if (steps.some((x) => x.version === s.version)) continue;
      steps.push(s);
      out.step(s, interactionsBefore(records, s.createdAt));
    }

    // The learning curve.
    const versions = steps.map((s) => s.version).sort();
    const every = Math.max(1, opts.evalEvery ?? 1);
    const measured = versions.filter((_, k) => (k + 1) % every === 0 || k === versions.length - 1);
    out.line(`  measuring held-out satisfaction: base${measured.length ? ` and ${measured.join(", ")}` : ""} (${persona.heldOut.length} questions × ${persona.eval.samplesPerPrompt} samples at temperature ${persona.sampling.temperature})…`);
    const evaluator = new Evaluator(loops.engineUrl, persona, base);
    const measurements = new Map<string | null, Measurement>();
    const adaptersDir = dataPaths(config.dataDir, config.adapters.dir).adapters;
    const baseM = await evaluator.measure(null);
    measurements.set(null, baseM);
    const points: CurvePoint[] = [point(null, 0, baseM, baseM)];
    out.line(`    base     ${pct(baseM.satisfaction.rate)} ± ${pct(baseM.satisfaction.stderr)}`);
    for (const v of measured) {
      const m = await evaluator.measure({ name: v, dir: path.join(adaptersDir, v) });
      measurements.set(v, m);
      const step = steps.find((s) => s.version === v)!;
      const p = point(v, interactionsBefore(records, step.createdAt), m, baseM);
      points.push(p);
      out.line(`    ${v}  ${pct(p.rate)} ± ${pct(p.stderr)}  after ${p.afterInteractions} interactions  (perplexity ${signedPct(p.perplexityChange)})`);
    }
    await loops.stop();

    const servedByAdapter = await countServedByAdapter(opts.runDir);
    const chartFile = path.join(opts.runDir, "learning-curve.svg");
    fs.writeFileSync(
      chartFile,
      learningCurveSvg(points, {
        title: `${persona.name}: ${persona.preference}`,
        subtitle: `mode ${opts.mode} · ${opts.interactions} interactions · ${persona.heldOut.length} held-out questions × ${persona.eval.samplesPerPrompt} samples · SmolLM2-135M-Instruct`,
        target: TARGET_RATE,
      }),
    );
    const last = points.at(-1)!;
    const summary: DemoSummary = {
      runId: opts.runId,
      persona: persona.name,
      personaKind: persona.kind,
      preference: persona.preference,
      mode: opts.mode,
      interactions: opts.interactions,
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      satisfaction: points,
      perplexityChange: last.version ? last.perplexityChange : null,
      reached: firstReached(points),
      reactions: {
        corrections: records.filter((r) => r.reaction === "correction").length,
        thanks: records.filter((r) => r.reaction === "thanks").length,
        moveOn: records.filter((r) => r.reaction === "move_on").length,
        satisfiedDuringRun: records.filter((r) => r.satisfied).length,
      },
      judgments: {
        total: judgments.length,
        positive: judgments.filter((j) => j.score > 0).length,
        negative: judgments.filter((j) => j.score < 0).length,
        zero: judgments.filter((j) => j.score === 0).length,
        withHint: judgments.filter((j) => j.hint).length,
      },
      training: {
        steps: steps.length,
        samples: steps.reduce((s, x) => s + x.samples, 0),
        trainMs: steps.reduce((s, x) => s + x.durationMs, 0),
        lastLoss: steps.at(-1)?.loss ?? null,
      },
      servedByAdapter,
      settings,
      dataDir: opts.runDir,
      chart: chartFile,
      durationMs: Date.now() - started.getTime(),
    };
    writeSummary(opts.runDir, summary);
    return { summary, records, steps, measurements };
  } finally {
    watching = false;
    await watcher.catch(() => undefined);
    await loops.stop();
  }
}

function point(version: string | null, afterInteractions: number, m: Measurement, base: Measurement): CurvePoint {
  return {
    version,
    afterInteractions,
    rate: m.satisfaction.rate,
    stderr: m.satisfaction.stderr,
    n: m.satisfaction.n,
    meanWords: m.satisfaction.meanWords,
    neutralNll: m.neutralNll,
    perplexityChange: perplexityChange(base.neutralNll, m.neutralNll),
  };
}

/** Interactions finished before `at` (an ISO time). */
export function interactionsBefore(records: InteractionRecord[], at: string): number {
  return records.filter((r) => r.endedAt <= at).length;
}

/**
 * Lockstep: waits until every interaction so far is judged, the trainer has seen every judgment
 * (each is trained on, waiting or skipped), holds fewer than `maxWaiting` ready samples and is
 * not in a step, and its newest version has been decided by the switchboard
 * (live, or rejected). False on timeout.
 */
async function catchUp(config: Config, client: SidecarClient, judged: () => number, expected: number, timeoutMs: number, maxWaiting = config.train.batchSize): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  let quiet = 0;
  while (Date.now() < end) {
    const st = readStatus(config.dataDir);
    let settled = false;
    // Every judged turn accounted for by the trainer: trained on (in a version's manifest), waiting, or skipped.
    const trained = new Set(listVersions(dataPaths(config.dataDir, config.adapters.dir).adapters).flatMap((v) => v.manifest.sampleIds)).size;
    const accounted = st ? trained + st.samplesWaiting + Object.values(st.samplesSkipped).reduce((a, b) => a + b, 0) : 0;
    if (judged() >= expected && st && accounted >= judged() && st.state === "waiting" && st.samplesWaiting < maxWaiting && st.awaitingTurn === 0) {
      if (st.version === null) settled = true;
      else {
        const listing = await client.get<{ versions: { id: string; status: string }[] }>("/clawloop/v1/adapters").catch(() => null);
        const newest = listing?.versions.find((v) => v.id === st.version);
        settled = newest !== undefined && (newest.status === "live" || newest.status === "rejected" || newest.status === "retired");
      }
    }
    // Three looks in a row: a judgment just written reaches the trainer's status a moment later.
    quiet = settled ? quiet + 1 : 0;
    if (quiet >= 3) return true;
    await sleep(500);
  }
  return false;
}

async function readTrainSteps(dataDir: string): Promise<TrainStep[]> {
  const store = await Store.open({ dataDir, writes: [] });
  try {
    return (await store.list("train_steps")).sort((a, b) => a.step - b.step);
  } finally {
    await store.close();
  }
}

/** Turns the store says were served by an adapter version (read after the loops stopped). */
async function countServedByAdapter(dataDir: string): Promise<number> {
  const store = await Store.open({ dataDir, writes: [] });
  try {
    const turns = await store.list("turns");
    return turns.filter((t) => t.turnType === "main" && t.adapter !== null).length;
  } finally {
    await store.close();
  }
}

export const pct = (x: number) => `${(x * 100).toFixed(0).padStart(3)}%`;
export const signedPct = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(x * 100).toFixed(1)}%`;
