// The log-prob judge: instead of sampling answers, score the three possible answers
// (`\boxed{1}`, `\boxed{-1}`, `\boxed{0}`) as continuations of the judge prompt and compare their
// probabilities. Three scoring requests sent together (the prompts share everything but the
// answer), no sampling: deterministic, and no generated tokens.
//
// It uses vLLM's documented API: `POST /v1/completions` with `prompt_logprobs`, `echo` and
// `max_tokens: 0`, reading `choices[0].prompt_logprobs` (per-position dicts keyed by token id).
// The chat template is applied by the server through `POST /tokenize` (chat form, with
// `continue_final_message`) where the server has it; otherwise the prompt is a plain transcript.
//
// Each answer's score is the sum of the log-probs of its tokens after the longest token prefix
// the three prompts share, i.e. log P(answer | prompt) computed exactly, whatever the tokenizer
// does at the boundary. The verdict is the most likely answer, or 0 when it beats the runner-up
// by less than `margin` nats.
//
// `scoring: "next-token"` is the cheap variant for servers whose prompt log-probs are slow (they
// score every prompt position): the prompt ends with `\boxed{` and one generated token's top-20
// log-probs decide, P(1) from tokens starting with "1", P(−1) from "-", P(0) from "0". It
// treats the rest of each answer ("1}" after "-") as certain, which a model that writes the
// format at all makes nearly true; an answer missing from the top 20 gets the 20th log-prob (an
// upper bound).
import type { ChatMessage, Reward } from "../core/index.js";
import { EndpointError, type CompletionChoice, type CompletionResponse, type OpenAIClient } from "./client.js";
import type { JudgeInput } from "./input.js";
import type { ModelName } from "./model-name.js";
import { buildJudgePrompt, LOGPROB_ANSWERS, plainTranscript } from "./prompt.js";
import type { Judge, Verdict } from "./verdict.js";

export interface LogprobOptions {
  /** Minimum log-prob lead (nats) of the best answer over the second; below it the verdict is 0. */
  margin: number;
  /** "continuation": exact, from prompt log-probs; "next-token": one generated token's top log-probs. */
  scoring?: "continuation" | "next-token";
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
    const { totals, tokens } = this.opts.scoring === "next-token" ? await this.nextToken(model, messages) : await this.continuations(model, messages);
    const ranked = LOGPROB_ANSWERS.map((a, i) => ({ score: a.score, lp: totals[i]! })).sort((a, b) => b.lp - a.lp);
    const lead = ranked[0]!.lp - ranked[1]!.lp;
    const score: Reward = lead >= this.opts.margin ? ranked[0]!.score : 0;
    const raw = JSON.stringify({
      logprobs: Object.fromEntries(LOGPROB_ANSWERS.map((a, i) => [String(a.score), round(totals[i]!)])),
      lead: round(lead),
      margin: this.opts.margin,
      scoring: this.opts.scoring ?? "continuation",
      render: this.render,
    });
    return { score, method: "logprob", votes: [score], raw: [raw], hint: null, judgeModel: model, costTokens: tokens, costMs: performance.now() - started };
  }

  /** log P(answer | prompt) of the three answers, from prompt log-probs. */
  private async continuations(model: string, messages: ChatMessage[]): Promise<{ totals: number[]; tokens: number }> {
    const prompts = await this.prompts(model, messages, LOGPROB_ANSWERS.map((a) => a.text));
    const res = await this.score(model, prompts);
    const byIndex = [...res.choices].sort((a, b) => a.index - b.index);
    if (byIndex.length !== prompts.length) throw new EndpointError(`expected ${prompts.length} scored prompts, got ${byIndex.length}`, null, false);
    const seqs = byIndex.map((c, i) => promptPositions(c, Array.isArray(prompts[i]) ? (prompts[i] as number[]) : null));
    return { totals: continuationScores(seqs), tokens: res.usage?.total_tokens ?? 0 };
  }

  /** The three answers' first tokens, from one generated token's top log-probs. */
  private async nextToken(model: string, messages: ChatMessage[]): Promise<{ totals: number[]; tokens: number }> {
    const [prompt] = await this.prompts(model, messages, ["\\boxed{"]);
    const res = await this.client.completions({ model, prompt: prompt as string, max_tokens: 1, logprobs: NEXT_TOKEN_TOP, temperature: 0 });
    const top = res.choices?.[0]?.logprobs?.top_logprobs?.[0];
    if (!top || typeof top !== "object") throw new EndpointError("the endpoint returned no top log-probs for the generated token", null, false);
    return { totals: answerLogprobs(top as Record<string, number>), tokens: res.usage?.total_tokens ?? 0 };
  }

  /** The judge prompt with each of `answers` begun as the assistant's reply: token ids, or text. */
  private async prompts(model: string, messages: ChatMessage[], answers: string[]): Promise<(string | number[])[]> {
    if (this.render !== "text") {
      const ids: number[][] = [];
      for (const answer of answers) {
        const t = await this.client.tokenize({
          model,
          messages: [...messages, { role: "assistant", content: answer }],
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
      if (ids.length === answers.length) {
        this.render = "tokenize";
        return ids;
      }
    }
    return answers.map((a) => plainTranscript(messages, a));
  }

  /**
   * One scoring request per answer, sent together: servers batch them and share the prompt
   * prefix, and no server has to accept a list of prompts (the embedded engine mishandles one).
   */
  private async score(model: string, prompts: (string | number[])[]): Promise<CompletionResponse> {
    const parts = await Promise.all(
      prompts.map((prompt) =>
        this.client.completions({
          model,
          prompt: prompt as string,
          max_tokens: 0,
          echo: true,
          // k = 1, not 0: each position then also lists the top token, harmless here (the
          // prompt's own token is found by id), and it avoids engines that mishandle k = 0.
          prompt_logprobs: 1,
          temperature: 0,
          return_token_ids: true,
        }),
      ),
    );
    return {
      choices: parts.map((r, i) => {
        const c = r.choices?.[0];
        if (!c) throw new EndpointError("a scoring request returned no choice", null, false);
        return { ...c, index: i };
      }),
      usage: {
        prompt_tokens: parts.reduce((n, r) => n + (r.usage?.prompt_tokens ?? 0), 0),
        completion_tokens: 0,
        total_tokens: parts.reduce((n, r) => n + (r.usage?.total_tokens ?? 0), 0),
      },
    };
  }
}

const NEXT_TOKEN_TOP = 20;

/** Log-probs of the answers 1, −1, 0 from a next-token top-k map (token text → log-prob). */
export function answerLogprobs(top: Record<string, number>): number[] {
  const classes: Record<"1" | "-1" | "0", number[]> = { "1": [], "-1": [], "0": [] };
  for (const [token, lp] of Object.entries(top)) {
    const t = token.trim();
    if (/^[-−]/.test(t)) classes["-1"].push(lp);
    else if (/^\+?1/.test(t)) classes["1"].push(lp);
    else if (/^0/.test(t)) classes["0"].push(lp);
  }
  const floor = Math.min(...Object.values(top));
  const logsumexp = (xs: number[]) => {
    if (!xs.length) return floor;
    const m = Math.max(...xs);
    return m + Math.log(xs.reduce((a, x) => a + Math.exp(x - m), 0));
  };
  return LOGPROB_ANSWERS.map((a) => logsumexp(classes[String(a.score) as "1"]));
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
