// Helpers every subcommand uses: config from flags, logging, graceful shutdown.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { loadConfig, type Config, type ConfigOverrides } from "../core/index.js";

export function packageRoot(): string {
  // dist/cli/shared.js or cli/shared.ts → the repository/package root.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find clawloop's package.json");
    dir = up;
  }
  return dir;
}

export function readPackageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

/** Options every loop command accepts; a loop command started by another over IPC ends with it. */
export function withCommonOptions(cmd: Command): Command {
  return cmd
    .option("--data <dir>", "data directory (default: $CLAWLOOP_HOME or ~/.clawloop)")
    .option("--config <file>", "config file (default: <data>/config.json)")
    .option("--log-level <level>", "trace | debug | info | warn | error | silent")
    .hook("preAction", () => exitWithParent());
}

export interface CommonFlags {
  data?: string;
  config?: string;
  logLevel?: string;
}

/** Loads the configuration with the command's flags on top. */
export function configFrom(flags: CommonFlags, overrides: ConfigOverrides = {}): Config {
  const base: ConfigOverrides = { ...overrides };
  if (flags.data) base.dataDir = path.resolve(flags.data);
  if (flags.logLevel) base.logLevel = flags.logLevel as Config["logLevel"];
  return loadConfig({ file: flags.config ?? null, flags: base });
}

/** The stop registered with onShutdown, and whether the parent (see exitWithParent) is gone. */
let shutdown: ((why: string) => void) | null = null;
let parentGone = false;
let watchingParent = false;

/**
 * Runs `stop` once on SIGINT/SIGTERM, or when the parent watched by exitWithParent goes away, then
 * exits. A second signal exits at once.
 */
export function onShutdown(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (why: string) => {
    if (stopping) {
      if (why === "parent exited") return;
      process.exit(130);
    }
    stopping = true;
    stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        process.stderr.write(`clawloop: error while stopping after ${why}: ${String(err)}\n`);
        process.exit(1);
      });
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  shutdown = handler;
  if (parentGone) handler("parent exited");
}

/** Set to "1" by a parent that starts a clawloop command with an IPC channel to be ended with it. */
export const EXIT_WITH_PARENT_ENV = "CLAWLOOP_EXIT_WITH_PARENT";

/**
 * A process started by another with an IPC channel and EXIT_WITH_PARENT_ENV (the trainer under
 * `clawloop up`) ends with its parent, even one killed with -9: the kernel closes the channel, and
 * this process stops as on SIGTERM (finishing what it is writing), or, if it has not registered its
 * stop yet (still starting), as soon as it does. Opt-in, because other parents hold IPC channels
 * for their own reasons (a test runner's workers run commands in-process); the channel never keeps
 * this process alive.
 */
export function exitWithParent(): void {
  if (process.env[EXIT_WITH_PARENT_ENV] !== "1" || typeof process.send !== "function" || watchingParent) return;
  watchingParent = true;
  // Meant for this process, not for any it starts.
  delete process.env[EXIT_WITH_PARENT_ENV];
  const gone = () => {
    parentGone = true;
    shutdown?.("parent exited");
  };
  if (!process.connected) return gone();
  process.once("disconnect", gone);
  process.channel?.unref();
}


/** An ISO timestamp as the CLI prints it: "2026-01-02 03:04:05" (UTC, to the second). */
export function stamp(iso: string): string {
  return iso.replace("T", " ").slice(0, 19);
}
