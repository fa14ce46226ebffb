// The installer against the real OpenClaw CLI when something goes wrong: OpenClaw refuses the link
// (its config is invalid), and the installer must leave everything exactly as it was.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { clawloopArgs, ensureOpenClaw, run, Transcript, type OpenClawInstall } from "../support/openclaw.js";

let oc: OpenClawInstall;
let root: string;
const log = new Transcript();

beforeAll(async () => {
  oc = await ensureOpenClaw();
  root = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-openclaw-installer-"));
}, 900_000);

afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

function isolated(name: string, config: string) {
  const dir = path.join(root, name);
  const stateDir = path.join(dir, "state");
  fs.mkdirSync(path.join(dir, "home"), { recursive: true });
  fs.mkdirSync(stateDir, { recursive: true });
  const configPath = path.join(stateDir, "openclaw.json");
  fs.writeFileSync(configPath, config, { mode: 0o600 });
  const dataDir = path.join(dir, "data");
  const env = oc.env({ home: path.join(dir, "home"), stateDir, configPath });
  const clawloop = (args: string[]) => {
    const [cmd, a] = clawloopArgs(args);
    return run(cmd, a, { env, log });
  };
  return { configPath, dataDir, env, clawloop };
}

describe("clawloop openclaw install with the real OpenClaw CLI", () => {
  it("changes nothing when OpenClaw refuses the change, and says why", async () => {
    onTestFailed(() => {
      process.stderr.write(`\n${log.tail()}\n`);
    });
    // A key OpenClaw's schema does not know: `openclaw plugins install` refuses to write this config.
    const config = `// broken on purpose
{
  models: { providers: { vllm: { baseUrl: "http://127.0.0.1:9/v1", apiKey: "k", api: "openai-completions", models: [{ id: "m", name: "m" }] } } },
  agents: { defaults: { model: { primary: "vllm/m" } } },
  notAnOpenClawSetting: true,
}
`;
    const s = isolated("invalid", config);
    const r = await s.clawloop(["openclaw", "install", "--data", s.dataDir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failed \(openclaw /);
    expect(r.stderr).toMatch(/Nothing was changed/);
    expect(fs.readFileSync(s.configPath, "utf8")).toBe(config);
    expect(fs.existsSync(path.join(s.dataDir, "openclaw", "install.json"))).toBe(false);
    expect(fs.existsSync(path.join(s.dataDir, "config.json"))).toBe(false);
  }, 300_000);
});
