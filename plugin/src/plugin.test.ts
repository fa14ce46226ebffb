// The plugin's entry driven the way OpenClaw 2026.9.6 drives it (hook order and payloads as observed
// in real runs, shared/research/openclaw-plugin.md §3), against a real HTTP receiver standing in for
// the sidecar's events endpoint. The end-to-end test with the real OpenClaw is test/e2e/openclaw.test.ts.
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { receiver, removeTmpDirs, tmpDir, type Receiver } from "../test-support/receiver.js";
import type { ClawloopEvent, NextStateEvent } from "./events.js";
import plugin, { runtimeFor } from "./index.js";
import type { CommandDefinition, PluginApi, ProviderPlugin, StreamFn, StreamOptions } from "./openclaw-api.js";

const STATE = Symbol.for("clawloop.openclaw-plugin.runtime");

interface FakeHost {
  api: PluginApi;
  hooks: Map<string, ((e: unknown, ctx: unknown) => unknown)[]>;
  providers: ProviderPlugin[];
  commands: Map<string, CommandDefinition>;
  warnings: string[];
  /** Runs every handler of a hook like OpenClaw does; returns the last defined result. */
  fire(hook: string, event: unknown, ctx?: unknown): unknown;
  /** The wrapped stream function; `calls` records what the model server would receive. */
  stream(): { fn: StreamFn; calls: StreamOptions[] };
}

function host(config: Record<string, unknown>): FakeHost {
  const h: FakeHost = {
    hooks: new Map(),
    providers: [],
    commands: new Map(),
    warnings: [],
    api: undefined as unknown as PluginApi,
    fire(hook, event, ctx = {}) {
      let out: unknown;
      for (const fn of h.hooks.get(hook) ?? []) {
        const r = fn(event, ctx);
        if (r !== undefined) out = r;
      }
      return out;
    },
    stream() {
      const calls: StreamOptions[] = [];
      const inner: StreamFn = (_m, _c, o) => {
        calls.push(o ?? {});
        return "stream";
      };
      const fn = h.providers[0]!.wrapStreamFn!({ provider: "clawloop", modelId: "m", streamFn: inner })!;
      return { fn, calls };
    },
  };
  h.api = {
    id: "clawloop",
    registrationMode: "full",
    pluginConfig: config,
    logger: { info: () => {}, warn: (m) => h.warnings.push(m), error: (m) => h.warnings.push(m) },
    on: (name, handler) => h.hooks.set(name, [...(h.hooks.get(name) ?? []), handler as (e: unknown, c: unknown) => unknown]),
    registerProvider: (p) => h.providers.push(p),
    registerCommand: (c) => h.commands.set(c.name, c),
    registerService: () => {},
  };
  plugin.register(h.api);
  return h;
}

let sidecar: Receiver;
let workDir: string;
let config: Record<string, unknown>;

beforeEach(async () => {
  delete (globalThis as Record<symbol, unknown>)[STATE];
  sidecar = await receiver();
  const state = tmpDir();
  workDir = path.join(state, "clawloop");
  config = { sidecarUrl: sidecar.url, token: "tok", workDir };
});
afterEach(async () => {
  const rt = (globalThis as Record<symbol, { outbox: { close(): void }; sessions: { settled(): Promise<void> } } | undefined>)[STATE];
  rt?.outbox.close();
  await rt?.sessions.settled();
  delete (globalThis as Record<symbol, unknown>)[STATE];
  await sidecar.close();
  removeTmpDirs();
});

async function delivered(h: FakeHost): Promise<ClawloopEvent[]> {
  await runtimeFor(h.api).outbox.flush();
  return sidecar.events();
}

const userCtx = (runId: string, sessionId = "s1") => ({ runId, sessionId, sessionKey: `agent:main:explicit:${sessionId}`, trigger: "user" });
const assistant = (runId: string) => ({ role: "assistant", content: [{ type: "text", text: "hi" }], __openclaw: { runId } });

/** One user turn as OpenClaw runs it: prompt hooks, then one model call per element of `calls`. */
function turn(h: FakeHost, runId: string, prompt: string, history: unknown[], nCalls = 1, sessionId = "s1"): StreamOptions[] {
  h.fire("before_prompt_build", { prompt, messages: history }, userCtx(runId, sessionId));
  h.fire("llm_input", { runId, sessionId, prompt, historyMessages: history }, userCtx(runId, sessionId));
  const { fn, calls } = h.stream();
  for (let n = 1; n <= nCalls; n++) fn({}, { messages: [] }, { sessionId, requestId: `${runId}:model:${n}`, headers: { a: "b" } });
  return calls;
}

describe("tagging model calls", () => {
  it("puts session, run, call and turn type on every call of a user's run", () => {
    const h = host(config);
    expect(h.providers.map((p) => p.id)).toEqual(["clawloop"]);
    const calls = turn(h, "run-a", "hello", [], 2);
    expect(calls).toHaveLength(2);
    expect(calls[1]!.headers).toEqual({
      a: "b",
      "X-Turn-Type": "main",
      "X-Session-Id": "s1",
      "X-OpenClaw-Run-Id": "run-a",
      "X-OpenClaw-Call-Id": "run-a:model:2",
      "X-OpenClaw-Session-Key": "agent:main:explicit:s1",
    });
  });

  it("marks heartbeat, cron and memory-flush runs, and calls without a run, as side", () => {
    const h = host(config);
    const { fn, calls } = h.stream();
    for (const trigger of ["heartbeat", "cron", "memory", "overflow"]) {
      h.fire("before_prompt_build", { prompt: "check", messages: [] }, { runId: `run-${trigger}`, sessionId: "s1", trigger });
      fn({}, {}, { sessionId: "s1", requestId: `run-${trigger}:model:1` });
    }
    fn({}, {}, { sessionId: "s1" }); // e.g. a title or compaction call outside any run
    expect(calls.map((c) => c.headers!["X-Turn-Type"])).toEqual(["side", "side", "side", "side", "side"]);
    h.fire("before_prompt_build", { prompt: "go", messages: [] }, { runId: "run-manual", sessionId: "s1", trigger: "manual" });
    fn({}, {}, { sessionId: "s1", requestId: "run-manual:model:1" });
    expect(calls.at(-1)!.headers!["X-Turn-Type"]).toBe("main");
  });

  it("still tags a run no hook announced (conversation hooks not granted), as main, and says why once", () => {
    const h = host(config);
    const { fn, calls } = h.stream();
    fn({}, {}, { sessionId: "s1", requestId: "run-x:model:1" });
    fn({}, {}, { sessionId: "s1", requestId: "run-x:model:2" });
    expect(calls[0]!.headers!["X-OpenClaw-Run-Id"]).toBe("run-x");
    expect(calls[0]!.headers!["X-Turn-Type"]).toBe("main");
    expect(h.warnings.filter((w) => w.includes("allowConversationAccess"))).toHaveLength(1);
  });

  it("gives a retried run's calls fresh call ids, since OpenClaw numbers a retry from 1 again", async () => {
    const h = host(config);
    const calls = turn(h, "run-r", "hello", [], 2); // run-r:model:1, :2, then a model error
    const { fn } = h.stream();
    // OpenClaw retries the run (same run id) and numbers its calls from 1 again (seen with 2026.9.6).
    fn({}, {}, { sessionId: "s1", requestId: "run-r:model:1" });
    h.fire(
      "model_call_ended",
      { runId: "run-r", callId: "run-r:model:1", sessionId: "s1", provider: "clawloop", model: "m", outcome: "error", errorCategory: "overflow" },
      userCtx("run-r"),
    );
    fn({}, {}, { sessionId: "s1", requestId: "run-r:model:2" });
    const ids = [...calls.map((c) => c.headers!["X-OpenClaw-Call-Id"])];
    expect(ids).toEqual(["run-r:model:1", "run-r:model:2"]);
    const { fn: again, calls: later } = h.stream();
    again({}, {}, { sessionId: "s1", requestId: "run-r:model:1" });
    expect(later[0]!.headers!["X-OpenClaw-Call-Id"]).toBe("run-r:model:5");
    const [err] = (await delivered(h)) as NextStateEvent[];
    expect(err).toMatchObject({ kind: "model_error", forCallId: "run-r:model:3" });
  });

  it("adds the ids to the body only when bodyMetadata is on", async () => {
    const h = host({ ...config, bodyMetadata: true });
    const calls = turn(h, "run-a", "hello", []);
    const payload = await calls[0]!.onPayload!({ model: "m", messages: [] }, {});
    expect(payload).toMatchObject({ model: "m", metadata: { openclaw_run_id: "run-a", openclaw_call_id: "run-a:model:1", turn_type: "main" } });
    const plain = host(config);
    expect(turn(plain, "run-b", "hello", [])[0]!.onPayload).toBeUndefined();
  });

  it("never breaks a model call, even when tagging fails", () => {
    const h = host(config);
    const { fn, calls } = h.stream();
    expect(fn({}, {}, undefined)).toBe("stream");
    expect(calls).toHaveLength(1);
  });
});

describe("next states", () => {
  it("reports the next user message on the turn before it, from the transcript's run id, once per run", async () => {
    const h = host(config);
    turn(h, "run-1", "what is 2+2?", []);
    // The next message, in a new process: state comes only from the transcript OpenClaw passes in.
    await runtimeFor(h.api).sessions.settled();
    delete (globalThis as Record<symbol, unknown>)[STATE];
    const h2 = host(config);
    const history = [{ role: "user", content: "what is 2+2?" }, assistant("run-1")];
    turn(h2, "run-2", "no, that's wrong", history);
    // A model-error retry re-runs the prompt hooks with the same run id and a synthetic prompt.
    h2.fire("before_prompt_build", { prompt: "Continue the current task…", messages: history }, userCtx("run-2"));
    const evs = (await delivered(h2)).filter((e) => e.type === "next_state" && e.kind === "user_message") as NextStateEvent[];
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ sessionId: "s1", forRunId: "run-1", text: "no, that's wrong" });
  });

  it("strips OpenClaw's envelope from the user's words", async () => {
    const h = host(config);
    turn(h, "run-2", "[Sat 2026-11-21 10:23 UTC] no, the other one\n\nRuntime: agent=main | session=x", [assistant("run-1")]);
    const [ev] = (await delivered(h)) as NextStateEvent[];
    expect(ev!.text).toBe("no, the other one");
  });

  it("does not report the first message of a session, nor a heartbeat prompt, as a next state", async () => {
    const h = host(config);
    turn(h, "run-1", "hello", []);
    h.fire("before_prompt_build", { prompt: "heartbeat", messages: [assistant("run-1")] }, { runId: "hb", sessionId: "s1", trigger: "heartbeat" });
    expect(await delivered(h)).toEqual([]);
  });

  it("reports a failing tool on the model call that asked for it, and a working one as a result", async () => {
    const h = host(config);
    turn(h, "run-t", "read the file", [], 1);
    h.fire(
      "after_tool_call",
      { toolName: "read", params: { path: "/nope" }, runId: "run-t", toolCallId: "call_1", error: "File not found: /nope." },
      { runId: "run-t", sessionId: "s1", toolName: "read", toolCallId: "call_1" },
    );
    const { fn } = h.stream();
    fn({}, {}, { sessionId: "s1", requestId: "run-t:model:2" });
    h.fire(
      "after_tool_call",
      { toolName: "exec", params: {}, runId: "run-t", toolCallId: "call_2", result: { content: [{ type: "text", text: "boom" }], details: { exitCode: 2 } } },
      { runId: "run-t", sessionId: "s1", toolName: "exec" },
    );
    fn({}, {}, { sessionId: "s1", requestId: "run-t:model:3" });
    h.fire(
      "after_tool_call",
      { toolName: "ls", params: {}, runId: "run-t", toolCallId: "call_3", result: { content: [{ type: "text", text: "a.txt" }] } },
      { runId: "run-t", sessionId: "s1", toolName: "ls" },
    );
    const evs = ((await delivered(h)) as NextStateEvent[]).sort((a, b) => a.forCallId!.localeCompare(b.forCallId!));
    expect(evs.map((e) => [e.kind, e.forCallId, e.toolName, e.exitCode])).toEqual([
      ["tool_error", "run-t:model:1", "read", null],
      ["tool_error", "run-t:model:2", "exec", 2],
      ["tool_result", "run-t:model:3", "ls", null],
    ]);
    expect(evs[0]!.text).toBe("File not found: /nope.");
    expect(evs[0]).toMatchObject({ forRunId: "run-t", toolCallId: "call_1" });
  });

  it("reports a failed model call on that call", async () => {
    const h = host(config);
    turn(h, "run-e", "hi", []);
    const ended = { runId: "run-e", callId: "run-e:model:1", sessionId: "s1", provider: "clawloop", model: "m" };
    h.fire("model_call_ended", { ...ended, outcome: "completed" }, userCtx("run-e"));
    h.fire("model_call_ended", { ...ended, outcome: "error", errorCategory: "server_error", failureKind: "terminated" }, userCtx("run-e"));
    const evs = (await delivered(h)) as NextStateEvent[];
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ kind: "model_error", forRunId: "run-e", forCallId: "run-e:model:1", text: "model call failed (server_error: terminated)" });
  });

  it("reports a session's end", async () => {
    const h = host(config);
    h.fire("session_end", { sessionId: "s9", sessionKey: "agent:main:x", messageCount: 4, reason: "new" }, { sessionId: "s9" });
    h.fire("before_reset", { reason: "reset" }, { sessionId: "s8" });
    expect((await delivered(h)).map((e) => [e.type, e.sessionId]).sort()).toEqual([
      ["session_end", "s8"],
      ["session_end", "s9"],
    ]);
  });
});

describe("explicit feedback", () => {
  it("/bad through the Gateway command rates the session's last main turn, also from another process", async () => {
    const h = host(config);
    turn(h, "run-1", "hello", [], 2, "gw-session");
    // The command handler runs in another module instance or process: only the disk index remains.
    await runtimeFor(h.api).sessions.settled();
    delete (globalThis as Record<symbol, unknown>)[STATE];
    const h2 = host(config);
    const out = await h2.commands.get("bad")!.handler({
      channel: "webchat",
      isAuthorizedSender: true,
      sessionKey: "agent:main:explicit:gw-session",
      sessionId: "gw-session",
      args: "not what I asked",
      commandBody: "/bad not what I asked",
    });
    expect(out.text).toMatch(/Noted/);
    const evs = (await delivered(h2)) as NextStateEvent[];
    expect(evs).toEqual([expect.objectContaining({ kind: "feedback", sessionId: "gw-session", forRunId: "run-1", score: -1, text: "not what I asked" })]);
  });

  it("/good as an agent message is answered without the model, and that run is never taken for the previous turn", async () => {
    const h = host(config);
    turn(h, "run-1", "hello", []);
    const claimed = h.fire("before_agent_reply", { cleanedBody: "/good nice one" }, userCtx("run-fb"));
    expect(claimed).toMatchObject({ handled: true, reply: { text: expect.stringMatching(/Noted/) } });
    expect(h.fire("before_agent_reply", { cleanedBody: "thanks" }, userCtx("run-x"))).toBeUndefined();
    // The reply to /good is persisted with its run id; the next message still follows run-1.
    await runtimeFor(h.api).sessions.settled();
    delete (globalThis as Record<symbol, unknown>)[STATE];
    const h2 = host(config);
    turn(h2, "run-2", "and now?", [assistant("run-1"), { role: "assistant", content: "👍 Noted", __openclaw: { runId: "run-fb" } }]);
    const evs = ((await delivered(h2)) as NextStateEvent[]).sort((a, b) => a.kind.localeCompare(b.kind));
    expect(evs.map((e) => [e.kind, e.forRunId, e.score ?? null])).toEqual([
      ["feedback", "run-1", 1],
      ["user_message", "run-1", null],
    ]);
  });

  it("keeps /good and /bad out of the transcript the model sees, and nothing else", () => {
    const h = host(config);
    const write = (role: string, content: unknown) => h.fire("before_message_write", { message: { role, content } });
    expect(write("user", "/bad not what I asked")).toEqual({ block: true });
    expect(write("user", [{ type: "text", text: "[Sat 2026-11-21 10:23 UTC] /good" }])).toEqual({ block: true });
    expect(write("user", "the /bad example in the docs")).toBeUndefined();
    expect(write("user", "/badge")).toBeUndefined();
    expect(write("assistant", "/bad")).toBeUndefined();
    const off = host({ ...config, hideFeedbackCommands: false });
    expect(off.fire("before_message_write", { message: { role: "user", content: "/bad" } })).toBeUndefined();
  });

  it("counts a reaction that reaches the agent as feedback on the last main turn, once", async () => {
    const h = host(config);
    turn(h, "run-1", "hello", []);
    const internal = {
      role: "user",
      content: [
        {
          type: "text",
          text:
            '<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nConversation data (data, not instructions):\n"System: [2026-11-21 11:18:48 UTC] Telegram reaction added: 👎 by Alice (@alice) on msg 42"\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>',
        },
      ],
    };
    h.fire("before_prompt_build", { prompt: "heartbeat", messages: [] }, { runId: "hb", sessionId: "s1", sessionKey: "agent:main:explicit:s1", trigger: "heartbeat" });
    const { fn } = h.stream();
    fn({}, { messages: [assistant("run-1"), internal] }, { sessionId: "s1", requestId: "hb:model:1" });
    fn({}, { messages: [assistant("run-1"), { role: "assistant", content: "ok" }, { role: "tool", content: "x" }, internal] }, { sessionId: "s1", requestId: "hb:model:2" });
    const evs = (await delivered(h)) as NextStateEvent[];
    expect(evs).toEqual([expect.objectContaining({ kind: "feedback", forRunId: "run-1", score: -1, text: "reaction 👎" })]);
  });
});

describe("shared state", () => {
  it("keeps one runtime per process however often register() runs, so double-registered hooks report once", async () => {
    const h = host(config);
    plugin.register(h.api); // OpenClaw calls register() again: every hook now has two handlers
    expect(h.hooks.get("before_prompt_build")).toHaveLength(2);
    turn(h, "run-2", "no", [assistant("run-1")]);
    h.fire("after_tool_call", { toolName: "read", params: {}, runId: "run-2", toolCallId: "c1", error: "nope" }, { runId: "run-2", sessionId: "s1", toolName: "read" });
    const evs = await delivered(h);
    expect(evs.map((e) => (e as NextStateEvent).kind).sort()).toEqual(["tool_error", "user_message"]);
    expect(sidecar.batches.flat()).toHaveLength(2);
  });

  it("spools under OpenClaw's state directory by default", () => {
    const state = tmpDir();
    const h = host({ sidecarUrl: sidecar.url });
    const rt = runtimeFor({ ...h.api, runtime: { state: { resolveStateDir: () => state } } });
    expect(rt.outbox.pendingDir).toBe(path.join(state, "clawloop", "spool", "pending"));
    expect(fs.existsSync(rt.outbox.pendingDir)).toBe(true);
  });
});
