// Calls every OpenAI-compatible server answers the same way: a short chat probe, the served model
// list, and (vLLM and the embedded engine) log-probs of given tokens through `/v1/completions`
// with a token-id prompt and `prompt_logprobs`.
import { call, errorMessage, type HttpOptions } from "./http.js";
import { DriverError, type ProbeResult } from "./types.js";

/** A deterministic, short generation: proves the name resolves and the weights produce tokens. */
export async function chatProbe(root: string, model: string, opts: HttpOptions): Promise<ProbeResult> {
  const t0 = performance.now();
  try {
    const a = await call(
      root,
      "POST",
      "/v1/chat/completions",
      { model, messages: [{ role: "user", content: "Reply with one word: ready?" }], max_tokens: 4, temperature: 0, stream: false },
      opts,
    );
    const latencyMs = performance.now() - t0;
    if (a.status !== 200) return { ok: false, status: a.status, text: "", latencyMs, error: errorMessage(a) };
    const choice = (a.json as { choices?: { message?: { content?: unknown } }[] } | null)?.choices?.[0];
    if (!choice?.message) return { ok: false, status: a.status, text: "", latencyMs, error: "the answer has no choices[0].message" };
    return { ok: true, status: a.status, text: typeof choice.message.content === "string" ? choice.message.content : "", latencyMs, error: null };
  } catch (err) {
    return { ok: false, status: null, text: "", latencyMs: performance.now() - t0, error: (err as Error).message };
  }
}

interface ModelEntry {
  id: string;
  parent?: string | null;
  root?: string | null;
}

export async function listModels(root: string, opts: HttpOptions): Promise<ModelEntry[]> {
  const a = await call(root, "GET", "/v1/models", undefined, opts);
  if (a.status !== 200) throw new DriverError(`GET /v1/models → ${a.status}: ${errorMessage(a)}`, a.status);
  const data = (a.json as { data?: ModelEntry[] } | null)?.data;
  if (!Array.isArray(data)) throw new DriverError("GET /v1/models: no `data` list in the answer");
  return data;
}

/** The base: the one listed model without a parent (vLLM lists adapters with `parent` = base). */
export async function discoverBase(root: string, opts: HttpOptions): Promise<string> {
  const models = await listModels(root, opts);
  const bases = models.filter((m) => !m.parent);
  if (bases.length === 1) return bases[0]!.id;
  if (bases.length === 0) throw new DriverError("the server lists no base model in /v1/models; set adapters.baseModel");
  throw new DriverError(`the server lists several models (${bases.map((m) => m.id).join(", ")}); set adapters.baseModel to the one to train`, null, true);
}

/**
 * vLLM's scoring recipe (also the embedded engine's): prompt = the token ids, `prompt_logprobs: 0`,
 * one generated token; `choices[0].prompt_logprobs[i]` maps the id at position i to its log-prob.
 */
export async function scoreByPromptLogprobs(root: string, model: string, promptIds: number[], responseIds: number[], opts: HttpOptions): Promise<number[]> {
  const ids = [...promptIds, ...responseIds];
  const a = await call(root, "POST", "/v1/completions", { model, prompt: ids, max_tokens: 1, temperature: 1, prompt_logprobs: 0 }, opts);
  if (a.status !== 200) throw new DriverError(`scoring under ${model}: /v1/completions → ${a.status}: ${errorMessage(a)}`, a.status);
  const lps = (a.json as { choices?: { prompt_logprobs?: (Record<string, { logprob: number }> | null)[] | null }[] } | null)?.choices?.[0]?.prompt_logprobs;
  if (!Array.isArray(lps) || lps.length !== ids.length) {
    throw new DriverError(`scoring under ${model}: expected ${ids.length} prompt_logprobs entries, got ${Array.isArray(lps) ? lps.length : "none"}`);
  }
  return responseIds.map((id, i) => {
    const entry = lps[promptIds.length + i]?.[String(id)];
    if (!entry || typeof entry.logprob !== "number") throw new DriverError(`scoring under ${model}: no log-prob for token ${id} at position ${promptIds.length + i}`);
    return entry.logprob;
  });
}
