// `clawloop demo`: a simulated user with a clear preference talks to SmolLM2-135M-Instruct through
// the sidecar while the four loops run; the run ends with the learning curve on held-out questions
// (a table, `<run dir>/learning-curve.svg` and `summary.json`).
import fs from "node:fs";
import path from "node:path";
import pino from "pino";
import { Command, InvalidArgumentError } from "commander";
import { createLogger, dataPaths, type Config, type TrainMode } from "../../core/index.js";
import { createPrinter, listPersonas, loadPersona, runDemo, summaryTable, type DemoResult, type RunningLoops, type StartLoops } from "../../demo/index.js";
import { ensureModel } from "../../serve/index.js";
import { configFrom, onShutdown, withCommonOptions, type CommonFlags } from "../shared.js";
import { Loops } from "./up.js";

interface DemoFlags extends CommonFlags {
  persona: string;
  interactions: number;
  mode: TrainMode;
  json?: boolean;
  runDir?: string;
  model: string;
  seed: number;
  evalEvery: number;
  lockstep: boolean;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

function mode(v: string): TrainMode {
  if (v !== "rl" && v !== "opd" && v !== "combined") throw new InvalidArgumentError("must be rl, opd or combined");
  return v;
}

/** `20261121-143005-concise-combined`: sortable, and says what ran. */
export function newRunId(persona: string, m: TrainMode, now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `${t}-${persona}-${m}`;
}

/** A pino logger writing JSON lines to a file (the loops' logs stay out of the demo's output). */
function fileLogger(name: string, file: string, level: string) {
  return pino({ name, level, base: { loop: name }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: file, mkdir: true, sync: false }));
}

/** Loops still running in this process: stopped in order on SIGINT/SIGTERM (bench:learn runs several, one after another). */
const running = new Set<Loops>();
let shutdownHooked = false;

/** Starts the four loops the way `clawloop up` does, with their logs in the run's `logs/`. */
export function loopsStarter(opts: { cliCommand?: string[] } = {}): StartLoops {
  if (!shutdownHooked) {
    shutdownHooked = true;
    onShutdown(async () => {
      for (const l of running) await l.stop();
    });
  }
  return async (config: Config, hooks) => {
    const logs = path.dirname(hooks.trainerLog);
    const log = fileLogger("demo", path.join(logs, "loops.log"), config.logLevel);
    const loops = new Loops(config, {
      embedded: true,
      log,
      logger: (loop) => fileLogger(loop, path.join(logs, `${loop}.log`), config.logLevel),
      trainerArgs: ["--no-progress"],
      trainerOutput: hooks.trainerLog,
      onJudged: hooks.onJudged,
      ...(opts.cliCommand ? { cliCommand: opts.cliCommand } : {}),
    });
    running.add(loops);
    try {
      await loops.start();
    } catch (err) {
      running.delete(loops);
      throw err;
    }
    const handle: RunningLoops = {
      sidecarUrl: loops.sidecar!.url,
      engineUrl: loops.engine!.url,
      stopLearning: () => loops.stopLearning(),
      stop: async () => {
        await loops.stop();
        running.delete(loops);
      },
    };
    return handle;
  };
}

/** Everything a run needs from the command line, shared with bench:learn. */
export async function demoModelPath(model: string, dataDir: string): Promise<string> {
  return ensureModel(model, { dataDir, logger: createLogger("demo", "warn") });
}

export function register(program: Command): void {
  withCommonOptions(
    program
      .command("demo")
      .description("Watch SmolLM2-135M learn a simulated user's preference: the four loops, a user who corrects and thanks, and the learning curve on held-out questions.")
      .option("--persona <name|file>", `the simulated user (shipped: ${listPersonas().join(", ") || "see fixtures/personas"}; or a persona .json file)`, "concise")
      .option("--interactions <n>", "model calls the simulated user makes", positiveInt, 32)
      .option("--mode <mode>", "rl | opd | combined", mode, "combined")
      .option("--json", "print a machine-readable summary at the end (progress goes to stderr)")
      .option("--run-dir <dir>", "the run's data directory (default: <data>/runs/<run id>/, fresh each run)")
      .option("--model <path|name>", "the base model: a GGUF file or a known name (fetched on first use)", "smollm2")
      .option("--seed <n>", "the simulated user's seed", (v) => Number.parseInt(v, 10), 1)
      .option("--eval-every <k>", "measure every k-th adapter version (and always the last)", positiveInt, 1)
      .option("--no-lockstep", "let the user run ahead of the trainer (default: after every batch the user waits until the new version is live)"),
  ).action(async (flags: DemoFlags) => {
    const root = configFrom(flags);
    const persona = loadPersona(flags.persona);
    const runId = flags.runDir ? path.basename(path.resolve(flags.runDir)) : newRunId(persona.name, flags.mode);
    const runDir = flags.runDir ? path.resolve(flags.runDir) : path.join(dataPaths(root.dataDir).runs, runId);
    const progress = flags.json ? process.stderr : process.stdout;
    const printer = createPrinter(progress);
    printer.line(`model: ${flags.model} (fetched into ${path.join(root.dataDir, "models")} if needed)…`);
    const model = await demoModelPath(flags.model, root.dataDir);
    const settings = flags.config ? (JSON.parse(fs.readFileSync(flags.config, "utf8")) as Record<string, unknown>) : {};
    const result: DemoResult = await runDemo({
      persona,
      mode: flags.mode,
      interactions: flags.interactions,
      runDir,
      runId,
      seed: flags.seed,
      evalEvery: flags.evalEvery,
      lockstep: flags.lockstep,
      settings: { ...settings, serve: { ...(settings.serve as object | undefined), model }, ...(flags.logLevel ? { logLevel: flags.logLevel as Config["logLevel"] } : {}) },
      startLoops: loopsStarter(),
      printer,
    });
    printer.line("");
    printer.line(summaryTable(result.summary));
    if (flags.json) process.stdout.write(JSON.stringify(result.summary, null, 2) + "\n");
  });
}
