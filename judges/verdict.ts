// What every judge returns, and how it becomes a stored Judgment.
import type { Judgment, JudgeMethod, Reward, Turn } from "../core/index.js";
import type { JudgeInput } from "./input.js";

export interface Verdict {
  score: Reward;
  method: JudgeMethod;
  /** Model votes (null: an invalid answer); empty for rules and feedback. */
  votes: (Reward | null)[];
  /** Raw model answers, one per vote; for rules a single `rule:<name>: <detail>` line. */
  raw: string[];
  hint: string | null;
  judgeModel: string | null;
  costTokens: number;
  costMs: number;
}

/** A judge decides one input. Model judges throw EndpointError when the endpoint fails for good. */
export interface Judge {
  readonly name: string;
  judge(input: JudgeInput, signal?: AbortSignal): Promise<Verdict>;
}

export function toJudgment(turn: Pick<Turn, "id" | "sessionId">, nextStateIds: string[], v: Verdict, now = new Date()): Judgment {
  return {
    id: turn.id,
    turnId: turn.id,
    sessionId: turn.sessionId,
    score: v.score,
    method: v.method,
    votes: v.votes,
    raw: v.raw,
    hint: v.hint,
    nextStateIds,
    judgeModel: v.judgeModel,
    costTokens: v.costTokens,
    costMs: v.costMs,
    createdAt: now.toISOString(),
  };
}
