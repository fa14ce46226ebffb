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

/** Options every loop command accepts. */
export function withCommonOptions(cmd: Command): Command {
  return cmd
    .option("--data <dir>", "data directory (default: $CLAWLOOP_HOME or ~/.clawloop)")
    .option("--config <file>", "config file (default: <data>/config.json)")
    .option("--log-level <level>", "trace | debug | info | warn | error | silent");
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

/** Runs `stop` once on SIGINT/SIGTERM, then exits. A second signal exits at once. */
export function onShutdown(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        process.stderr.write(`clawloop: error while stopping after ${signal}: ${String(err)}\n`);
        process.exit(1);
      });
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}
