// Realistic rows for tests of any loop.
import type { Turn } from "../../core/index.js";

/** A complete, valid turn (one model call) with index `i`. */
export function makeTurn(i: number, over: Partial<Turn> = {}): Turn {
  return {
    id: `call-${i}`,
    sessionId: "s1",
    runId: "run-1",
    callId: `run-1:model:${i}`,
    turnType: "main",
    seq: i,
    endpoint: "chat",
    model: "m",
    adapter: null,
    request: { messages: [{ role: "user", content: `hello ${i}` }], params: { temperature: 1 } },
    response: { id: "chatcmpl-1", content: `answer ${i}`, reasoning: null, toolCalls: [], finishReason: "stop" },
    promptTokenIds: [1, 2, 3],
    completionTokenIds: [4, 5],
    completionLogprobs: [-0.5, -1.25],
    usage: { promptTokens: 3, completionTokens: 2, totalTokens: 5 },
    startedAt: new Date(1_700_000_000_000 + i).toISOString(),
    ttfbMs: 1.5,
    totalMs: 3,
    upstreamStatus: 200,
    status: "ok",
    error: null,
    traceparent: null,
    placement: "tagged",
    parentTurnId: null,
    ...over,
  };
}

