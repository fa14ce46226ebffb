// Running OpenClaw's own CLI, which the installer prefers for linking the plugin (it records the
// install, so OpenClaw knows where the plugin came from) and for validating the result.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

export interface OpenClawCli {
  bin: string;
  run(args: string[], opts?: { timeoutMs?: number }): Promise<CliResult>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `--openclaw BIN`, else `$OPENCLAW_BIN`, else `openclaw` on the PATH; null when there is none. */
export function findOpenClawCli(explicit: string | null | undefined, env: NodeJS.ProcessEnv = process.env): OpenClawCli | null {
  const bin = explicit || env.OPENCLAW_BIN || whichOnPath("openclaw", env);
  if (!bin) return null;
  if (explicit && !fs.existsSync(bin)) throw new Error(`--openclaw ${bin}: no such file`);
  return {
    bin,
    run: (args, opts) => runCli(bin, args, env, opts?.timeoutMs ?? 180_000),
  };
}

function whichOnPath(name: string, env: NodeJS.ProcessEnv): string | null {
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

function runCli(bin: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(bin, args, { env, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === 1 && !stderr ? err.message : "") });
    });
  });
}
