// An answered call as the proxy hands it to the store host (sidecar/turns.ts TurnJob), for tests of
// the record store, its host and the turn numbering.
import type { TurnJob } from "../../sidecar/turns.js";

/** Call `i` of session "s" (turn `t<i>`, seq `i`), a plain chat answer; `over` changes any field. */
export function makeTurnJob(i: number, over: Partial<TurnJob> = {}): TurnJob {
  return {
    turnId: `t${i}`,
    sessionId: "s",
    runId: "r",
    callId: `r:model:${i}`,
    turnType: "main",
    seq: i,
    placement: "tagged",
    parentTurnId: null,
    endpoint: "chat",
    model: "m",
    adapter: null,
    rawRequest: Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content: `q${i}` }] })),
    requestError: null,
    startedAt: new Date().toISOString(),
    ttfbMs: 1,
    totalMs: 2,
    upstreamStatus: 200,
    status: "ok",
    error: null,
    assembled: null,
    traceparent: null,
    ...over,
  };
}
