// `clawloop openclaw install | uninstall | status`: put clawloop into (and take it out of) OpenClaw.
import path from "node:path";
import { Command } from "commander";
import type { Config } from "../../core/index.js";
import { findOpenClawCli, installOpenClaw, openclawStatus, uninstallOpenClaw } from "../openclaw/index.js";
import { configFrom, packageRoot, withCommonOptions, type CommonFlags } from "../shared.js";
import { localUrl } from "../up-file.js";

interface OpenClawFlags extends CommonFlags {
  dryRun?: boolean;
  sidecarUrl?: string;
  openclaw?: string;
  json?: boolean;
}

/** Where the plugin and the provider reach the sidecar: its configured address, loopback for a wildcard bind. */
const sidecarUrlOf = (config: Config) => localUrl(config.sidecar.host, config.sidecar.port);

const print = (line: string) => process.stdout.write(`${line}\n`);

export function register(program: Command): void {
  const oc = program
    .command("openclaw")
    .description("Install clawloop into OpenClaw (route the agent's model through the sidecar, link the plugin) or take it out");

  withCommonOptions(
    oc
      .command("install")
      .description("Route the agent's model through the sidecar, link the clawloop plugin and grant it the conversation hooks")
      .option("--dry-run", "print the changes without making them")
      .option("--sidecar-url <url>", "where OpenClaw reaches the sidecar (default: from sidecar.host/port)")
      .option("--openclaw <bin>", "OpenClaw's CLI (default: $OPENCLAW_BIN, else `openclaw` on the PATH)"),
  ).action(async (flags: OpenClawFlags) => {
    const config = configFrom(flags);
    await installOpenClaw({
      dataDir: config.dataDir,
      sidecarUrl: (flags.sidecarUrl ?? sidecarUrlOf(config)).replace(/\/+$/, "").replace(/\/v1$/, ""),
      pluginDir: path.join(packageRoot(), "plugin"),
      cli: findOpenClawCli(flags.openclaw),
      dryRun: Boolean(flags.dryRun),
      print,
    });
  });

  withCommonOptions(
    oc
      .command("uninstall")
      .description("Put OpenClaw's config back as it was before install (byte for byte when it was not changed since)")
      .option("--dry-run", "print the changes without making them")
      .option("--openclaw <bin>", "OpenClaw's CLI (default: $OPENCLAW_BIN, else `openclaw` on the PATH)"),
  ).action(async (flags: OpenClawFlags) => {
    const config = configFrom(flags);
    await uninstallOpenClaw({ dataDir: config.dataDir, cli: findOpenClawCli(flags.openclaw), dryRun: Boolean(flags.dryRun), print });
  });

  withCommonOptions(
    oc
      .command("status")
      .description("Whether OpenClaw is wired to clawloop, the sidecar answers, and how many events wait in the plugin's spool")
      .option("--json", "print as JSON"),
  ).action(async (flags: OpenClawFlags) => {
    const config = configFrom(flags);
    const s = await openclawStatus({ dataDir: config.dataDir });
    if (flags.json) {
      print(JSON.stringify(s, null, 2));
      return;
    }
    print(`OpenClaw config: ${s.configPath}`);
    if (!s.record) {
      print("clawloop is not installed into OpenClaw (run `clawloop openclaw install`).");
      return;
    }
    print(`Installed:       ${s.record.installedAt}; provider "${s.record.providerId}" (${s.record.upstream}) routed through clawloop`);
    print(`Config:          ${s.configUnchanged ? "as install left it" : "changed since install"}`);
    print(`Sidecar:         ${s.sidecarUrl ?? "(not configured)"} — ${s.sidecar ? (s.sidecar.reachable ? "answering" : `not reachable (${s.sidecar.detail})`) : "unknown"}`);
    print(`Spooled events:  ${s.spooledEvents}${s.spooledEvents ? ` waiting in ${s.spoolDir} (sent when the sidecar answers)` : ""}`);
  });
}
