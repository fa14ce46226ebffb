// `clawloop sidecar` started for a bench the way a user starts it: the bin executed as a shell does
// (its first line gives the sidecar its malloc settings), on this Node, in a data directory of its
// own. Over its IPC channel it learns when the bench is gone, however that ended (cli/shared.ts).
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { EXIT_WITH_PARENT_ENV } from "../cli/shared.js";

export function spawnSidecar(bin: string, upstreamUrl: string, dataDir: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(bin, ["sidecar", "--upstream", `${upstreamUrl}/v1`, "--port", "0", "--data", dataDir, "--log-level", "info"], {
    stdio: ["ignore", "pipe", "inherit", "ipc"],
    env: { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}`, [EXIT_WITH_PARENT_ENV]: "1", ...env },
  });
}

/** The first JSON line on the child's stdout for which `pick` returns a value; rejects if the child exits first. */
export function waitForJsonLine(child: ChildProcess, pick: (rec: Record<string, unknown>) => string | null): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout! });
    rl.on("line", (line) => {
      try {
        const v = pick(JSON.parse(line) as Record<string, unknown>);
        if (v) resolve(v);
      } catch {
        // not JSON
      }
    });
    child.once("exit", (code) => reject(new Error(`child exited early with ${code}`)));
  });
}

/** The address a sidecar logs once it listens. */
export const listeningUrl = (r: Record<string, unknown>): string | null => (r.msg === "sidecar listening" && typeof r.url === "string" ? r.url : null);
