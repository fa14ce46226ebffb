// Held-out measurement, straight at the model server (not through the sidecar: measuring is not
// usage, so nothing is recorded or trained on). For the base model and for each adapter version:
// - satisfaction: the persona's check on `samplesPerPrompt` replies to each held-out question,
//   sampled at the persona's temperature, with the same seeds for every version (so differences
//   between versions are not sampling luck of different draws);
// - perplexity of a neutral text (no chat template, unrelated to any persona): the adapter should
//   change how the model answers, not its language.
import type { ChatMessage } from "../core/index.js";
import { checkReply } from "./check.js";
import { requestJson } from "./http.js";
import type { Persona } from "./personas.js";

/** Plain prose on nothing any persona asks about. */
export const NEUTRAL_TEXT =
  "The river runs through the middle of the old town, past the market square and the stone bridge. " +
  "In spring the water rises with melting snow from the hills, and in late summer it slows to a shallow stream " +
  "where children wade and fish. The houses along the bank were built by merchants who traded wool and salt, " +
  "and many still have the wide doors through which carts once passed. On Saturdays farmers sell cheese, bread " +
  "and apples under striped awnings, and in the evening the cafés put chairs out along the water. Visitors often " +
  "climb the hill behind the church, from where the whole valley can be seen, with its fields, orchards and the " +
  "line of poplars that follows the river towards the sea.";

export interface PromptResult {
  prompt: string;
  satisfied: number;
  samples: number;
  /** One reply, for the report. */
  example: string;
  /** Why replies failed, most common first. */
  failures: string[];
}

export interface Satisfaction {
  rate: number;
  /** Binomial standard error sqrt(p(1−p)/n); replies to one question are correlated, so the real one is somewhat larger. */
  stderr: number;
  n: number;
  meanWords: number;
  perPrompt: PromptResult[];
}

export interface Measurement {
  satisfaction: Satisfaction;
  /** Mean negative log-likelihood per token of the neutral text (nats). */
  neutralNll: number;
}

interface Completion {
  choices: { message?: { content: string | null }; finish_reason?: string | null; index: number; prompt_logprobs?: (Record<string, { logprob: number }> | null)[] | null }[];
}

export function standardError(rate: number, n: number): number {
  return n > 0 ? Math.sqrt((rate * (1 - rate)) / n) : 0;
}

export class Evaluator {
  constructor(
    /** The model server (the embedded engine), without `/v1`. */
    readonly engineUrl: string,
    readonly persona: Persona,
    /** The base model's served name. */
    readonly baseModel: string,
  ) {}

  /** Measures the base model (version null) or an adapter version directory. */
  async measure(version: { name: string; dir: string } | null): Promise<Measurement> {
    if (!version) return this.measureModel(this.baseModel);
    const name = `eval-${version.name}`;
    await requestJson("POST", `${this.engineUrl}/v1/load_lora_adapter`, { lora_name: name, lora_path: version.dir });
    try {
      return await this.measureModel(name);
    } finally {
      await requestJson("POST", `${this.engineUrl}/v1/unload_lora_adapter`, { lora_name: name }).catch(() => undefined);
    }
  }

  private async measureModel(model: string): Promise<Measurement> {
    const [satisfaction, neutralNll] = await Promise.all([this.satisfaction(model), this.neutral(model)]);
    return { satisfaction, neutralNll };
  }

  async satisfaction(model: string): Promise<Satisfaction> {
    const p = this.persona;
    const k = p.eval.samplesPerPrompt;
    const perPrompt = await Promise.all(
      p.heldOut.map(async (prompt, i): Promise<PromptResult & { words: number }> => {
        const messages: ChatMessage[] = [
          { role: "system", content: p.system },
          { role: "user", content: prompt },
        ];
        const res = await requestJson<Completion>("POST", `${this.engineUrl}/v1/chat/completions`, {
          model,
          messages,
          n: k,
          seed: p.eval.seed + 1000 * i,
          temperature: p.sampling.temperature,
          top_p: p.sampling.topP,
          max_tokens: p.sampling.maxTokens,
        });
        const replies = res.choices.sort((a, b) => a.index - b.index).map((c) => c.message?.content ?? "");
        const checks = replies.map((r) => checkReply(p.check, r));
        // "5 sentences (at most 2)" and "3 sentences (at most 2)" are one reason.
        const failures = new Map<string, number>();
        for (const c of checks) {
          for (const f of c.failures) {
            const reason = f.replace(/^\d+/, "N");
            failures.set(reason, (failures.get(reason) ?? 0) + 1);
          }
        }
        return {
          prompt,
          satisfied: checks.filter((c) => c.ok).length,
          samples: replies.length,
          example: replies[0] ?? "",
          failures: [...failures.entries()].sort((a, b) => b[1] - a[1]).map(([f]) => f),
          words: checks.reduce((s, c) => s + c.words, 0),
        };
      }),
    );
    const n = perPrompt.reduce((s, r) => s + r.samples, 0);
    const ok = perPrompt.reduce((s, r) => s + r.satisfied, 0);
    const words = perPrompt.reduce((s, r) => s + r.words, 0);
    const rate = n ? ok / n : 0;
    return { rate, stderr: standardError(rate, n), n, meanWords: n ? words / n : 0, perPrompt: perPrompt.map(({ prompt, satisfied, samples, example, failures }) => ({ prompt, satisfied, samples, example, failures })) };
  }

  /** Mean NLL per token of NEUTRAL_TEXT under `model` (vLLM's prompt_logprobs; the first token has none). */
  async neutral(model: string): Promise<number> {
    const res = await requestJson<Completion>("POST", `${this.engineUrl}/v1/completions`, { model, prompt: NEUTRAL_TEXT, max_tokens: 0, prompt_logprobs: 0, echo: true });
    const entries = res.choices[0]?.prompt_logprobs ?? [];
    const lps = entries.filter((e): e is Record<string, { logprob: number }> => e !== null).map((e) => Object.values(e)[0]!.logprob);
    if (!lps.length) throw new Error(`${this.engineUrl}/v1/completions returned no prompt log-probs for ${model}`);
    return -lps.reduce((a, b) => a + b, 0) / lps.length;
  }
}

/** Relative change of perplexity exp(nll): +0.03 is 3% higher. */
export function perplexityChange(baseNll: number, nll: number): number {
  return Math.exp(nll - baseNll) - 1;
}
