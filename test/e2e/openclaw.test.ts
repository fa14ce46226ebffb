// clawloop inside the real OpenClaw (2026.9.6), end to end: `clawloop openclaw install` into an
// isolated OpenClaw, the real sidecar process in front of a scripted model server, real agent turns
// (`openclaw agent --local`: a plain turn, a correction, a turn whose tool call fails), the Gateway
// (`/bad not what I asked` sent while the sidecar is down, a reaction), then the store checked and
// `clawloop openclaw uninstall` putting the config back byte for byte.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { Store, type NextState, type Turn } from "../../core/index.js";
import { startScriptedUpstream, type ScriptedReply, type ScriptedRequest, type ScriptedUpstream } from "../../fixtures/upstream/index.js";
import { freePort } from "../../plugin/test-support/receiver.js";
import { clawloopArgs, ensureOpenClaw, run, startService, Transcript, type OpenClawInstall, type Service } from "../support/openclaw.js";

const MODEL = "scripted-model";
const GW_TOKEN = "e2e-gateway-token";
const GW_SESSION_KEY = "agent:main:e2e-gw";
const LOCAL_SESSION = "e2e-local-1";

let oc: OpenClawInstall;
let upstream: ScriptedUpstream;
let root: string;
let stateDir: string;
let configPath: string;
let dataDir: string;
let sidecarPort: number;
let gatewayPort: number;
let env: NodeJS.ProcessEnv;
let originalConfig: Buffer;
let sidecar: Service | null = null;
let gateway: Service | null = null;
/** The Gateway session's id, as OpenClaw made it up. */
let gwSessionId = "";
const log = new Transcript();

/** Text of an OpenAI message's content. */
function text(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (p && typeof p === "object" ? String((p as { text?: unknown }).text ?? "") : "")).join("");
  return "";
}

/**
 * The model: a tool call when the user's message says CALLTOOL (until the tool answered), NO_REPLY
 * to heartbeats, an echo otherwise. OpenClaw appends a synthetic internal-context user message to
 * every request, so the user's words are in the last other user message.
 */
function reply(req: ScriptedRequest): ScriptedReply {
  const msgs = (req.body?.messages ?? []) as { role: string; content: unknown }[];
  let at = -1;
  for (let i = msgs.length - 1; i >= 0; i--) {
    if (msgs[i]!.role === "user" && !text(msgs[i]!.content).includes("OPENCLAW_INTERNAL_CONTEXT")) {
      at = i;
      break;
    }
  }
  const said = at >= 0 ? text(msgs[at]!.content) : "";
  const toolAnswered = msgs.slice(at + 1).some((m) => m.role === "tool");
  if (/heartbeat/i.test(said)) return { text: "NO_REPLY" };
  if (said.includes("CALLTOOL") && !toolAnswered) {
    return { toolCalls: [{ id: "call_e2e_read", name: "read", arguments: JSON.stringify({ path: "/nonexistent/clawloop-e2e/notes.txt" }) }] };
  }
  if (toolAnswered) return { text: "I could not read that file." };
  return { text: `echo: ${said.replace(/\s+/g, " ").slice(0, 120)}` };
}

const openclaw = (args: string[], timeoutMs = 180_000) => run(oc.openclawBin, args, { env, timeoutMs, log });
/**
 * A Gateway RPC through `openclaw gateway call` (research §5). Its own 10 s default timed out on a
 * machine kept busy (the call's CLI start-up counts against it); the tests' waits bound it instead.
 */
const gatewayCall = (method: string, params: unknown) =>
  openclaw(["gateway", "call", method, "--port", String(gatewayPort), "--token", GW_TOKEN, "--timeout", "60000", "--json", "--params", JSON.stringify(params)]);
const clawloop = (args: string[]) => {
  const [cmd, a] = clawloopArgs(args);
  return run(cmd, a, { env, timeoutMs: 180_000, log });
};

async function startSidecar(): Promise<Service> {
  const [cmd, args] = clawloopArgs(["sidecar", "--data", dataDir, "--log-level", "info"]);
  return startService(cmd, args, { env, ready: /"msg":"sidecar listening"/, name: "clawloop sidecar", log, timeoutMs: 60_000 });
}

function token(): string {
  return fs.readFileSync(path.join(dataDir, "token"), "utf8").trim();
}

async function api<T>(pathname: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${sidecarPort}${pathname}`, { headers: { authorization: `Bearer ${token()}` } });
  if (!res.ok) throw new Error(`GET ${pathname}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

type TurnWithStates = Turn & { nextStates: NextState[] };

async function sessionTurns(sessionId: string): Promise<TurnWithStates[]> {
  return (await api<{ turns: TurnWithStates[] }>(`/clawloop/v1/turns?session=${encodeURIComponent(sessionId)}`)).turns;
}

/** A session's next states, each with the run of the turn it was linked to (null: not linked to a turn). */
async function sessionStates(sessionId: string): Promise<(NextState & { turnRunId: string | null })[]> {
  const r = await api<{ turns: TurnWithStates[]; unlinked: NextState[] }>(`/clawloop/v1/turns?session=${encodeURIComponent(sessionId)}`);
  return [...r.turns.flatMap((t) => t.nextStates.map((s) => ({ ...s, turnRunId: t.runId }))), ...r.unlinked.map((s) => ({ ...s, turnRunId: null }))];
}

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function agentTurn(message: string): Promise<{ text: string }> {
  const r = await openclaw(["agent", "--local", "--session-id", LOCAL_SESSION, "-m", message, "--json"]);
  expect(r.code, `openclaw agent exited ${r.code}`).toBe(0);
  const out = JSON.parse(r.stdout) as { payloads?: { text?: string }[] };
  return { text: out.payloads?.map((p) => p.text ?? "").join("\n") ?? "" };
}

function spooled(): number {
  try {
    return fs.readdirSync(path.join(stateDir, "clawloop", "spool", "pending")).filter((f) => f.endsWith(".json")).length;
  } catch {
    return 0;
  }
}

/** The session's turns as the test last read them: printed when it times out waiting for more. */
let lastSeen: TurnWithStates[] | null = null;

function summarize(turns: TurnWithStates[] | null): string {
  if (!turns) return "-";
  return turns
    .map((t) => `  seq ${t.seq} run ${t.runId} call ${t.callId} ${t.turnType}/${t.placement} ${t.status}; next states: ${t.nextStates.map((s) => s.kind).join(", ") || "none"}`)
    .join("\n");
}

/** One line per model call the upstream saw: who tagged it, and the user words it ended with. */
function upstreamSeen(): string {
  return (upstream?.requests ?? [])
    .map((r) => {
      const h = (k: string) => String(r.headers[k] ?? "-");
      return `  ${r.method} ${r.path} session ${h("x-session-id")} call ${h("x-openclaw-call-id")}${r.aborted ? " (aborted)" : ""}: ${JSON.stringify(r.lastUserText?.slice(0, 60) ?? null)}`;
    })
    .join("\n");
}

function diagnose(): void {
  onTestFailed(() => {
    const openclawLog = path.join(stateDir, "openclaw.log");
    const tail = fs.existsSync(openclawLog) ? fs.readFileSync(openclawLog, "utf8").slice(-30_000) : "(no OpenClaw log)";
    process.stderr.write(
      `\n===== OpenClaw e2e diagnostics =====\n${log.tail()}\n\n── gateway (running)\n${gateway?.output().slice(-10_000) ?? "-"}\n` +
        `\n── sidecar (running)\n${sidecar?.output().slice(-10_000) ?? "-"}\n\n── ${openclawLog}\n${tail}\n` +
        `\n── upstream saw ${upstream?.requests.length ?? 0} requests\n${upstreamSeen()}\n── last seen in the store\n${summarize(lastSeen)}\n` +
        `── events waiting in the plugin's spool: ${spooled()}\n===== end =====\n`,
    );
  });
}

beforeAll(async () => {
  oc = await ensureOpenClaw();
  upstream = await startScriptedUpstream({ kind: "vllm", model: MODEL, reply, logLimit: 500 });
  root = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-openclaw-e2e-"));
  stateDir = path.join(root, "state");
  dataDir = path.join(root, "data");
  configPath = path.join(stateDir, "openclaw.json");
  for (const d of [stateDir, path.join(root, "home"), path.join(root, "workspace")]) fs.mkdirSync(d, { recursive: true });
  sidecarPort = await freePort();
  gatewayPort = await freePort();
  // The user's config, as they wrote it: JSON5 with comments, their vLLM as the agent's model.
  const config = `// My OpenClaw: the agent runs on my own vLLM.
{
  models: {
    mode: "merge",
    providers: {
      vllm: {
        baseUrl: "${upstream.url}/v1", // the GPU box
        apiKey: "sk-e2e-local",
        api: "openai-completions",
        models: [{ id: "${MODEL}", name: "Scripted model", contextWindow: 32000, maxTokens: 1024 }],
      },
    },
  },
  agents: { defaults: { model: { primary: "vllm/${MODEL}" }, workspace: "${path.join(root, "workspace")}" } },
  gateway: { mode: "local", port: ${gatewayPort}, bind: "loopback", auth: { mode: "token", token: "${GW_TOKEN}" } },
  logging: { file: "${path.join(stateDir, "openclaw.log")}" },
}
`;
  fs.writeFileSync(configPath, config, { mode: 0o600 });
  originalConfig = fs.readFileSync(configPath);
  env = oc.env({ home: path.join(root, "home"), stateDir, configPath, extra: { CLAWLOOP_SIDECAR_PORT: String(sidecarPort), CLAWLOOP_HOME: dataDir } });
}, 900_000);

afterAll(async () => {
  await gateway?.stop();
  await sidecar?.stop();
  await upstream?.close();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe("clawloop in the real OpenClaw", () => {
  it("install --dry-run prints the change and leaves the config alone", async () => {
    diagnose();
    const r = await clawloop(["openclaw", "install", "--dry-run", "--data", dataDir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`vllm/${MODEL} → clawloop/${MODEL}`);
    expect(r.stdout).toMatch(/^\+\s+"primary": "clawloop\/scripted-model"/m);
    expect(fs.readFileSync(configPath)).toEqual(originalConfig);
  });

  it("install routes the agent through the sidecar, links the plugin and validates", async () => {
    diagnose();
    const r = await clawloop(["openclaw", "install", "--data", dataDir]);
    expect(r.code, r.stderr).toBe(0);
    const cfg = JSON.parse(fs.readFileSync(configPath, "utf8"));
    expect(cfg.agents.defaults.model.primary).toBe(`clawloop/${MODEL}`);
    expect(cfg.models.providers.clawloop.baseUrl).toBe(`http://127.0.0.1:${sidecarPort}/v1`);
    expect(cfg.plugins.entries.clawloop).toMatchObject({ enabled: true, hooks: { allowConversationAccess: true } });
    // The original base URL became the sidecar's upstream.
    expect(JSON.parse(fs.readFileSync(path.join(dataDir, "config.json"), "utf8")).sidecar).toEqual({
      upstream: `${upstream.url}/v1`,
      upstreamKind: "vllm",
    });
    const inspect = await openclaw(["plugins", "inspect", "clawloop", "--runtime", "--json"]);
    const info = JSON.parse(inspect.stdout) as { plugin: { status: string; providerIds: string[]; commands: string[] } };
    expect(info.plugin.status).toBe("loaded");
    expect(info.plugin.providerIds).toEqual(["clawloop"]);
    expect(info.plugin.commands.sort()).toEqual(["bad", "good"]);
    sidecar = await startSidecar(); // upstream and port from clawloop's config, as written by install
  }, 300_000);

  it("records real agent turns, tagged, with each next state on the turn it follows", async () => {
    diagnose();
    const t1 = await agentTurn("What is the capital of France?");
    expect(t1.text).toContain("echo: ");
    await agentTurn("no, that's wrong, I asked about Germany");
    const t3 = await agentTurn("please CALLTOOL read my notes file");
    expect(t3.text).toContain("I could not read that file.");

    // --local processes exit right after their turn; what they could not send waits in the spool
    // and goes with the next OpenClaw process. Here every event was sent while the turns ran.
    const turns = await until("the three turns and their next states", async () => {
      const ts = await sessionTurns(LOCAL_SESSION);
      lastSeen = ts;
      const states = ts.flatMap((t) => t.nextStates);
      return ts.length === 4 && states.length >= 3 ? ts : null;
    });
    const runs = [...new Set(turns.map((t) => t.runId))];
    expect(runs).toHaveLength(3);
    for (const t of turns) {
      expect(t).toMatchObject({ sessionId: LOCAL_SESSION, turnType: "main", placement: "tagged", status: "ok" });
      expect(t.runId).toBeTruthy();
      expect(t.callId).toMatch(new RegExp(`^${t.runId}:model:\\d+$`));
    }
    const [first, second, toolCall, afterTool] = turns;
    expect(first!.request.messages!.map((m) => m.role)).toContain("user");
    expect(toolCall!.runId).toBe(afterTool!.runId);
    expect(toolCall!.response!.toolCalls.map((c) => c.function.name)).toEqual(["read"]);

    const correction = first!.nextStates.filter((s) => s.kind === "user_message");
    expect(correction).toHaveLength(1);
    expect(correction[0]!.text).toBe("no, that's wrong, I asked about Germany");
    expect(second!.nextStates.filter((s) => s.kind === "user_message").map((s) => s.text)).toEqual(["please CALLTOOL read my notes file"]);
    const toolErrors = toolCall!.nextStates.filter((s) => s.kind === "tool_error");
    expect(toolErrors).toHaveLength(1);
    expect(toolErrors[0]).toMatchObject({ toolName: "read", forCallId: toolCall!.callId });
    expect(toolErrors[0]!.text).toMatch(/not found/i);
    expect(afterTool!.nextStates).toEqual([]);
  }, 300_000);

  it("takes /bad from the Gateway while the sidecar is down, and delivers it once the sidecar is back", async () => {
    diagnose();
    gateway = await startService(oc.openclawBin, ["gateway", "run", "--port", String(gatewayPort)], {
      env,
      ready: /starting channels/,
      name: "openclaw gateway",
      log,
      timeoutMs: 120_000,
    });
    const send = (message: string, idempotencyKey: string) => gatewayCall("chat.send", { sessionKey: GW_SESSION_KEY, message, idempotencyKey });
    const sent = await send("hello through the gateway", "e2e-gw-run-1");
    expect(sent.code, sent.stderr).toBe(0);
    // The run's reply must be in the transcript before the feedback that rates it.
    await until(
      "the gateway turn's reply",
      async () => {
        const h = await gatewayCall("chat.history", { sessionKey: GW_SESSION_KEY });
        const messages = (JSON.parse(h.stdout) as { messages: { role: string; __openclaw?: { runId?: string } }[] }).messages;
        return messages.some((m) => m.role === "assistant" && m.__openclaw?.runId === "e2e-gw-run-1");
      },
      120_000,
    );
    const gwTurn = await until("the gateway turn in the store", async () => {
      const { turns } = await api<{ turns: { runId: string | null; sessionId: string }[] }>("/clawloop/v1/turns?limit=100");
      return turns.find((t) => t.runId === "e2e-gw-run-1");
    });
    gwSessionId = gwTurn.sessionId;

    await sidecar!.stop();
    sidecar = null;
    const bad = await send("/bad not what I asked", "e2e-gw-bad");
    expect(bad.code, bad.stderr).toBe(0);
    await until("the feedback waiting in the plugin's spool", async () => spooled() > 0, 30_000);

    sidecar = await startSidecar();
    const feedback = await until(
      "the feedback delivered after the restart",
      async () => (await sessionStates(gwSessionId)).find((s) => s.kind === "feedback" && s.score === -1),
      90_000,
    );
    expect(feedback).toMatchObject({ text: "not what I asked", turnRunId: "e2e-gw-run-1" });
    await until("an empty spool", async () => spooled() === 0, 30_000);

    // The command never reached the model: no model call after the gateway turn mentions it.
    expect(upstream.requests.some((r) => JSON.stringify(r.body ?? {}).includes("not what I asked"))).toBe(false);

    // A reaction, as channels deliver it (a system event); OpenClaw answers it in a heartbeat run.
    const reacted = await openclaw([
      "system",
      "event",
      "--text",
      "Telegram reaction added: 👍 by Ada (@ada) on msg 7",
      "--session-key",
      GW_SESSION_KEY,
      "--mode",
      "now",
      "--port",
      String(gatewayPort),
      "--token",
      GW_TOKEN,
      "--json",
    ]);
    expect(reacted.code, reacted.stderr).toBe(0);
    const reaction = await until(
      "the reaction as feedback",
      async () => (await sessionStates(gwSessionId)).find((s) => s.kind === "feedback" && s.score === 1),
      90_000,
    );
    expect(reaction).toMatchObject({ text: "reaction 👍", turnRunId: "e2e-gw-run-1" });

    // Resetting the conversation ends the session.
    const reset = await gatewayCall("sessions.reset", { key: GW_SESSION_KEY });
    expect(reset.code, reset.stderr).toBe(0);
    await until("the session end", async () => (await sessionStates(gwSessionId)).find((s) => s.kind === "session_end"), 60_000);
    await gateway.stop();
    gateway = null;
  }, 600_000);

  it("leaves every call in the store once, as a tagged turn, and nothing duplicated", async () => {
    diagnose();
    await sidecar!.stop(); // flushes the store
    sidecar = null;
    const store = await Store.open({ dataDir });
    try {
      const turns = await store.list("turns");
      const states = await store.list("next_states");
      // Every model call OpenClaw made reached the sidecar and became exactly one turn.
      const chatCalls = upstream.requests.filter((r) => r.endpoint === "chat");
      expect(turns).toHaveLength(chatCalls.length);
      expect(new Set(turns.map((t) => t.id)).size).toBe(turns.length);
      const main = turns.filter((t) => t.turnType === "main");
      const side = turns.filter((t) => t.turnType === "side");
      // 3 local runs (4 calls) + 1 gateway run; the heartbeat that carried the reaction is side.
      expect(main).toHaveLength(5);
      expect(side.length).toBeGreaterThanOrEqual(1);
      for (const t of [...main, ...side]) {
        expect(t.placement).toBe("tagged");
        expect(t.sessionId && t.runId && t.callId).toBeTruthy();
      }
      for (const t of side) expect(main.some((m) => m.runId === t.runId)).toBe(false);

      const byKind = (k: string) => states.filter((s) => s.kind === k);
      expect(byKind("user_message")).toHaveLength(2);
      expect(byKind("tool_error")).toHaveLength(1);
      expect(byKind("feedback").map((s) => s.score).sort()).toEqual([-1, 1]);
      expect(byKind("session_end").map((s) => s.sessionId)).toEqual([gwSessionId]);
      expect(new Set(states.map((s) => s.id)).size).toBe(states.length);
      for (const s of states.filter((x) => x.kind !== "session_end")) expect(s.turnId, `${s.kind} ${s.id} linked`).toBeTruthy();
      expect(spooled()).toBe(0);
    } finally {
      await store.close();
    }
  }, 120_000);

  it("uninstall puts OpenClaw's config back byte for byte", async () => {
    diagnose();
    const r = await clawloop(["openclaw", "uninstall", "--data", dataDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/byte for byte/);
    expect(fs.readFileSync(configPath)).toEqual(originalConfig);
    expect((await openclaw(["config", "validate"])).code).toBe(0);
  }, 180_000);
});
