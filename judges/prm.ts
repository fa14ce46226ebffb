// The PRM judge: m sampled answers to the judge prompt over `/v1/chat/completions`, majority
// vote, and the most specific hint among the votes that agree with the majority.
import { randomInt } from "node:crypto";
import type { Reward } from "../core/index.js";
import type { OpenAIClient } from "./client.js";
import { selectHint } from "./hints.js";
import type { JudgeInput } from "./input.js";
import type { ModelName } from "./model-name.js";
import { buildJudgePrompt } from "./prompt.js";
import type { Judge, Verdict } from "./verdict.js";
import { majority, parseAnswer } from "./votes.js";

export interface PrmOptions {
  votes: number;
  temperature: number;
  maxTokens: number;
}

export class PrmJudge implements Judge {
  readonly name = "prm";

  constructor(
    private readonly client: OpenAIClient,
    private readonly model: ModelName,
    private readonly opts: PrmOptions,
  ) {}

  async judge(input: JudgeInput): Promise<Verdict> {
    const started = performance.now();
    const model = await this.model.get();
    const { messages } = buildJudgePrompt(input, "prm");
    // One request per vote (n=1 works on every server); distinct seeds keep the samples independent
    // on servers that would otherwise reuse a default seed.
    const answers = await Promise.all(
      Array.from({ length: this.opts.votes }, () =>
        this.client.chat({
          model,
          messages,
          temperature: this.opts.temperature,
          top_p: 1,
          max_tokens: this.opts.maxTokens,
          seed: randomInt(2 ** 31),
          stream: false,
        }),
      ),
    );
    const raw = answers.map((a) => {
      const m = a.choices?.[0]?.message;
      return typeof m?.content === "string" ? m.content : "";
    });
    const parsed = raw.map(parseAnswer);
    const votes = parsed.map((p) => p.score);
    const score: Reward = majority(votes);
    const evidenceText = input.evidence.map((e) => e.text).join("\n");
    const agreeing = parsed.filter((p) => p.score !== null && p.score === score).map((p) => p.hint);
    const hint = votes.some((v) => v !== null) ? selectHint(agreeing, evidenceText) : null;
    const costTokens = answers.reduce((n, a) => n + (a.usage?.total_tokens ?? 0), 0);
    return { score, method: "prm", votes, raw, hint, judgeModel: model, costTokens, costMs: performance.now() - started };
  }
}
