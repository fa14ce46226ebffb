// `clawloop train`: the continuous train loop over the store, or, with --samples, one offline run
// from a JSONL file into an adapter folder.
// `clawloop train pause | resume | status`: pause and resume the train loop wherever it runs (its own
// `clawloop train`, or `clawloop up`'s child) through `<data>/train.paused` (core/train-pause.ts):
// no sidecar needed, and a pause outlives restarts.
import os from "node:os";
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { createLogger, pauseTraining, processAlive, readTrainPause, resumeTraining, type ConfigOverrides, type TrainPause } from "../../core/index.js";
import { configFrom, onShutdown, stamp, withCommonOptions, type CommonFlags } from "../shared.js";

interface TrainFlags extends CommonFlags {
  model?: string;
  mode?: "rl" | "opd" | "combined";
  lr?: number;
  rank?: number;
  batchSize?: number;
  maxWait?: number;
  samples?: string;
  out?: string;
  steps?: number;
  from?: string;
  force?: boolean;
  json?: boolean;
  progress?: boolean;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("must be a positive number");
  return n;
}

function nonNegativeNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("must be a number ≥ 0");
  return n;
}

function mode(v: string): "rl" | "opd" | "combined" {
  if (v !== "rl" && v !== "opd" && v !== "combined") throw new InvalidArgumentError("must be rl, opd or combined");
  return v;
}

function since(p: TrainPause): string {
  return p.since ? `since ${stamp(p.since)}` : "(since unknown)";
}


interface FlagSubcommandFlags extends CommonFlags {
  json?: boolean;
  reason?: string;
}

/** The subcommand's flags, with the common ones given before it (`clawloop train --data D pause`). */
function subFlags(cmd: Command): FlagSubcommandFlags {
  return cmd.optsWithGlobals<FlagSubcommandFlags>();
}

function registerPauseCommands(train: Command): void {
  withCommonOptions(train.command("pause").description("pause training: the step in progress finishes, no new one starts; judged turns keep accumulating"))
    .option("--reason <text>", "why (shown by `clawloop train status`)")
    .option("--json", "print JSON")
    .action((_: unknown, cmd: Command) => {
      const flags = subFlags(cmd);
      const config = configFrom(flags);
      const before = readTrainPause(config.dataDir);
      const pause = pauseTraining(config.dataDir, "cli", flags.reason ?? null);
      if (flags.json) process.stdout.write(JSON.stringify({ paused: true, wasPaused: before !== null, ...pause }) + "\n");
      else if (before) process.stdout.write(`training was already paused ${since(before)}; \`clawloop train resume\` lets it go on\n`);
      else process.stdout.write("training paused: the step in progress (if any) finishes and no new one starts; judged turns keep accumulating and are trained on after `clawloop train resume`\n");
    });

  withCommonOptions(train.command("resume").description("resume paused training: the trainer starts its next step within train.pollMs"))
    .option("--json", "print JSON")
    .action((_: unknown, cmd: Command) => {
      const flags = subFlags(cmd);
      const config = configFrom(flags);
      const ended = resumeTraining(config.dataDir);
      if (flags.json) process.stdout.write(JSON.stringify({ paused: false, wasPaused: ended !== null }) + "\n");
      else if (ended) process.stdout.write(`training resumed (it was paused ${since(ended)})\n`);
      else process.stdout.write("training was not paused\n");
    });

  withCommonOptions(train.command("status").description("whether training is paused, and what the trainer is doing"))
    .option("--json", "print JSON")
    .action(async (_: unknown, cmd: Command) => {
      const flags = subFlags(cmd);
      const config = configFrom(flags);
      const { readStatus, weightsText } = await import("../../trainer/index.js");
      const pause = readTrainPause(config.dataDir);
      const status = readStatus(config.dataDir);
      const running = status !== null && status.state !== "stopped" && status.state !== "failed" && processAlive(status.pid);
      if (flags.json) {
        process.stdout.write(JSON.stringify({ paused: pause !== null, pause, running, status }, null, 2) + "\n");
        return;
      }
      const lines = [
        pause ? `training is paused ${since(pause)} by ${pause.by}${pause.reason ? ` (${pause.reason})` : ""}; \`clawloop train resume\` lets it go on` : "training is not paused",
        status
          ? `trainer ${running ? `running (pid ${status.pid}): ${status.state}` : `not running (last: ${status.state})`}; samples waiting: ${status.samplesWaiting}; latest version: ${status.version ?? "none yet"}` +
            (status.lastStep ? `; last step ${status.lastStep.step} at ${stamp(status.lastStep.at)}` : "") +
            (running && status.weights ? `; model ${weightsText(status.weights)}` : "")
          : "the trainer has never run with this data directory",
      ];
      process.stdout.write(lines.join("\n") + "\n");
    });
}

export function register(program: Command): void {
  const train = withCommonOptions(
    program
      .command("train")
      .description("Train the LoRA adapter on judged turns, writing a new adapter version per step (or, with --samples, once from a JSONL file)")
      .option("--model <path>", "base model: a .gguf file or a Hugging Face folder (default: train.model)")
      .option("--mode <mode>", "rl | opd | combined", mode)
      .option("--lr <x>", "learning rate", positiveNumber)
      .option("--rank <r>", "LoRA rank of a new adapter", positiveInt)
      .option("--batch-size <b>", "samples per step", positiveInt)
      .option("--max-wait <sec>", "run a partial batch after its oldest sample waited this long", nonNegativeNumber)
      .option("--samples <file>", "offline: train on this JSONL file instead of the store")
      .option("--out <dir>", "offline: write the adapter folder here")
      .option("--steps <n>", "offline: optimizer steps (default: each sample train.epochs times)", positiveInt)
      .option("--from <dir>", "offline: continue from this adapter folder")
      .option("--force", "offline: replace a non-empty --out")
      .option("--json", "offline: print the result as JSON")
      .option("--no-progress", "plain log lines even on a terminal (for a parent process that shares it)"),
  )
    // Options before `pause`/`resume`/`status` are train's; after them, the subcommand's.
    .enablePositionalOptions();
  registerPauseCommands(train);
  train.action(async (flags: TrainFlags) => {
    const { createProgress, startTrainLoop, trainOffline } = await import("../../trainer/index.js");
    const train: NonNullable<ConfigOverrides["train"]> = {};
    if (flags.mode) train.mode = flags.mode;
    if (flags.lr !== undefined) train.lr = flags.lr;
    if (flags.rank !== undefined) train.rank = flags.rank;
    if (flags.batchSize !== undefined) train.batchSize = flags.batchSize;
    if (flags.maxWait !== undefined) train.maxWaitSec = flags.maxWait;
    const config = configFrom(flags, { train });

    if (flags.samples) {
      if (!flags.out) throw new Error("--samples needs --out DIR (where to write the adapter)");
      if (flags.from && flags.rank !== undefined) throw new Error("--rank sets a new adapter's rank; --from continues an adapter with its own");
      const logger = createLogger("train", flags.json ? "warn" : config.logLevel);
      const result = await trainOffline(config, {
        samplesFile: flags.samples,
        outDir: flags.out,
        model: flags.model ?? null,
        from: flags.from ?? null,
        steps: flags.steps ?? null,
        force: flags.force ?? false,
        logger,
      });
      const last = result.steps.at(-1)!;
      if (flags.json) {
        process.stdout.write(JSON.stringify(result) + "\n");
      } else {
        process.stdout.write(
          `wrote ${result.outDir}: ${result.steps.length} steps on ${result.samples} samples (mode ${config.train.mode}), last loss ${last.loss.toFixed(4)}\n`,
        );
        for (const e of result.lineErrors) process.stderr.write(`line ${e.line}: ${e.message}\n`);
        for (const s of result.skipped) process.stderr.write(`line ${s.line}: skipped (${s.reason}): ${s.detail}\n`);
      }
      return;
    }
    for (const f of ["out", "steps", "from", "force", "json"] as const) {
      if (flags[f] !== undefined) throw new Error(`--${f} applies to offline training only (with --samples)`);
    }

    // Training shares the machine with the model server: let serving win the CPU. Threads created
    // from here on (ONNX Runtime's pool) inherit the priority.
    if (config.train.nice) {
      try {
        os.setPriority(Math.min(19, os.getPriority() + config.train.nice));
      } catch {
        // Not permitted here (some containers): train at the normal priority.
      }
    }
    const tty = Boolean(process.stdout.isTTY) && flags.progress !== false;
    // On a terminal the live line is the display; the log keeps only warnings and errors.
    const logger = createLogger("train", tty && config.logLevel !== "silent" ? "warn" : config.logLevel);
    const progress = createProgress({ stream: process.stdout, logger, batchSize: config.train.batchSize, live: tty });
    const loop = await startTrainLoop(config, { model: flags.model ?? null, logger, progress });
    onShutdown(() => loop.stop());
    await loop.done;
  });
}
