// The log-prob judge: instead of sampling answers, score the three possible answers
// (`\boxed{1}`, `\boxed{-1}`, `\boxed{0}`) as continuations of the judge prompt and compare their
// probabilities. One scoring request (a batch of three prompts that share everything but the
// answer), no sampling: deterministic, and far cheaper than m sampled votes.
//
// It uses vLLM's documented API: `POST /v1/completions` with `prompt_logprobs`, `echo` and
// `max_tokens: 0`, reading `choices[i].prompt_logprobs` (per-position dicts keyed by token id).
// The chat template is applied by the server through `POST /tokenize` (chat form, with
// `continue_final_message`) where the server has it; otherwise the prompt is a plain transcript.
//
// Each answer's score is the sum of the log-probs of its tokens after the longest token prefix
// the three prompts share, i.e. log P(answer | prompt) computed exactly, whatever the tokenizer
// does at the boundary. The verdict is the most likely answer, or 0 when it beats the runner-up
// by less than `margin` nats.
import type { Reward } from "../core/index.js";
import { EndpointError, type CompletionChoice, type CompletionResponse, type OpenAIClient } from "./client.js";
import type { JudgeInput } from "./input.js";
import type { ModelName } from "./model-name.js";
import { buildJudgePrompt, LOGPROB_ANSWERS, plainTranscript } from "./prompt.js";
import type { Judge, Verdict } from "./verdict.js";

export interface LogprobOptions {
  /** Minimum log-prob lead (nats) of the best answer over the second; below it the verdict is 0. */
  margin: number;
  /** "auto": the server's chat template via /tokenize when available, else a plain transcript. */
  render?: "auto" | "tokenize" | "text";
}

interface Position {
  key: string;
  logprob: number | null;
}

/** Per-position (token, log-prob) of a scored prompt, from whichever of vLLM's fields the server filled. */
export function promptPositions(choice: CompletionChoice, promptIds: number[] | null): Position[] {
  const pl = choice.prompt_logprobs;
  if (Array.isArray(pl) && pl.length > 0) {
    const ids = promptIds ?? (Array.isArray(choice.prompt_token_ids) ? choice.prompt_token_ids : null);
    return pl.map((entry, j) => {
      if (!entry) {
        if (j === 0) return { key: ids ? String(ids[0]) : "<first>", logprob: null };
        throw new EndpointError(`prompt_logprobs[${j}] is empty`, null, false);
      }
      const keys = Object.keys(entry);
      const key = ids ? String(ids[j]) : keys.length === 1 ? keys[0]! : null;
      if (key === null) throw new EndpointError("prompt_logprobs has several tokens per position and no prompt_token_ids to pick the prompt's own", null, false);
      const lp = entry[key]?.logprob;
      if (typeof lp !== "number") throw new EndpointError(`prompt_logprobs[${j}] lacks the prompt token ${key}`, null, false);
      return { key, logprob: lp };
    });
  }
  const lp = choice.logprobs;
  if (lp && Array.isArray(lp.tokens) && Array.isArray(lp.token_logprobs)) {
    return lp.tokens.map((t, j) => ({ key: t, logprob: lp.token_logprobs![j] ?? null }));
  }
  throw new EndpointError(
    "the endpoint returned no prompt log-probs (the log-prob judge needs vLLM's prompt_logprobs, or echo with logprobs)",
    null,
    false,
  );
}

/** log P(answer | shared prefix) for each sequence: log-probs summed after the common token prefix. */
export function continuationScores(seqs: Position[][]): number[] {
  let d = 0;
  const min = Math.min(...seqs.map((s) => s.length));
  while (d < min && seqs.every((s) => s[d]!.key === seqs[0]![d]!.key)) d++;
  return seqs.map((s, i) => {
    if (d >= s.length) throw new EndpointError(`answer ${i} has no tokens after the shared prefix`, null, false);
    return s.slice(d).reduce((sum, p, j) => {
      if (p.logprob === null) throw new EndpointError(`no log-prob at answer position ${d + j}`, null, false);
      return sum + p.logprob;
    }, 0);
  });
}

export class LogprobJudge implements Judge {
  readonly name = "logprob";
  private render: "tokenize" | "text" | null;
  private batch = true;

  constructor(
    private readonly client: OpenAIClient,
    private readonly model: ModelName,
    private readonly opts: LogprobOptions,
  ) {
    this.render = opts.render && opts.render !== "auto" ? opts.render : null;
  }

  /** How prompts are rendered: known after the first judgment in "auto" mode. */
  get rendering(): string {
    return this.render ?? "auto";
  }

  async judge(input: JudgeInput): Promise<Verdict> {
    const started = performance.now();
    const model = await this.model.get();
    const { messages } = buildJudgePrompt(input, "logprob");
    const prompts = await this.prompts(model, messages);
    const res = await this.score(model, prompts);
    const byIndex = [...res.choices].sort((a, b) => a.index - b.index);
    if (byIndex.length !== prompts.length) throw new EndpointError(`expected ${prompts.length} scored prompts, got ${byIndex.length}`, null, false);
    const seqs = byIndex.map((c, i) => promptPositions(c, Array.isArray(prompts[i]) ? (prompts[i] as number[]) : null));
    const totals = continuationScores(seqs);
    const ranked = LOGPROB_ANSWERS.map((a, i) => ({ score: a.score, lp: totals[i]! })).sort((a, b) => b.lp - a.lp);
    const lead = ranked[0]!.lp - ranked[1]!.lp;
    const score: Reward = lead >= this.opts.margin ? ranked[0]!.score : 0;
    const raw = JSON.stringify({
      logprobs: Object.fromEntries(LOGPROB_ANSWERS.map((a, i) => [String(a.score), round(totals[i]!)])),
      lead: round(lead),
      margin: this.opts.margin,
      render: this.render,
    });
    return {
      score,
      method: "logprob",
      votes: [score],
      raw: [raw],
      hint: null,
      judgeModel: model,
      costTokens: res.usage?.total_tokens ?? 0,
      costMs: performance.now() - started,
    };
  }

  private async prompts(model: string, messages: { role: string; content: unknown }[]): Promise<(string | number[])[]> {
    if (this.render !== "text") {
      const ids: number[][] = [];
      for (const a of LOGPROB_ANSWERS) {
        const t = await this.client.tokenize({
          model,
          messages: [...messages, { role: "assistant", content: a.text }],
          add_generation_prompt: false,
          continue_final_message: true,
          add_special_tokens: false,
        });
        if (!t || !Array.isArray(t.tokens)) {
          if (this.render === "tokenize") throw new EndpointError("the endpoint has no chat /tokenize", null, false);
          this.render = "text";
          break;
        }
        ids.push(t.tokens);
      }
      if (ids.length === LOGPROB_ANSWERS.length) {
        this.render = "tokenize";
        return ids;
      }
    }
    return LOGPROB_ANSWERS.map((a) => plainTranscript(messages as never, a.text));
  }

  private async score(model: string, prompts: (string | number[])[]): Promise<CompletionResponse> {
    const body = (prompt: unknown) => ({
      model,
      prompt: prompt as string,
      max_tokens: 0,
      echo: true,
      prompt_logprobs: 0,
      temperature: 0,
      return_token_ids: true,
    });
    if (this.batch) {
      try {
        return await this.client.completions(body(prompts));
      } catch (err) {
        // Servers that take one prompt per request: score the three one by one.
        if (!(err instanceof EndpointError) || (err.status !== 400 && err.status !== 422)) throw err;
        this.batch = false;
      }
    }
    const parts = await Promise.all(prompts.map((p) => this.client.completions(body(p))));
    return {
      choices: parts.map((r, i) => ({ ...r.choices[0]!, index: i })),
      usage: {
        prompt_tokens: parts.reduce((n, r) => n + (r.usage?.prompt_tokens ?? 0), 0),
        completion_tokens: 0,
        total_tokens: parts.reduce((n, r) => n + (r.usage?.total_tokens ?? 0), 0),
      },
    };
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
