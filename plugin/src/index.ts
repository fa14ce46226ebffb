// clawloop's OpenClaw plugin: tags every model call the agent makes through the `clawloop` provider
// (the one `clawloop openclaw install` points at the sidecar) and reports what happened next —
// the user's reply, tool results and errors, model errors, `/good` and `/bad`, reactions, session
// ends — to the sidecar's events API. It imports nothing of clawloop's: it talks to the sidecar
// over HTTP only.
//
// OpenClaw calls register() several times per process and the Gateway imports this module twice
// (agent-run hooks and the provider wrapper land in one instance, commands and services in the
// other), so the runtime lives on globalThis under a registered symbol, and what must outlive the
// process (undelivered events, each session's last turn) lives on disk.
import type {
  AfterToolCallEvent,
  AgentContext,
  BeforeAgentReplyEvent,
  BeforeMessageWriteEvent,
  BeforePromptBuildEvent,
  LlmInputEvent,
  ModelCallEndedEvent,
  PluginApi,
  PluginLogger,
  SessionEndEvent,
  ToolContext,
} from "./openclaw-api.js";
import { ClawloopRuntime } from "./runtime.js";
import { openclawStateDir, resolveSettings } from "./settings.js";
import { wrapStream } from "./tagging.js";

export const PLUGIN_ID = "clawloop";
/** The provider id the installer routes the agent through; listed in the manifest's `providers`. */
export const PROVIDER_ID = "clawloop";

const STATE = Symbol.for("clawloop.openclaw-plugin.runtime");
type Global = typeof globalThis & { [STATE]?: ClawloopRuntime };

const stderrLogger: PluginLogger = {
  info: () => {},
  warn: (m) => process.stderr.write(`${m}\n`),
  error: (m) => process.stderr.write(`${m}\n`),
};

/** The process-wide runtime, created by the first register() and updated by later ones. */
export function runtimeFor(api: PluginApi): ClawloopRuntime {
  const g = globalThis as Global;
  const stateDir = api.runtime?.state?.resolveStateDir?.(process.env) ?? openclawStateDir();
  const settings = resolveSettings(api.pluginConfig, stateDir);
  const logger = api.logger ?? stderrLogger;
  const existing = g[STATE];
  if (existing && existing.settings.workDir === settings.workDir) {
    existing.settings = settings;
    return existing;
  }
  existing?.outbox.close();
  const rt = new ClawloopRuntime(settings, logger);
  g[STATE] = rt;
  // Deliver what earlier processes left in the spool.
  void rt.outbox.flush();
  return rt;
}

function register(api: PluginApi): void {
  const rt = runtimeFor(api);
  const on = <E, C>(hook: string, handler: (event: E, ctx: C) => unknown, priority?: number) =>
    api.on(hook, handler as (event: never, ctx: never) => unknown, priority === undefined ? undefined : { priority });

  api.registerProvider({
    id: PROVIDER_ID,
    label: "clawloop sidecar",
    auth: [],
    wrapStreamFn: (ctx) => (ctx.streamFn ? wrapStream(ctx.streamFn, (o, c) => rt.describeCall(o, c), rt.settings.bodyMetadata) : undefined),
  });

  on<BeforePromptBuildEvent, AgentContext>("before_prompt_build", (e, ctx) => {
    rt.onPrompt(e, ctx);
    return undefined;
  });
  // A second chance to learn the run's trigger should before_prompt_build not run for some path.
  on<LlmInputEvent, AgentContext>("llm_input", (e, ctx) => {
    rt.onPrompt({ prompt: e.prompt, messages: e.historyMessages }, { ...ctx, runId: ctx.runId ?? e.runId, sessionId: ctx.sessionId ?? e.sessionId });
  });
  // Runs first so a feedback command never reaches the model.
  on<BeforeAgentReplyEvent, AgentContext>(
    "before_agent_reply",
    (e, ctx) => rt.onBeforeAgentReply(e.cleanedBody, ctx),
    100,
  );
  on<AfterToolCallEvent, ToolContext>("after_tool_call", (e, ctx) =>
    rt.onAfterToolCall(e, ctx),
  );
  on<ModelCallEndedEvent, AgentContext>("model_call_ended", (e, ctx) =>
    rt.onModelCallEnded(e, ctx),
  );
  on<BeforeMessageWriteEvent, unknown>("before_message_write", (e) => rt.onBeforeMessageWrite(e));
  on<unknown, unknown>("agent_end", () => {
    void rt.outbox.flush(); // not awaited: the agent never waits for clawloop
  });
  on<SessionEndEvent, unknown>("session_end", (e) => rt.onSessionEnd(e.sessionId));
  on<unknown, AgentContext>("before_reset", (_e, ctx) => rt.onSessionEnd(ctx?.sessionId));

  for (const [name, score] of [
    ["good", 1],
    ["bad", -1],
  ] as const) {
    api.registerCommand({
      name,
      description: score > 0 ? "Tell clawloop the last reply was good (optional note)" : "Tell clawloop the last reply was bad (optional note: what you wanted)",
      acceptsArgs: true,
      handler: (ctx) => {
        const text = ctx.args?.trim() || null;
        const key = `command:${ctx.sessionKey ?? ctx.sessionId}:${name}:${text ?? ""}:${Date.now()}`;
        const out = rt.recordFeedback({ score, text }, { sessionKey: ctx.sessionKey ?? null, sessionId: ctx.sessionId ?? null }, key);
        return { text: out.message };
      },
    });
  }

  api.registerService({
    id: "clawloop-events",
    start: () => {
      void rt.outbox.flush();
    },
    // At Gateway shutdown, give delivery two seconds; whatever is left stays spooled.
    stop: async () => {
      await Promise.race([rt.sessions.settled(), new Promise((r) => setTimeout(r, 500).unref())]);
      await rt.outbox.drainFor(2000);
    },
  });
}

export default {
  id: PLUGIN_ID,
  name: "clawloop",
  description: "Records every model call and what happened next, so clawloop can train your self-hosted model.",
  register,
};
