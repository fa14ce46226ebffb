// Realistic rows for tests of any loop.
import type { Judgment, Store, Turn } from "../../core/index.js";

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


/** makeTurn(i) with token ids of its own, so that a stand-in engine's update depends on which turns a step saw. */
export function makeTrainableTurn(i: number): Turn {
  return makeTurn(i, { promptTokenIds: [1, 2, 100 + i], completionTokenIds: [200 + i, 300 + i] });
}

/** The judgment of makeTurn(i)'s call: by rules, +1 for an odd `i` and −1 for an even one unless `over` says. */
export function makeJudgment(i: number, over: Partial<Judgment> = {}): Judgment {
  return {
    id: `call-${i}`, turnId: `call-${i}`, sessionId: "s1", score: i % 2 ? 1 : -1, method: "rules", votes: [], raw: [], hint: null,
    nextStateIds: [], judgeModel: null, costTokens: 0, costMs: 0, createdAt: new Date().toISOString(),
    ...over,
  };
}

/** Judged trainable turns `from`..`to` through `writer` (a writer of turns and judgments), flushed. */
export async function putJudgedTurns(writer: Pick<Store, "put" | "flush">, from: number, to: number, judgment: (i: number) => Partial<Judgment> = () => ({})): Promise<void> {
  for (let i = from; i <= to; i++) {
    writer.put("turns", makeTrainableTurn(i));
    writer.put("judgments", makeJudgment(i, judgment(i)));
  }
  await writer.flush();
}
