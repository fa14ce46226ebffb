// Assembles one model call's answer from what the upstream sent: streamed chunks one at a time, or
// a whole response body. Reads every dialect the sidecar captures from (vLLM and clawloop's engine:
// `token_ids` / `prompt_token_ids`; llama.cpp: `logprobs.content[].id`; SGLang:
// `meta_info.output_token_logprobs`) and keeps only choice 0. Memory is bounded by `maxChars`.
//
// llama.cpp's entries are not one per token. llama-server writes an entry only for a token that
// completes its text: a character split over several tokens (an emoji, most CJK) gets ONE entry,
// with the last token's id and log-prob (and the whole character's bytes), the others none; a
// streamed chat also sends none for tokens that add no text to a delta (the end-of-generation
// token, text held back for a stop string or a tool/reasoning parser). Its ids are taken only when
// the entries account for every token it says it generated (`usage.completion_tokens`, or
// `timings.predicted_n`), allowing the streamed chat's textless last token when it stopped; other
// answers are recorded without ids rather than with ids that do not spell the answer.
import type { ToolCall, TurnResponse, Usage } from "../core/index.js";

type Obj = Record<string, unknown>;

export interface Assembled {
  response: TurnResponse;
  usage: Usage | null;
  promptTokenIds: number[] | null;
  completionTokenIds: number[] | null;
  /** Aligned with `completionTokenIds`; null when they cannot be aligned. */
  completionLogprobs: number[] | null;
  /** An error the upstream reported inside a 200 response (a mid-stream error event). */
  error: string | null;
  sawDone: boolean;
  truncated: boolean;
}

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** vLLM's `--return-tokens-as-token-ids` spells tokens as `token_id:<id>`. */
function idFromTokenString(t: unknown): number | null {
  if (typeof t !== "string" || !t.startsWith("token_id:")) return null;
  const n = Number(t.slice(9));
  return Number.isInteger(n) ? n : null;
}

export function errorText(v: unknown): string {
  if (typeof v === "string") return v;
  if (isObj(v)) {
    if (typeof v.message === "string") return v.message;
    if (isObj(v.error) && typeof v.error.message === "string") return v.error.message;
  }
  return JSON.stringify(v);
}

export class ResponseAssembler {
  private id: string | null = null;
  private content = "";
  private reasoning = "";
  private tools = new Map<number, ToolCall>();
  private finishReason: string | null = null;
  private usage: Usage | null = null;
  private promptIds: number[] | null = null;
  /** Ids by source, best first: explicit token ids, SGLang meta info, log-prob entries. */
  private explicitIds: number[] = [];
  private metaIds: number[] = [];
  private lpIds: number[] = [];
  private lpValues: number[] = [];
  private metaValues: number[] = [];
  private lpIdsComplete = true;
  /** The log-prob entries named their token by an `id` field (llama.cpp). */
  private lpIdField = false;
  /** How many tokens the upstream says it generated, where it says so. */
  private generated: number | null = null;
  private usageGenerated: number | null = null;
  private chatStream = false;
  private error: string | null = null;
  private done = false;
  private chars = 0;
  private truncated = false;

  constructor(private readonly maxChars = 16 * 1024 * 1024) {}

  markDone(): void {
    this.done = true;
  }

  /** One streamed chunk (chat or completions). */
  addChunk(chunk: unknown): void {
    if (!isObj(chunk)) return;
    if (chunk.error !== undefined && chunk.error !== null) {
      this.error = errorText(chunk.error);
      return;
    }
    this.common(chunk);
    const choice = this.choice0(chunk);
    if (!choice) return;
    const delta = isObj(choice.delta) ? choice.delta : null;
    if (delta) {
      this.chatStream = true;
      this.addMessage(delta, true);
    }
    if (typeof choice.text === "string") this.append("content", choice.text);
    this.choiceCommon(choice);
  }

  /** A whole (non-streamed) response body. */
  addResponse(body: unknown): void {
    if (!isObj(body)) return;
    if (body.error !== undefined && body.error !== null) {
      this.error = errorText(body.error);
      return;
    }
    this.common(body);
    const choice = this.choice0(body);
    if (!choice) return;
    if (isObj(choice.message)) this.addMessage(choice.message, false);
    if (typeof choice.text === "string") this.append("content", choice.text);
    this.choiceCommon(choice);
    this.done = true;
  }

  private common(o: Obj): void {
    if (this.id === null && typeof o.id === "string") this.id = o.id;
    if (isObj(o.usage)) {
      const u = o.usage;
      const prompt = num(u.prompt_tokens) ?? 0;
      const completion = num(u.completion_tokens) ?? 0;
      this.usage = { promptTokens: prompt, completionTokens: completion, totalTokens: num(u.total_tokens) ?? prompt + completion };
      this.usageGenerated = num(u.completion_tokens);
    }
    if (isObj(o.timings) && num(o.timings.predicted_n) !== null) this.generated = num(o.timings.predicted_n);
    if (Array.isArray(o.prompt_token_ids)) this.promptIds = o.prompt_token_ids.filter((x): x is number => typeof x === "number");
  }

  private choice0(o: Obj): Obj | null {
    if (!Array.isArray(o.choices)) return null;
    for (const c of o.choices) if (isObj(c) && (c.index === 0 || c.index === undefined)) return c;
    return null;
  }

  private append(field: "content" | "reasoning", s: string): void {
    if (this.chars + s.length > this.maxChars) {
      this.truncated = true;
      return;
    }
    this.chars += s.length;
    this[field] += s;
  }

  private addMessage(m: Obj, isDelta: boolean): void {
    if (typeof m.content === "string") this.append("content", m.content);
    else if (Array.isArray(m.content)) {
      for (const p of m.content) if (isObj(p) && typeof p.text === "string") this.append("content", p.text);
    }
    const r = typeof m.reasoning_content === "string" ? m.reasoning_content : typeof m.reasoning === "string" ? m.reasoning : null;
    if (r) this.append("reasoning", r);
    if (!Array.isArray(m.tool_calls)) return;
    m.tool_calls.forEach((raw, pos) => {
      if (!isObj(raw)) return;
      const index = num(raw.index) ?? (isDelta ? 0 : pos);
      let tc = this.tools.get(index);
      if (!tc) {
        tc = { id: "", type: "function", function: { name: "", arguments: "" } };
        this.tools.set(index, tc);
      }
      if (typeof raw.id === "string" && raw.id && !tc.id) tc.id = raw.id;
      const fn = isObj(raw.function) ? raw.function : null;
      if (fn) {
        // id/type/name arrive in the first fragment only; arguments are concatenated.
        if (typeof fn.name === "string" && fn.name && !tc.function.name) tc.function.name = fn.name;
        if (typeof fn.arguments === "string") {
          if (this.chars + fn.arguments.length > this.maxChars) this.truncated = true;
          else {
            this.chars += fn.arguments.length;
            tc.function.arguments += fn.arguments;
          }
        } else if (isObj(fn.arguments)) {
          // Some servers send arguments as an object.
          tc.function.arguments += JSON.stringify(fn.arguments);
        }
      }
    });
  }

  private choiceCommon(choice: Obj): void {
    if (typeof choice.finish_reason === "string") this.finishReason = choice.finish_reason;
    if (Array.isArray(choice.token_ids)) {
      for (const t of choice.token_ids) if (typeof t === "number") this.explicitIds.push(t);
    }
    if (Array.isArray(choice.prompt_token_ids)) this.promptIds = choice.prompt_token_ids.filter((x): x is number => typeof x === "number");
    const lp = isObj(choice.logprobs) ? choice.logprobs : null;
    if (lp) {
      if (Array.isArray(lp.content)) {
        for (const e of lp.content) {
          if (!isObj(e)) continue;
          const v = num(e.logprob);
          if (v === null) continue;
          this.lpValues.push(v);
          if (num(e.id) !== null) this.lpIdField = true;
          const id = num(e.id) ?? idFromTokenString(e.token);
          if (id === null) this.lpIdsComplete = false;
          else this.lpIds.push(id);
        }
      } else if (Array.isArray(lp.token_logprobs)) {
        // Completions API (vLLM): logprobs without ids (ids come from token_ids).
        for (const v of lp.token_logprobs) {
          if (typeof v === "number") this.lpValues.push(v);
        }
        this.lpIdsComplete = false;
      }
    }
    const meta = isObj(choice.meta_info) ? choice.meta_info : null;
    if (meta && Array.isArray(meta.output_token_logprobs)) {
      for (const e of meta.output_token_logprobs) {
        if (!Array.isArray(e)) continue;
        const v = num(e[0]);
        const id = num(e[1]);
        if (id === null) continue;
        this.metaIds.push(id);
        this.metaValues.push(v ?? Number.NaN);
      }
    }
  }

  /** Whether llama.cpp's entries stand for every generated token (see the top of this file). */
  private lpIdsCoverAnswer(): boolean {
    const generated = this.usageGenerated ?? this.generated;
    if (!this.lpIdField || generated === null) return true;
    const n = this.lpIds.length;
    return n === generated || (this.chatStream && this.finishReason === "stop" && n === generated - 1);
  }

  result(): Assembled {
    let ids: number[] | null = null;
    let logprobs: number[] | null = null;
    if (this.explicitIds.length) {
      ids = this.explicitIds;
      logprobs = this.lpValues.length === ids.length ? this.lpValues : null;
    } else if (this.metaIds.length) {
      ids = this.metaIds;
      logprobs = this.metaValues.every(Number.isFinite) ? this.metaValues : this.lpValues.length === ids.length ? this.lpValues : null;
    } else if (this.lpIds.length && this.lpIdsComplete && this.lpIdsCoverAnswer()) {
      ids = this.lpIds;
      logprobs = this.lpValues;
    }
    const toolCalls = [...this.tools.entries()].sort((a, b) => a[0] - b[0]).map(([, tc]) => tc);
    return {
      response: {
        id: this.id,
        content: this.content,
        reasoning: this.reasoning || null,
        toolCalls,
        finishReason: this.finishReason,
      },
      usage: this.usage,
      promptTokenIds: this.promptIds,
      completionTokenIds: ids,
      completionLogprobs: logprobs,
      error: this.error,
      sawDone: this.done,
      truncated: this.truncated,
    };
  }
}
