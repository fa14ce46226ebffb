// The judge a loop uses: explicit feedback first (always), then the rules (alone, or in front of a
// model judge when `rulesFirst`), then the PRM or log-prob judge over an OpenAI-compatible endpoint.
import type { Config } from "../core/index.js";
import { OpenAIClient } from "./client.js";
import type { JudgeInput } from "./input.js";
import { LogprobJudge } from "./logprob.js";
import { ModelName } from "./model-name.js";
import { PrmJudge } from "./prm.js";
import { RulesJudge, type RuleVerdict } from "./rules.js";
import type { Judge, Verdict } from "./verdict.js";

export type JudgeConfig = Config["judge"];

export class JudgeConfigError extends Error {}

function fromRules(v: RuleVerdict | null, costMs: number): Verdict {
  return {
    score: v?.score ?? 0,
    method: v?.method ?? "rules",
    votes: [],
    raw: [v ? `rule:${v.rule}: ${v.detail}` : "rule:none: no rule applies"],
    hint: v?.hint ?? null,
    judgeModel: null,
    costTokens: 0,
    costMs,
  };
}

export interface ComposedJudgeOptions {
  rules: RulesJudge;
  /** The model judge; null for method "rules". */
  model: Judge | null;
  rulesFirst: boolean;
}

export class ComposedJudge implements Judge {
  readonly name: string;

  constructor(private readonly opts: ComposedJudgeOptions) {
    this.name = opts.model ? (opts.rulesFirst ? `rules+${opts.model.name}` : opts.model.name) : "rules";
  }

  get rules(): RulesJudge {
    return this.opts.rules;
  }

  async judge(input: JudgeInput, signal?: AbortSignal): Promise<Verdict> {
    const started = performance.now();
    const feedback = [...input.evidence].reverse().map((e) => this.opts.rules.feedback(e)).find((v) => v !== null) ?? null;
    if (feedback) return fromRules(feedback, performance.now() - started);
    if (!this.opts.model) return fromRules(this.opts.rules.judge(input), performance.now() - started);
    if (this.opts.rulesFirst) {
      const rule = this.opts.rules.judge(input);
      if (rule) return fromRules(rule, performance.now() - started);
    }
    return this.opts.model.judge(input, signal);
  }
}

export interface EndpointSettings {
  endpoint: string | null;
  apiKey: string | null;
}

/** The judge endpoint: `judge.endpoint`, else the sidecar's upstream (the served base model). */
export function judgeEndpoint(config: Config): EndpointSettings {
  if (config.judge.endpoint) return { endpoint: config.judge.endpoint, apiKey: config.judge.apiKey };
  return { endpoint: config.sidecar.upstream, apiKey: config.judge.apiKey ?? config.sidecar.upstreamApiKey };
}

export interface CreateJudgeOptions {
  /** Overrides `judge.method` (evaluation of one method). */
  method?: JudgeConfig["method"];
  rulesFirst?: boolean;
  signal?: AbortSignal;
}

/** Builds the configured judge. Throws JudgeConfigError when a model judge has no endpoint. */
export function createJudge(config: Config, opts: CreateJudgeOptions = {}): ComposedJudge {
  const j = config.judge;
  const method = opts.method ?? j.method;
  const rules = new RulesJudge(j.patterns);
  if (method === "rules") return new ComposedJudge({ rules, model: null, rulesFirst: true });
  const { endpoint, apiKey } = judgeEndpoint(config);
  if (!endpoint) {
    throw new JudgeConfigError(
      `judge.method is "${method}" but there is no judge endpoint: set judge.endpoint (or sidecar.upstream), or use judge.method "rules"`,
    );
  }
  const client = new OpenAIClient({ baseUrl: endpoint, apiKey, timeoutMs: j.timeoutMs, retries: j.retries, signal: opts.signal });
  const model = new ModelName(client, j.model);
  const modelJudge =
    method === "prm"
      ? new PrmJudge(client, model, { votes: j.votes, temperature: j.temperature, maxTokens: j.maxTokens })
      : new LogprobJudge(client, model, { margin: j.logprobMargin, render: j.logprobRender, scoring: j.logprobScoring });
  return new ComposedJudge({ rules, model: modelJudge, rulesFirst: opts.rulesFirst ?? j.rulesFirst });
}
