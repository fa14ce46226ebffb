// The real OpenClaw for end-to-end tests: openclaw@2026.9.6 and a Node it accepts (≥ 24.16, from
// the npm registry's `node-<platform>-<arch>` package, since the test host runs Node 20), installed
// once into .cache/openclaw/ (ignored by git). A lock directory keeps parallel test files from
// installing at the same time; a `.ready` marker says the install is complete.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { promisify } from "node:util";
import { withDirLock } from "./dir-lock.js";
import { CACHE_DIR, REPO_ROOT } from "./model-fixture.js";

const exec = promisify(execFile);

export const OPENCLAW_VERSION = "2026.9.6";
export const NODE_VERSION = "24.21.0";

export interface OpenClawInstall {
  dir: string;
  /** Folder holding the `node` that runs OpenClaw. */
  nodeBinDir: string;
  /** The `openclaw` command. */
  openclawBin: string;
  /** An environment running OpenClaw in isolation: its own HOME, state directory and config. */
  env(p: { home: string; stateDir: string; configPath?: string; extra?: NodeJS.ProcessEnv }): NodeJS.ProcessEnv;
}

function installDir(): string {
  return path.join(CACHE_DIR, "openclaw", `openclaw-${OPENCLAW_VERSION}-node-${NODE_VERSION}-${process.platform}-${process.arch}`);
}

function describe(dir: string): OpenClawInstall {
  const nodeBinDir = path.join(dir, "node_modules", `node-${process.platform}-${process.arch}`, "bin");
  const openclawBin = path.join(dir, "node_modules", ".bin", "openclaw");
  return {
    dir,
    nodeBinDir,
    openclawBin,
    env: ({ home, stateDir, configPath, extra }) => ({
      ...withoutTestRunnerVars(process.env),
      PATH: [nodeBinDir, path.dirname(openclawBin), process.env.PATH ?? ""].join(path.delimiter),
      HOME: home,
      OPENCLAW_STATE_DIR: stateDir,
      OPENCLAW_CONFIG_PATH: configPath ?? path.join(stateDir, "openclaw.json"),
      NO_COLOR: "1",
      FORCE_COLOR: "0",
      ...extra,
    }),
  };
}

/**
 * The test runner's own variables, which OpenClaw (itself developed with vitest) reads as "running
 * under test": with VITEST=true it prints nothing and writes no log file.
 */
function withoutTestRunnerVars(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !/^VITEST/.test(k) && k !== "TEST" && k !== "NODE_ENV"));
}

async function npmInstall(dir: string, spec: string, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    await exec("npm", ["install", "--no-audit", "--no-fund", "--no-update-notifier", "--loglevel=error", spec], {
      cwd: dir,
      env,
      maxBuffer: 64 * 1024 * 1024,
      timeout: 10 * 60_000,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`npm install ${spec} failed: ${e.message}\n${e.stderr ?? ""}${e.stdout ?? ""}`);
  }
}

/** Installs (once) and returns the cached OpenClaw. Works unattended (CI=true, no stdin). */
export async function ensureOpenClaw(): Promise<OpenClawInstall> {
  const dir = installDir();
  const ready = path.join(dir, ".ready");
  if (fs.existsSync(ready)) return describe(dir);
  return withDirLock(`${dir}.lock`, async () => {
    if (fs.existsSync(ready)) return describe(dir);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "openclaw-for-tests", private: true }) + "\n");
    const oc = describe(dir);
    const env: NodeJS.ProcessEnv = { ...process.env, CI: "true", npm_config_yes: "true" };
    // Node first: OpenClaw's install refuses to run its scripts under an older Node on the PATH.
    await npmInstall(dir, `node-${process.platform}-${process.arch}@${NODE_VERSION}`, env);
    await npmInstall(dir, `openclaw@${OPENCLAW_VERSION}`, { ...env, PATH: [oc.nodeBinDir, env.PATH ?? ""].join(path.delimiter) });
    const { stdout } = await exec(oc.openclawBin, ["--version"], {
      env: { ...env, PATH: [oc.nodeBinDir, env.PATH ?? ""].join(path.delimiter) },
    });
    if (!stdout.includes(OPENCLAW_VERSION)) throw new Error(`installed OpenClaw reports "${stdout.trim()}", expected ${OPENCLAW_VERSION}`);
    fs.writeFileSync(ready, `${new Date().toISOString()}\n`);
    return oc;
  }, { timeoutMs: 15 * 60_000, what: "another process installing OpenClaw" });
}

// ---------------------------------------------------------------------------------------------
// Driving OpenClaw and clawloop's CLI as processes, with their output kept for diagnosis.

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Output of every process a test ran, newest last: printed when a test fails. */
export class Transcript {
  readonly entries: string[] = [];
  add(title: string, body: string): void {
    this.entries.push(`── ${title}\n${body.trim()}`);
  }
  tail(chars = 60_000): string {
    const all = this.entries.join("\n\n");
    return all.length > chars ? `…${all.slice(-chars)}` : all;
  }
}

export function run(
  cmd: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; log?: Transcript },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd ?? REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 180_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      opts.log?.add(`${path.basename(cmd)} ${args.join(" ")} → exit ${code}`, `${stdout}\n${stderr}`.slice(-20_000));
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs clawloop's CLI from source (the code `bin/clawloop.js` runs once built), on the test's Node. */
export function clawloopArgs(args: string[]): [string, string[]] {
  const entry = 'const { main } = await import("./cli/main.ts"); await main(["node", "clawloop", ...process.argv.slice(1)]);';
  return [process.execPath, ["--import", "tsx", "--input-type=module", "-e", entry, "--", ...args]];
}

export interface Service {
  child: ChildProcess;
  output: () => string;
  /** SIGTERM, then waits for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a long-running process and resolves once a line of its output matches `ready`. */
export function startService(
  cmd: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; ready: RegExp; timeoutMs?: number; name: string; log?: Transcript },
): Promise<Service> {
  const child = spawn(cmd, args, { env: opts.env, cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const service: Service = {
    child,
    output: () => out,
    stop: async (graceMs = 15_000) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(t);
      }
      opts.log?.add(`${opts.name} (stopped)`, out.slice(-20_000));
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${opts.name} did not get ready in ${opts.timeoutMs ?? 120_000} ms:\n${out.slice(-5000)}`));
    }, opts.timeoutMs ?? 120_000);
    for (const stream of [child.stdout!, child.stderr!]) {
      readline.createInterface({ input: stream }).on("line", (line) => {
        out += line + "\n";
        if (opts.ready.test(line)) {
          clearTimeout(timer);
          resolve(service);
        }
      });
    }
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${opts.name} exited before it was ready:\n${out.slice(-5000)}`));
    });
  });
}
