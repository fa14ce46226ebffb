// `clawloop up`: the four loops in one command.
//   serve    the embedded llama.cpp engine (with --model; in this process) or the user's server (--upstream)
//   collect  the sidecar with the hot-load switchboard (in this process)
//   judge    the judge loop (in this process: it only waits on HTTP and the store)
//   train    the train loop, in a child process (`clawloop train`) so a step never blocks the proxy;
//            restarted with backoff when it crashes
// SIGINT/SIGTERM stop it in order: the sidecar stops taking calls and finishes those in flight, the
// trainer finishes (and writes) the step it is in, the judge finishes its judgments, the engine
// closes; every store flushes its log first, so nothing answered or judged is lost.
// Where everything listens goes to stdout and to `<data>/loops/up.json` (read by `clawloop status`
// and `clawloop adapters`).
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import { createLogger, dataPaths, type Config, type ConfigOverrides, type Judgment, type Logger } from "../../core/index.js";
import { startJudgeLoop, type JudgeLoop } from "../../judges/index.js";
import { defaultEngineThreads, ensureModel, startServer, type RunningServer } from "../../serve/index.js";
import { dashboardLink, startHotloadingSidecar, type HotloadSidecarHandle } from "../../sidecar/index.js";
import { withoutLauncherMalloc } from "../launcher-env.js";
import { configFrom, EXIT_WITH_PARENT_ENV, onShutdown, packageRoot, withCommonOptions, type CommonFlags } from "../shared.js";
import { readUpFile, upFile, type UpFile } from "../up-file.js";
import { upstreamKindFlag } from "./sidecar.js";

interface UpFlags extends CommonFlags {
  upstream?: string;
  model?: string;
  port?: string;
  host?: string;
  enginePort?: string;
  upstreamKind?: Config["sidecar"]["upstreamKind"];
}

function writeJsonAtomic(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
  fs.renameSync(tmp, file);
}

/** The command that runs this CLI again, for the trainer child: the compiled bin, or the source through tsx. */
function selfCommand(): string[] {
  // The script this process runs (bin/clawloop.js, or a script importing cli/main), with its loader flags.
  const script = process.argv[1];
  if (script && fs.existsSync(script) && fs.statSync(script).isFile()) return [process.execPath, ...process.execArgv, script];
  const here = fileURLToPath(import.meta.url);
  const root = packageRoot();
  if (!here.endsWith(".ts")) return [process.execPath, path.join(root, "bin", "clawloop.js")];
  const entry = pathToFileURL(path.join(root, "cli", "main.ts")).href;
  const code = `const { main } = await import(${JSON.stringify(entry)}); await main(["node", "clawloop", ...process.argv.slice(1)]);`;
  return [process.execPath, "--import", "tsx", "--input-type=module", "-e", code, "--"];
}

/**
 * The trainer child: `clawloop train --data DIR --model PATH [--config FILE]`, its output passed
 * through with a prefix, restarted after a crash with exponential backoff (1 s … 60 s; back to 1 s
 * after 5 minutes without a crash). `stop()` sends SIGTERM and waits for the step in progress.
 */
class TrainerProcess {
  private child: ChildProcess | null = null;
  private stopping = false;
  private backoffMs = 1_000;
  private timer: NodeJS.Timeout | null = null;
  restarts = 0;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    private readonly args: string[],
    private readonly log: Logger,
    private readonly onPid: (pid: number | null) => void,
    private readonly command: string[] = selfCommand(),
    /** A file for the trainer's output; null: this process's stdout and stderr. */
    private readonly outputFile: string | null = null,
  ) {}

  start(): void {
    const [cmd, ...rest] = this.command;
    const startedAt = Date.now();
    let out: number | "inherit" = "inherit";
    if (this.outputFile) {
      fs.mkdirSync(path.dirname(this.outputFile), { recursive: true });
      out = fs.openSync(this.outputFile, "a");
    }
    // The IPC channel is how the trainer learns that this process died, even by kill -9: it closes,
    // and the trainer stops as on SIGTERM (cli/shared.ts exitWithParent). Nothing is sent over it.
    // The malloc settings bin/clawloop.js gave this process are the proxy's, not the trainer's.
    const child = spawn(cmd!, [...rest, "train", ...this.args], {
      stdio: ["ignore", out, out, "ipc"],
      env: { ...withoutLauncherMalloc(process.env), [EXIT_WITH_PARENT_ENV]: "1" },
    });
    if (typeof out === "number") fs.closeSync(out);
    this.child = child;
    this.onPid(child.pid ?? null);
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        this.child = null;
        this.onPid(null);
        resolve();
        if (this.stopping) return;
        if (Date.now() - startedAt > 5 * 60_000) this.backoffMs = 1_000;
        this.log.error({ code, signal, restartInMs: this.backoffMs }, "the trainer exited; restarting it");
        this.restarts++;
        this.timer = setTimeout(() => this.start(), this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, 60_000);
      });
    });
    child.on("error", (err) => this.log.error({ err: err.message }, "could not start the trainer"));
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  async stop(graceMs = 120_000): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.log.info({ pid: child.pid }, "stopping the trainer (it finishes the step in progress)");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Last resort when this process exits: no trainer outlives it. */
  killNow(): void {
    if (this.child && this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}

function port(v: string): string {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("must be a port number (0 picks a free one)");
  return v;
}

export interface LoopsOptions {
  /** Serve `serve.model` with the embedded engine; false: the user's server at `sidecar.upstream`. */
  embedded: boolean;
  log: Logger;
  /** The logger of each loop run in this process (default: a JSON logger on stdout at `logLevel`). */
  logger?: (loop: "serve" | "sidecar" | "judge") => Logger;
  /** Passed on to `clawloop train` (e.g. `--config FILE`, `--log-level L`). */
  trainerArgs?: string[];
  /** The command that runs the clawloop CLI, for the trainer child (default: this process's own). */
  cliCommand?: string[];
  /** A file for the trainer child's output (default: this process's stdout and stderr). */
  trainerOutput?: string | null;
  /** Called after each judgment is written. */
  onJudged?: (j: Judgment) => void;
}

/**
 * The four loops of `clawloop up`, started and stopped in order. `stop()` works on whatever has
 * started, so it can run from a signal handler while `start()` is still under way. Used by `up`
 * and `demo`.
 */
export class Loops {
  config: Config;
  engine: RunningServer | null = null;
  sidecar: HotloadSidecarHandle | null = null;
  judge: JudgeLoop | null = null;
  trainer: TrainerProcess | null = null;
  up: UpFile | null = null;
  private stopping: Promise<void> | null = null;

  constructor(
    config: Config,
    private readonly opts: LoopsOptions,
  ) {
    this.config = config;
  }

  private logger(loop: "serve" | "sidecar" | "judge"): Logger {
    return this.opts.logger?.(loop) ?? createLogger(loop, this.config.logLevel);
  }

  async start(): Promise<this> {
    const log = this.opts.log;
    let config = this.config;
    // Which model server, and which base to train.
    if (!this.opts.embedded && !config.sidecar.upstream) {
      throw new Error("nothing to serve: pass --model smollm2 (or a .gguf) for the embedded engine, or --upstream URL for your own model server");
    }
    let modelPath: string | null = null;
    if (this.opts.embedded) {
      modelPath = await ensureModel(config.serve.model!, { dataDir: config.dataDir, logger: log });
    } else if (!config.train.model) {
      throw new Error(
        `the trainer needs the base model that ${config.sidecar.upstream} serves: set train.model (a .gguf file or a Hugging Face folder) in ${dataPaths(config.dataDir).config} or CLAWLOOP_TRAIN_MODEL`,
      );
    }
    try {
      if (this.opts.embedded) {
        this.engine = await startServer({
          model: modelPath!,
          servedModelName: modelPath === path.resolve(config.serve.model!) ? null : config.serve.model,
          host: config.serve.host,
          port: config.serve.port,
          contextSize: config.serve.contextSize,
          parallel: config.serve.parallel,
          // The trainer always runs beside it here: on a small machine the engine gets one core.
          threads: defaultEngineThreads(os.availableParallelism(), true, config.serve.threads),
          logger: this.logger("serve"),
        });
        config = {
          ...config,
          sidecar: { ...config.sidecar, upstream: this.engine.url, upstreamKind: "clawloop" },
          train: { ...config.train, model: config.train.model ?? modelPath },
        };
        this.config = config;
      }
      this.sidecar = await startHotloadingSidecar(config, { logger: this.logger("sidecar") });
      this.judge = await startJudgeLoop(config, { logger: this.logger("judge"), ...(this.opts.onJudged ? { onJudged: this.opts.onJudged } : {}) });
      const trainArgs = ["--data", config.dataDir, "--model", config.train.model!, ...(this.opts.trainerArgs ?? [])];
      this.trainer = new TrainerProcess(
        trainArgs,
        log,
        (pid) => {
          if (!this.up) return;
          this.up.trainerPid = pid;
          writeJsonAtomic(upFile(config.dataDir), this.up);
        },
        this.opts.cliCommand ?? selfCommand(),
        this.opts.trainerOutput ?? null,
      );
      this.up = {
        pid: process.pid,
        sidecar: this.sidecar.url,
        engine: this.engine?.url ?? null,
        upstream: config.sidecar.upstream!,
        model: config.train.model,
        trainerPid: null,
        startedAt: new Date().toISOString(),
      };
      writeJsonAtomic(upFile(config.dataDir), this.up);
      this.trainer.start();
      process.once("exit", () => this.trainer?.killNow());
    } catch (err) {
      await this.stop();
      throw err;
    }
    return this;
  }

  /** Stops the trainer and the judge (they finish the step and the judgments in progress); serving goes on. */
  async stopLearning(): Promise<void> {
    const log = this.opts.log;
    await Promise.all([
      this.trainer?.stop().catch((err: unknown) => log.error({ err: String(err) }, "stopping the trainer")),
      this.judge?.stop().catch((err: unknown) => log.error({ err: String(err) }, "stopping the judge")),
    ]);
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopAll();
    return this.stopping;
  }

  private async stopAll(): Promise<void> {
    const log = this.opts.log;
    log.info("stopping");
    // Calls first (the sidecar drains what is in flight), then the loops behind it, then the engine.
    await this.sidecar?.close().catch((err: unknown) => log.error({ err: String(err) }, "closing the sidecar"));
    await this.stopLearning();
    await this.engine?.close().catch((err: unknown) => log.error({ err: String(err) }, "closing the engine"));
    try {
      if (this.up && readUpFile(this.config.dataDir)?.pid === process.pid) fs.rmSync(upFile(this.config.dataDir), { force: true });
    } catch {
      // best effort
    }
    log.info("stopped");
  }
}

export function register(program: Command): void {
  withCommonOptions(
    program
      .command("up")
      .description("Run all four loops: the model server (embedded, with --model), the sidecar with hot-loading, the judge and the trainer.")
      .option("--model <path|name>", "serve this GGUF with the embedded engine (or a known name: smollm2, fetched on first use) and train on it")
      .option("--upstream <url>", "your own model server instead (vLLM, SGLang, llama.cpp, Ollama); set train.model to the base it serves")
      .option("--upstream-kind <kind>", "the upstream's kind when detection cannot tell (vllm | sglang | llamacpp | ollama)", upstreamKindFlag)
      .option("--port <port>", "the sidecar's port (default 11435; 0 picks a free one)", port)
      .option("--host <host>", "the sidecar's address (default 127.0.0.1)")
      .option("--engine-port <port>", "the embedded engine's port (default 11436; 0 picks a free one)", port),
  ).action(async (flags: UpFlags) => {
    if (flags.model && flags.upstream) throw new Error("pass --model (the embedded engine) or --upstream (your own server), not both");
    const sidecar: NonNullable<ConfigOverrides["sidecar"]> = {};
    if (flags.port !== undefined) sidecar.port = Number(flags.port);
    if (flags.host) sidecar.host = flags.host;
    if (flags.upstream) sidecar.upstream = flags.upstream;
    if (flags.upstreamKind) sidecar.upstreamKind = flags.upstreamKind;
    const serve: NonNullable<ConfigOverrides["serve"]> = {};
    if (flags.model) serve.model = flags.model;
    if (flags.enginePort !== undefined) serve.port = Number(flags.enginePort);
    const config = configFrom(flags, { sidecar, serve });
    const log = createLogger("up", config.logLevel);
    const embedded = flags.model !== undefined || (!config.sidecar.upstream && config.serve.model !== null);
    const trainerArgs: string[] = [];
    if (flags.config) trainerArgs.push("--config", flags.config);
    if (flags.logLevel) trainerArgs.push("--log-level", flags.logLevel);
    const loops = new Loops(config, { embedded, log, trainerArgs });
    onShutdown(() => loops.stop());
    await loops.start();
    const { engine, trainer } = loops;
    const sc = loops.sidecar!;
    const lines = [
      `clawloop up (data ${dataPaths(config.dataDir).root})`,
      engine
        ? `  serve    embedded engine: ${engine.engine.name} on ${engine.url}/v1 (${engine.engine.threads} thread${engine.engine.threads === 1 ? "" : "s"})`
        : `  serve    your model server: ${loops.config.sidecar.upstream}`,
      `  collect  sidecar: ${sc.url}/v1  ← point your agent (OpenAI-compatible) here`,
      `  judge    ${config.judge.method}${config.judge.rulesFirst ? " (rules first)" : ""}, in this process`,
      `  train    ${config.train.mode} on ${loops.config.train.model}, in process ${trainer!.pid ?? "?"}; adapter versions in ${dataPaths(config.dataDir, config.adapters.dir).adapters}`,
      `  dashboard ${dashboardLink(sc.url, sc.token)}`,
      "",
    ];
    process.stdout.write(lines.join("\n") + "\n");
  });
}
