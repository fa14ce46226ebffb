// `clawloop dashboard`: prints the link that signs a browser in to the running sidecar's dashboard.
// The link goes to stdout alone (so `xdg-open "$(clawloop dashboard)"` works); hints go to stderr.
import fs from "node:fs";
import { Command } from "commander";
import { dataPaths, type Config, type ConfigOverrides } from "../../core/index.js";
import { dashboardLink } from "../../sidecar/index.js";
import { configFrom, withCommonOptions, type CommonFlags } from "../shared.js";
import { localUrl, sidecarUrl } from "../up-file.js";

interface DashboardFlags extends CommonFlags {
  port?: string;
  host?: string;
  url?: string;
}

/**
 * The sidecar to sign in to: `--url`; else `--port`/`--host` (over the configured address); else
 * the running `clawloop up`'s (its port may differ from the configured one); else the configured.
 */
export function dashboardUrl(config: Config, flags: Pick<DashboardFlags, "url" | "port" | "host">): string {
  if (flags.url || flags.port !== undefined || flags.host) return flags.url ?? localUrl(config.sidecar.host, config.sidecar.port);
  return sidecarUrl(config);
}

/**
 * The sign-in link of the sidecar at `url`, after checking that it runs and accepts this data
 * directory's token. Throws with what to do otherwise.
 */
export async function findDashboardLink(opts: { dataDir: string; url: string; timeoutMs?: number }): Promise<string> {
  const tokenFile = dataPaths(opts.dataDir).token;
  let token: string;
  try {
    token = fs.readFileSync(tokenFile, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    throw new Error(`no control token at ${tokenFile}: no sidecar has run with this data directory yet. Start one with \`clawloop up\` or \`clawloop sidecar\` (or pass --data DIR).`);
  }
  if (!token) throw new Error(`${tokenFile} is empty: delete it and restart the sidecar to get a new token`);
  let res: Response;
  try {
    res = await fetch(new URL("/clawloop/v1/status", opts.url), {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(opts.timeoutMs ?? 5_000),
    });
    await res.arrayBuffer();
  } catch (err) {
    const why = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new Error(`no sidecar answers at ${opts.url} (${why}). Start it with \`clawloop up\` or \`clawloop sidecar\`, or pass --port/--host/--url if it listens elsewhere.`);
  }
  if (res.status === 401) {
    throw new Error(`the sidecar at ${opts.url} does not accept the token in ${tokenFile}: it runs with another data directory (pass --data DIR).`);
  }
  if (!res.ok) throw new Error(`the sidecar at ${opts.url} answered ${res.status} to /clawloop/v1/status`);
  return dashboardLink(opts.url, token);
}

export function register(program: Command): void {
  withCommonOptions(
    program
      .command("dashboard")
      .description("Print the link that signs your browser in to the dashboard of the running sidecar.")
      .option("--port <port>", "the sidecar's port (default: the running `clawloop up`'s, else sidecar.port, 11435)")
      .option("--host <host>", "the sidecar's address (default: sidecar.host, 127.0.0.1)")
      .option("--url <url>", "the sidecar's base URL, instead of --host/--port"),
  ).action(async (flags: DashboardFlags) => {
    const sidecar: NonNullable<ConfigOverrides["sidecar"]> = {};
    if (flags.port !== undefined) sidecar.port = Number(flags.port);
    if (flags.host) sidecar.host = flags.host;
    const config = configFrom(flags, { sidecar });
    const url = dashboardUrl(config, flags);
    const link = await findDashboardLink({ dataDir: config.dataDir, url });
    process.stderr.write("Open this link to sign your browser in to the clawloop dashboard (keep it private: it carries the control token):\n");
    process.stdout.write(`${link}\n`);
  });
}
