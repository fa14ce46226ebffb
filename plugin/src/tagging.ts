// Turn tagging (DESIGN.md "Turn tagging"): every model call carries the session, run and call ids
// and whether it is a main-line turn (trained on) or side traffic (never trained on).
import type { StreamFn, StreamOptions } from "./openclaw-api.js";

export type TurnType = "main" | "side";

/**
 * Runs a user started. OpenClaw's `EmbeddedRunTrigger` also has cron, heartbeat, memory (the
 * pre-compaction memory flush) and overflow (compaction continuation): housekeeping, so side.
 */
const USER_TRIGGERS = new Set(["user", "manual"]);

export interface RunInfo {
  runId: string;
  sessionId: string | null;
  sessionKey: string | null;
  /** Null when no hook told us (then the call counts as main: an ordinary agent turn). */
  trigger: string | null;
  /** The latest model call of this run that has started; tool results follow it. */
  lastCallId: string | null;
}

export function turnTypeOf(runId: string | null, run: RunInfo | undefined): TurnType {
  if (!runId) return "side";
  if (!run || run.trigger === null) return "main";
  return USER_TRIGGERS.has(run.trigger) ? "main" : "side";
}

/** `<runId>:model:<n>` → `<runId>`. */
export function runIdOfCall(callId: string | undefined | null): string | null {
  if (!callId) return null;
  const at = callId.lastIndexOf(":model:");
  return at > 0 ? callId.slice(0, at) : null;
}

export interface CallTags {
  sessionId: string | null;
  sessionKey: string | null;
  runId: string | null;
  callId: string | null;
  turnType: TurnType;
}

export function tagHeaders(tags: CallTags): Record<string, string> {
  const h: Record<string, string> = { "X-Turn-Type": tags.turnType };
  if (tags.sessionId) h["X-Session-Id"] = tags.sessionId;
  if (tags.runId) h["X-OpenClaw-Run-Id"] = tags.runId;
  if (tags.callId) h["X-OpenClaw-Call-Id"] = tags.callId;
  if (tags.sessionKey) h["X-OpenClaw-Session-Key"] = tags.sessionKey;
  return h;
}

/**
 * Wraps OpenClaw's stream function so each model request carries the tags. `describe` turns the
 * stream options (and the request's context: system prompt, messages, tools) into tags and records
 * the call; it runs before the request is sent.
 */
export function wrapStream(
  inner: StreamFn,
  describe: (options: StreamOptions, context: unknown) => CallTags,
  bodyMetadata: boolean,
): StreamFn {
  return (model, context, options) => {
    const opts = options ?? {};
    let tags: CallTags | null = null;
    try {
      tags = describe(opts, context);
    } catch {
      // Tagging must never break a model call: an untagged call is recorded as side traffic.
    }
    if (!tags) return inner(model, context, options);
    const next: StreamOptions = { ...opts, headers: { ...opts.headers, ...tagHeaders(tags) } };
    if (bodyMetadata) {
      const upstream = opts.onPayload;
      const t = tags;
      next.onPayload = async (payload, m) => {
        const base = ((await upstream?.(payload, m)) ?? payload) as Record<string, unknown>;
        return {
          ...base,
          metadata: { openclaw_session_id: t.sessionId, openclaw_run_id: t.runId, openclaw_call_id: t.callId, turn_type: t.turnType },
        };
      };
    }
    return inner(model, context, next);
  };
}
