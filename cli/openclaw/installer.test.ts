// The installer editing the config file itself (no OpenClaw CLI on the PATH). The same flows with
// OpenClaw's real CLI (plugins install --link, config validate) run in test/e2e/openclaw*.test.ts.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import JSON5 from "json5";
import { afterEach, describe, expect, it } from "vitest";
import { InstallRefusal, installOpenClaw, openclawStatus, readInstallRecord, uninstallOpenClaw } from "./index.js";

const ORIGINAL = `// My OpenClaw config, written by hand.
{
  models: {
    providers: {
      vllm: { baseUrl: "http://127.0.0.1:8000/v1", apiKey: "sk-local", api: "openai-completions",
              models: [{ id: "qwen", name: "Qwen" }] }, // the GPU box
    },
  },
  agents: { defaults: { model: { primary: "vllm/qwen" } } },
}
`;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function setup(config = ORIGINAL) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-ocinst-"));
  dirs.push(root);
  const stateDir = path.join(root, "state");
  fs.mkdirSync(stateDir);
  const configPath = path.join(stateDir, "openclaw.json");
  fs.writeFileSync(configPath, config, { mode: 0o600 });
  const pluginDir = path.join(root, "plugin");
  fs.mkdirSync(pluginDir);
  fs.writeFileSync(path.join(pluginDir, "openclaw.plugin.json"), "{}");
  const dataDir = path.join(root, "data");
  const env = { OPENCLAW_STATE_DIR: stateDir, PATH: "" };
  const lines: string[] = [];
  const base = { dataDir, sidecarUrl: "http://127.0.0.1:11435", pluginDir, cli: null, env, print: (l: string) => lines.push(l) };
  return { root, stateDir, configPath, pluginDir, dataDir, env, lines, base };
}

describe("clawloop openclaw install / uninstall (config file only)", () => {
  it("routes the agent through clawloop, records the upstream, and uninstall restores the file byte for byte", async () => {
    const s = setup();
    const res = await installOpenClaw(s.base);
    expect(res.installed).toBe(true);
    const cfg = JSON.parse(fs.readFileSync(s.configPath, "utf8"));
    expect(cfg.agents.defaults.model.primary).toBe("clawloop/qwen");
    expect(cfg.models.providers.clawloop).toMatchObject({ baseUrl: "http://127.0.0.1:11435/v1", apiKey: "sk-local" });
    expect(cfg.models.providers.vllm.baseUrl).toBe("http://127.0.0.1:8000/v1");
    expect(cfg.plugins).toEqual({
      entries: { clawloop: { enabled: true, hooks: { allowConversationAccess: true }, config: { sidecarUrl: "http://127.0.0.1:11435", dataDir: s.dataDir } } },
      load: { paths: [s.pluginDir] },
    });
    expect(fs.statSync(s.configPath).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(path.join(s.dataDir, "config.json"), "utf8"))).toEqual({
      sidecar: { upstream: "http://127.0.0.1:8000/v1", upstreamKind: "vllm" },
    });
    expect(s.lines.join("\n")).toMatch(/vllm\/qwen → clawloop\/qwen/);

    const st = await openclawStatus({ dataDir: s.dataDir, env: s.env });
    expect(st).toMatchObject({ installed: true, configUnchanged: true, sidecarUrl: "http://127.0.0.1:11435", spooledEvents: 0 });

    const un = await uninstallOpenClaw(s.base);
    expect(un).toMatchObject({ uninstalled: true, mode: "exact" });
    expect(fs.readFileSync(s.configPath, "utf8")).toBe(ORIGINAL);
    expect(fs.existsSync(path.join(s.dataDir, "config.json"))).toBe(false); // there was none before
    expect(readInstallRecord(s.dataDir)).toBeNull();
  });

  it("keeps clawloop's own config as it was before install", async () => {
    const s = setup();
    fs.mkdirSync(s.dataDir, { recursive: true });
    const mine = '{\n  "judge": { "votes": 5 }\n}\n';
    fs.writeFileSync(path.join(s.dataDir, "config.json"), mine);
    await installOpenClaw(s.base);
    expect(JSON.parse(fs.readFileSync(path.join(s.dataDir, "config.json"), "utf8"))).toMatchObject({ judge: { votes: 5 }, sidecar: { upstreamKind: "vllm" } });
    await uninstallOpenClaw(s.base);
    expect(fs.readFileSync(path.join(s.dataDir, "config.json"), "utf8")).toBe(mine);
  });

  it("--dry-run prints the change and writes nothing", async () => {
    const s = setup();
    const res = await installOpenClaw({ ...s.base, dryRun: true });
    expect(res.installed).toBe(false);
    expect(res.diff).toMatch(/^\+\s+"primary": "clawloop\/qwen"/m);
    expect(res.diff).toMatch(/^-\s+"primary": "vllm\/qwen"/m);
    expect(s.lines.join("\n")).toMatch(/dry run: nothing written/);
    expect(fs.readFileSync(s.configPath, "utf8")).toBe(ORIGINAL);
    expect(fs.existsSync(s.dataDir)).toBe(false);
  });

  it("is idempotent, and refuses to install over a config changed since install", async () => {
    const s = setup();
    await installOpenClaw(s.base);
    const before = fs.readFileSync(s.configPath);
    expect((await installOpenClaw(s.base)).alreadyInstalled).toBe(true);
    expect(fs.readFileSync(s.configPath)).toEqual(before);
    fs.appendFileSync(s.configPath, "\n");
    await expect(installOpenClaw(s.base)).rejects.toThrow(/run `clawloop openclaw uninstall` first/);
  });

  it("uninstall after the user changed the config removes only what install added", async () => {
    const s = setup();
    await installOpenClaw(s.base);
    const cfg = JSON.parse(fs.readFileSync(s.configPath, "utf8"));
    cfg.agents.defaults.thinkingDefault = "low";
    fs.writeFileSync(s.configPath, JSON.stringify(cfg, null, 2));
    const changed = fs.readFileSync(s.configPath);

    const dry = await uninstallOpenClaw({ ...s.base, dryRun: true });
    expect(dry).toMatchObject({ uninstalled: false, mode: "revert" });
    expect(fs.readFileSync(s.configPath)).toEqual(changed);

    const un = await uninstallOpenClaw(s.base);
    expect(un.mode).toBe("revert");
    const after = JSON.parse(fs.readFileSync(s.configPath, "utf8"));
    expect(after).toEqual({ ...JSON5.parse(ORIGINAL), agents: { defaults: { model: { primary: "vllm/qwen" }, thinkingDefault: "low" } } });
    expect(fs.readFileSync(path.join(s.dataDir, "openclaw", "openclaw.json.before-uninstall"))).toEqual(changed);
  });

  it("refuses without touching anything when it cannot route the agent's provider", async () => {
    const config = `{ agents: { defaults: { model: "openai/gpt-5.4" } } }\n`;
    const s = setup(config);
    await expect(installOpenClaw(s.base)).rejects.toThrow(InstallRefusal);
    await expect(installOpenClaw(s.base)).rejects.toThrow(/openclaw config set models\.providers/);
    expect(fs.readFileSync(s.configPath, "utf8")).toBe(config);
    expect(fs.existsSync(s.dataDir)).toBe(false);
  });

  it("refuses a read-only or $include config, a missing config, and an uninstall with nothing installed", async () => {
    const s = setup();
    await expect(installOpenClaw({ ...s.base, env: { ...s.env, OPENCLAW_CONFIG_READONLY: "1" } })).rejects.toThrow(/managed externally/);
    fs.writeFileSync(s.configPath, `{ $include: "./models.json5", agents: { defaults: { model: "vllm/q" } } }`);
    await expect(installOpenClaw(s.base)).rejects.toThrow(/\$include/);
    fs.rmSync(s.configPath);
    await expect(installOpenClaw(s.base)).rejects.toThrow(/no OpenClaw config at/);
    await expect(uninstallOpenClaw(s.base)).rejects.toThrow(/not installed/);
  });

  it("refuses a config that is not valid JSON5, saying where", async () => {
    const s = setup("{ agents: ");
    await expect(installOpenClaw(s.base)).rejects.toThrow(/is not valid JSON5/);
    expect(fs.readFileSync(s.configPath, "utf8")).toBe("{ agents: ");
  });
});
