// `clawloop openclaw install | uninstall | status`: wires an OpenClaw installation to clawloop and
// takes it back out. Before changing anything, install saves the exact bytes of OpenClaw's config
// (and of clawloop's own config) under `<data>/openclaw/`; uninstall puts them back byte for byte,
// or, when the user changed the config since, removes only what install added.
import fs from "node:fs";
import path from "node:path";
import { createTwoFilesPatch } from "diff";
import { dataPaths, loadConfig, updateConfigFile } from "../../core/index.js";
import type { OpenClawCli } from "./openclaw-cli.js";
import {
  formatConfig,
  openclawPaths,
  OpenClawConfigError,
  readConfigFile,
  sha256,
  usesIncludes,
  writeFileAtomic,
  type ConfigFile,
} from "./openclaw-config.js";
import { applyInstall, InstallRefusal, PLUGIN_ID, planInstall, revertInstall, type InstallPlan } from "./plan.js";

export interface InstallRecord {
  version: 1;
  installedAt: string;
  configPath: string;
  stateDir: string;
  pluginDir: string;
  providerId: string;
  movedRefs: string[];
  upstream: string;
  /** How the plugin was linked: OpenClaw's `plugins install --link`, or `plugins.load.paths`. */
  linkedWith: "openclaw-cli" | "config";
  configMode: number;
  originalSha256: string;
  installedSha256: string;
  /** clawloop's own config.json before install (null: there was none). */
  clawloopConfigSha256Before: string | null;
  clawloopConfigSha256After: string;
}

export interface InstallerOptions {
  dataDir: string;
  /** The sidecar's base URL (no /v1) the plugin and the provider point at. */
  sidecarUrl: string;
  /** The plugin package (the folder holding openclaw.plugin.json). */
  pluginDir: string;
  /** OpenClaw's CLI, or null to edit the config file only (no install record in OpenClaw, no validation). */
  cli: OpenClawCli | null;
  dryRun?: boolean;
  env?: NodeJS.ProcessEnv;
  print?: (line: string) => void;
}

export class InstallerError extends Error {}

function installDir(dataDir: string): { dir: string; record: string; originalConfig: string; originalClawloopConfig: string } {
  const dir = path.join(dataPaths(dataDir).root, "openclaw");
  return {
    dir,
    record: path.join(dir, "install.json"),
    originalConfig: path.join(dir, "openclaw.json.before-install"),
    originalClawloopConfig: path.join(dir, "clawloop-config.json.before-install"),
  };
}

export function readInstallRecord(dataDir: string): InstallRecord | null {
  try {
    return JSON.parse(fs.readFileSync(installDir(dataDir).record, "utf8")) as InstallRecord;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new InstallerError(`cannot read ${installDir(dataDir).record}: ${(err as Error).message}`);
  }
}

function refuseReadOnly(env: NodeJS.ProcessEnv): void {
  if (env.OPENCLAW_CONFIG_READONLY === "1" || env.OPENCLAW_NIX_MODE === "1") {
    throw new InstallRefusal(
      "OpenClaw's config is managed externally (OPENCLAW_CONFIG_READONLY=1 or OPENCLAW_NIX_MODE=1); make the changes " +
        "`clawloop openclaw install --dry-run` prints in the source of your config instead.",
    );
  }
}

async function runOrThrow(cli: OpenClawCli, args: string[], what: string): Promise<string> {
  const r = await cli.run(args);
  if (r.code !== 0) throw new InstallerError(`${what} failed (openclaw ${args.join(" ")}, exit ${r.code}):\n${(r.stderr + r.stdout).trim()}`);
  return r.stdout;
}

export interface InstallResult {
  installed: boolean;
  alreadyInstalled: boolean;
  plan: InstallPlan | null;
  configPath: string;
  diff: string;
}

export async function installOpenClaw(opts: InstallerOptions): Promise<InstallResult> {
  const env = opts.env ?? process.env;
  const print = opts.print ?? (() => {});
  const { stateDir, configPath } = openclawPaths(env);
  const files = installDir(opts.dataDir);

  const existing = readInstallRecord(opts.dataDir);
  const original = readConfigFile(configPath);
  if (existing) {
    if (existing.configPath === configPath && existing.installedSha256 === original.sha256) {
      print(`clawloop is already installed in ${configPath} (provider "${existing.providerId}" routed through the sidecar).`);
      return { installed: false, alreadyInstalled: true, plan: null, configPath, diff: "" };
    }
    throw new InstallRefusal(
      `clawloop was installed into ${existing.configPath} on ${existing.installedAt}` +
        (existing.configPath === configPath ? " and the config changed since" : "") +
        "; run `clawloop openclaw uninstall` first.",
    );
  }
  if (!opts.dryRun) refuseReadOnly(env);
  if (usesIncludes(original.config)) {
    throw new InstallRefusal(
      `${configPath} uses $include; the installer edits a single file. Run \`clawloop openclaw install --dry-run\` and make those changes in the file that holds them.`,
    );
  }
  if (!fs.existsSync(path.join(opts.pluginDir, "openclaw.plugin.json"))) {
    throw new InstallerError(`no OpenClaw plugin at ${opts.pluginDir} (openclaw.plugin.json is missing)`);
  }

  const plan = planInstall(original.config, { sidecarUrl: opts.sidecarUrl, dataDir: path.resolve(opts.dataDir), env });
  const linkWithCli = opts.cli !== null;
  const preview = applyInstall(original.config, plan, opts.pluginDir);
  const diff = createTwoFilesPatch(configPath, `${configPath} (after install)`, formatConfig(original.config), formatConfig(preview), "", "", {
    context: 2,
  });

  print(`OpenClaw config: ${configPath}`);
  print(`Agent model:     ${plan.movedRefs.join(", ")} → ${plan.movedRefs.map((r) => `clawloop/${r.slice(plan.providerId.length + 1)}`).join(", ")}`);
  print(`Sidecar:         ${opts.sidecarUrl}/v1, in front of ${plan.upstream} (upstream kind: ${plan.upstreamKind}), saved in ${dataPaths(opts.dataDir).config}`);
  print(
    `Plugin:          ${opts.pluginDir}, linked with ${linkWithCli ? `\`${opts.cli!.bin} plugins install --link\`` : "plugins.load.paths (OpenClaw's CLI not found)"}, conversation hooks granted`,
  );
  for (const w of plan.warnings) print(`Note: ${w}`);

  if (opts.dryRun) {
    print("");
    print("Changes to OpenClaw's config (dry run: nothing written):");
    print(diff.trimEnd());
    if (original.bytes.toString("utf8") !== formatConfig(original.config)) {
      print("(Shown as JSON. Like OpenClaw's own config writes, install rewrites the file as plain JSON; uninstall restores it byte for byte.)");
    }
    return { installed: false, alreadyInstalled: false, plan, configPath, diff };
  }

  // Save what is there before touching anything, so every failure below can be undone.
  fs.mkdirSync(files.dir, { recursive: true });
  fs.writeFileSync(files.originalConfig, original.bytes, { mode: 0o600 });
  const clawloopConfigFile = dataPaths(opts.dataDir).config;
  const clawloopConfigBefore = fs.existsSync(clawloopConfigFile) ? fs.readFileSync(clawloopConfigFile) : null;
  if (clawloopConfigBefore) fs.writeFileSync(files.originalClawloopConfig, clawloopConfigBefore, { mode: 0o600 });
  else fs.rmSync(files.originalClawloopConfig, { force: true });

  const rollback = async () => {
    if (opts.cli) await opts.cli.run(["plugins", "uninstall", PLUGIN_ID, "--keep-files", "--force"]).catch(() => undefined);
    writeFileAtomic(configPath, original.bytes, original.mode);
    if (clawloopConfigBefore) writeFileAtomic(clawloopConfigFile, clawloopConfigBefore, 0o644);
    else fs.rmSync(clawloopConfigFile, { force: true });
  };

  try {
    // Validate clawloop's side first: a bad value there must not leave OpenClaw half-changed.
    loadConfig({ flags: { dataDir: opts.dataDir }, env: {} });
    updateConfigFile(opts.dataDir, { sidecar: { upstream: plan.upstream, upstreamKind: plan.upstreamKind } });

    let base: ConfigFile = original;
    if (opts.cli) {
      await runOrThrow(opts.cli, ["plugins", "install", "--link", opts.pluginDir, "--force", "--accept-capabilities"], "linking the plugin");
      base = readConfigFile(configPath);
    }
    const next = applyInstall(base.config, plan, opts.cli ? null : opts.pluginDir);
    writeFileAtomic(configPath, formatConfig(next), original.mode);
    if (opts.cli) await runOrThrow(opts.cli, ["config", "validate"], "validating OpenClaw's config");
  } catch (err) {
    await rollback();
    fs.rmSync(files.originalConfig, { force: true });
    fs.rmSync(files.originalClawloopConfig, { force: true });
    throw err instanceof Error ? new InstallerError(`${err.message}\nNothing was changed: ${configPath} is as it was.`) : err;
  }

  const installed = fs.readFileSync(configPath);
  const record: InstallRecord = {
    version: 1,
    installedAt: new Date().toISOString(),
    configPath,
    stateDir,
    pluginDir: opts.pluginDir,
    providerId: plan.providerId,
    movedRefs: plan.movedRefs,
    upstream: plan.upstream,
    linkedWith: opts.cli ? "openclaw-cli" : "config",
    configMode: original.mode,
    originalSha256: original.sha256,
    installedSha256: sha256(installed),
    clawloopConfigSha256Before: clawloopConfigBefore ? sha256(clawloopConfigBefore) : null,
    clawloopConfigSha256After: sha256(fs.readFileSync(clawloopConfigFile)),
  };
  writeFileAtomic(files.record, JSON.stringify(record, null, 2) + "\n", 0o600);
  print("");
  print(`Installed. Your original config is saved in ${files.originalConfig}; \`clawloop openclaw uninstall\` puts it back.`);
  print(`Next: start the sidecar (\`clawloop sidecar --data ${opts.dataDir}\`), then restart the OpenClaw gateway if it is running.`);
  if (!opts.cli) print("OpenClaw's CLI was not found, so the config was not validated; run `openclaw config validate` yourself.");
  return { installed: true, alreadyInstalled: false, plan, configPath, diff };
}

export interface UninstallResult {
  uninstalled: boolean;
  /** "exact": the saved original was put back byte for byte; "revert": the config had changed, only clawloop's parts were removed. */
  mode: "exact" | "revert" | null;
  configPath: string | null;
}

export async function uninstallOpenClaw(opts: Omit<InstallerOptions, "sidecarUrl" | "pluginDir">): Promise<UninstallResult> {
  const env = opts.env ?? process.env;
  const print = opts.print ?? (() => {});
  const files = installDir(opts.dataDir);
  const record = readInstallRecord(opts.dataDir);
  if (!record) {
    throw new InstallRefusal(
      `clawloop is not installed into OpenClaw from ${dataPaths(opts.dataDir).root} (no ${files.record}). ` +
        "If you installed with another --data directory, pass that.",
    );
  }
  if (!opts.dryRun) refuseReadOnly(env);
  let current: ConfigFile | null = null;
  try {
    current = readConfigFile(record.configPath);
  } catch (err) {
    if (!(err instanceof OpenClawConfigError)) throw err;
  }
  const original = fs.readFileSync(files.originalConfig);
  const exact = current !== null && current.sha256 === record.installedSha256;
  const mode: "exact" | "revert" = exact || current === null ? "exact" : "revert";

  let restored: Buffer;
  if (mode === "exact") restored = original;
  else restored = Buffer.from(formatConfig(revertInstall(current!.config, record.providerId, record.linkedWith === "config" ? record.pluginDir : null)));

  print(`OpenClaw config: ${record.configPath}`);
  print(
    mode === "exact"
      ? "It is as install left it: the original is put back byte for byte."
      : "It changed since install: only what install added is removed (clawloop provider, plugin entry, model references moved back); the rest stays as you have it.",
  );
  if (opts.dryRun) {
    print("");
    print("Changes to OpenClaw's config (dry run: nothing written):");
    print(
      createTwoFilesPatch(record.configPath, `${record.configPath} (after uninstall)`, current ? current.bytes.toString("utf8") : "", restored.toString("utf8"), "", "", {
        context: 2,
      }).trimEnd(),
    );
    return { uninstalled: false, mode, configPath: record.configPath };
  }

  if (opts.cli && record.linkedWith === "openclaw-cli") {
    // Removes OpenClaw's install record of the plugin; --keep-files: the plugin folder is clawloop's own.
    const r = await opts.cli.run(["plugins", "uninstall", PLUGIN_ID, "--keep-files", "--force"]);
    if (r.code !== 0) print(`Note: \`openclaw plugins uninstall ${PLUGIN_ID}\` said: ${(r.stderr + r.stdout).trim().split("\n").slice(-2).join(" ")}`);
  } else if (record.linkedWith === "openclaw-cli") {
    print(`Note: OpenClaw's CLI was not found; run \`openclaw plugins uninstall ${PLUGIN_ID} --keep-files\` to drop its record of the plugin.`);
  }
  if (mode === "revert") fs.writeFileSync(path.join(files.dir, "openclaw.json.before-uninstall"), current!.bytes, { mode: 0o600 });
  writeFileAtomic(record.configPath, restored, record.configMode);

  // clawloop's own config: back to what it was, unless it was changed since install.
  const clawloopConfigFile = dataPaths(opts.dataDir).config;
  const nowClawloop = fs.existsSync(clawloopConfigFile) ? sha256(fs.readFileSync(clawloopConfigFile)) : null;
  if (nowClawloop === record.clawloopConfigSha256After) {
    if (record.clawloopConfigSha256Before) writeFileAtomic(clawloopConfigFile, fs.readFileSync(files.originalClawloopConfig), 0o644);
    else fs.rmSync(clawloopConfigFile, { force: true });
  } else {
    print(`Note: ${clawloopConfigFile} changed since install; left as it is.`);
  }

  fs.rmSync(files.record, { force: true });
  fs.rmSync(files.originalConfig, { force: true });
  fs.rmSync(files.originalClawloopConfig, { force: true });
  print(`Uninstalled. OpenClaw talks to ${record.upstream} directly again; restart the OpenClaw gateway if it is running.`);
  return { uninstalled: true, mode, configPath: record.configPath };
}

export interface OpenClawStatus {
  configPath: string;
  installed: boolean;
  record: InstallRecord | null;
  /** The config is byte-identical to what install wrote. */
  configUnchanged: boolean | null;
  sidecarUrl: string | null;
  sidecar: { reachable: boolean; detail: string } | null;
  /** Events the plugin has not delivered yet. */
  spooledEvents: number;
  spoolDir: string;
}

export async function openclawStatus(opts: { dataDir: string; env?: NodeJS.ProcessEnv }): Promise<OpenClawStatus> {
  const env = opts.env ?? process.env;
  const record = readInstallRecord(opts.dataDir);
  const { configPath, stateDir } = record ? { configPath: record.configPath, stateDir: record.stateDir } : openclawPaths(env);
  let configUnchanged: boolean | null = null;
  let sidecarUrl: string | null = null;
  let spoolDir = path.join(stateDir, "clawloop", "spool");
  try {
    const cfg = readConfigFile(configPath);
    if (record) configUnchanged = cfg.sha256 === record.installedSha256;
    const entryConfig = (cfg.config.plugins as { entries?: Record<string, { config?: Record<string, unknown> }> } | undefined)?.entries?.[PLUGIN_ID]
      ?.config;
    if (typeof entryConfig?.sidecarUrl === "string") sidecarUrl = entryConfig.sidecarUrl;
    if (typeof entryConfig?.workDir === "string") spoolDir = path.join(entryConfig.workDir, "spool");
  } catch {
    // no config: reported as not installed
  }
  let spooledEvents = 0;
  try {
    spooledEvents = fs.readdirSync(path.join(spoolDir, "pending")).filter((f) => f.endsWith(".json")).length;
  } catch {
    // no spool yet
  }
  let sidecar: OpenClawStatus["sidecar"] = null;
  if (sidecarUrl) {
    let token = "";
    try {
      token = fs.readFileSync(dataPaths(opts.dataDir).token, "utf8").trim();
    } catch {
      // no token yet
    }
    try {
      const res = await fetch(`${sidecarUrl}/clawloop/v1/status`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        signal: AbortSignal.timeout(3000),
      });
      sidecar = { reachable: res.ok, detail: res.ok ? "answering" : `HTTP ${res.status}` };
    } catch (err) {
      sidecar = { reachable: false, detail: (err as Error).message };
    }
  }
  return { configPath, installed: record !== null, record, configUnchanged, sidecarUrl, sidecar, spooledEvents, spoolDir };
}
