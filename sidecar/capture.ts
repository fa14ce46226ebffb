// Asking the upstream for the behaviour policy's token ids and log-probs, and hiding them again.
//
// Per server (shared/research/model-servers.md §1.5, §2.4, §3, §9):
//   vllm      chat: `logprobs:true, top_logprobs:0` + `return_token_ids:true` → per-chunk
//             `logprobs`/`token_ids`, top-level `prompt_token_ids`. vLLM writes these keys as `null`
//             when not asked for, so hiding them means setting them back to null. It also sends
//             chunks for tokens that yield no text (tool-call markers) only when asked for log-probs
//             or ids: those chunks are dropped again. completions: `logprobs:0` + `return_token_ids`.
//   clawloop  the embedded engine (serve/): vLLM's request fields, but `token_ids` and
//             `prompt_token_ids` are absent (not null) when not asked for, and its streamed
//             completions send text-less chunks (and a first chunk with the prompt's ids) only when
//             asked for log-probs or ids.
//   sglang    non-streaming chat only: `logprobs`, `return_prompt_token_ids`, `return_meta_info`
//             (ids in `meta_info.output_token_logprobs`). Streaming rejects the id flags and its
//             streamed log-probs carry no ids, so nothing is asked for when streaming.
//   llamacpp  chat: `logprobs:true, top_logprobs:1` (0 means none); each entry carries the token
//             `id`. Not with tools + stream, which llama-server rejects (0.5.0 still does). The
//             key is absent when not asked for. completions: `logprobs:1` (the key is `null` when
//             not asked for). Entries are per completed character, not per token: see assembler.ts.
//   ollama, openai  nothing: no token ids to be had.
// A field the client set itself is never touched, and what the client asked for it keeps.
import type { UpstreamKind } from "../core/index.js";

type Obj = Record<string, unknown>;

export interface StripSpec {
  /** Choice fields reset to null (where present). */
  choiceNull: string[];
  /** Choice fields removed. */
  choiceDelete: string[];
  /** Top-level fields reset to null (where present). */
  topNull: string[];
  /** Top-level fields removed. */
  topDelete: string[];
  /** Drop chat chunks left with nothing but an empty delta. */
  dropEmptyChunks: boolean;
  /** Drop completions chunks left with no text. */
  dropEmptyText: boolean;
}

export interface CapturePlan {
  /** Fields added to the upstream request. */
  add: Obj;
  /** How to give the client back the response it would have had; null when nothing was added. */
  strip: StripSpec | null;
}

const NONE: CapturePlan = { add: {}, strip: null };

function has(body: Obj, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(body, key);
}

export function planCapture(kind: UpstreamKind | null, endpoint: "chat" | "completions", body: Obj, enabled: boolean): CapturePlan {
  if (!enabled || !kind) return NONE;
  const stream = body.stream === true;
  const add: Obj = {};
  const spec: StripSpec = { choiceNull: [], choiceDelete: [], topNull: [], topDelete: [], dropEmptyChunks: false, dropEmptyText: false };
  switch (kind) {
    case "vllm":
    case "clawloop": {
      // vLLM writes fields it was not asked for as null; clawloop's engine leaves them out.
      const absent = kind === "clawloop";
      const idFields = (choice: string[], top: string[]) => {
        if (absent) {
          spec.choiceDelete.push(...choice);
          spec.topDelete.push(...top);
        } else {
          spec.choiceNull.push(...choice);
          spec.topNull.push(...top);
        }
      };
      // Chunks with no text exist only when log-probs or token ids are on; if the client asked
      // for either, it would have had them anyway.
      const onlyForUs = body.logprobs !== true && body.return_token_ids !== true;
      if (endpoint === "chat") {
        if (!has(body, "logprobs") && !has(body, "top_logprobs")) {
          add.logprobs = true;
          add.top_logprobs = 0;
          spec.choiceNull.push("logprobs");
        }
        if (!has(body, "return_token_ids")) {
          add.return_token_ids = true;
          idFields(["token_ids"], ["prompt_token_ids"]);
        }
        spec.dropEmptyChunks = onlyForUs;
      } else {
        if (!has(body, "logprobs")) {
          add.logprobs = 0;
          spec.choiceNull.push("logprobs");
        }
        if (!has(body, "return_token_ids")) {
          add.return_token_ids = true;
          idFields(["token_ids", "prompt_token_ids"], []);
        }
        spec.dropEmptyText = absent && onlyForUs && typeof body.logprobs !== "number" && body.echo !== true;
      }
      break;
    }
    case "sglang": {
      if (endpoint !== "chat" || stream) return NONE;
      if (!has(body, "logprobs") && !has(body, "top_logprobs")) {
        add.logprobs = true;
        add.top_logprobs = 0;
        spec.choiceNull.push("logprobs");
      }
      if (!has(body, "return_prompt_token_ids")) {
        add.return_prompt_token_ids = true;
        spec.choiceDelete.push("prompt_token_ids");
      }
      if (!has(body, "return_meta_info")) {
        add.return_meta_info = true;
        spec.choiceDelete.push("meta_info");
      }
      break;
    }
    case "llamacpp": {
      if (endpoint === "chat") {
        const tools = Array.isArray(body.tools) && body.tools.length > 0;
        if (stream && tools) return NONE;
        if (has(body, "logprobs") || has(body, "top_logprobs")) return NONE;
        add.logprobs = true;
        add.top_logprobs = 1;
        spec.choiceDelete.push("logprobs");
      } else {
        if (has(body, "logprobs")) return NONE;
        add.logprobs = 1;
        spec.choiceNull.push("logprobs");
      }
      break;
    }
    default:
      return NONE;
  }
  if (Object.keys(add).length === 0) return NONE;
  return { add, strip: spec };
}

/**
 * Adds fields to a JSON object's text without re-serializing it, so everything the client wrote
 * (number formatting, key order, whitespace) reaches the upstream unchanged.
 */
export function injectFields(text: string, add: Obj): string {
  const keys = Object.keys(add);
  if (keys.length === 0) return text;
  const close = text.lastIndexOf("}");
  if (close < 0) throw new Error("not a JSON object");
  const inner = text.slice(text.indexOf("{") + 1, close);
  const extra = keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(add[k])}`).join(",");
  const sep = inner.trim().length === 0 ? "" : ",";
  return `${text.slice(0, close)}${sep}${extra}${text.slice(close)}`;
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * `injectFields` on the body's bytes: the added fields go in before the closing brace, and the rest
 * is copied as it is (no decoding and re-encoding of what may be ~40 KB of prompt).
 */
export function injectFieldsRaw(raw: Buffer, add: Obj): Buffer {
  const keys = Object.keys(add);
  if (keys.length === 0) return raw;
  const close = raw.lastIndexOf(0x7d);
  const open = raw.indexOf(0x7b);
  if (close < 0 || open < 0 || open > close) throw new Error("not a JSON object");
  let empty = true;
  for (let i = close - 1; i > open; i--) {
    if (!WHITESPACE.has(raw[i]!)) {
      empty = false;
      break;
    }
  }
  const extra = keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(add[k])}`).join(",");
  return Buffer.concat([raw.subarray(0, close), Buffer.from(empty ? extra : `,${extra}`, "utf8"), raw.subarray(close)]);
}

export interface StripResult {
  changed: boolean;
  /** The chunk existed only because of what was added: do not forward it. */
  drop: boolean;
}

/** Undoes the capture fields in place, in a streamed chunk or a whole response. */
export function applyStrip(obj: Obj, spec: StripSpec, streaming: boolean): StripResult {
  let changed = false;
  for (const k of spec.topNull) {
    if (has(obj, k) && obj[k] !== null) {
      obj[k] = null;
      changed = true;
    }
  }
  for (const k of spec.topDelete) {
    if (has(obj, k)) {
      delete obj[k];
      changed = true;
    }
  }
  const choices = Array.isArray(obj.choices) ? obj.choices : [];
  let allEmpty = choices.length > 0;
  for (const c of choices) {
    if (typeof c !== "object" || c === null) {
      allEmpty = false;
      continue;
    }
    const choice = c as Obj;
    for (const k of spec.choiceNull) {
      if (has(choice, k) && choice[k] !== null) {
        choice[k] = null;
        changed = true;
      }
    }
    for (const k of spec.choiceDelete) {
      if (has(choice, k)) {
        delete choice[k];
        changed = true;
      }
    }
    const delta = choice.delta;
    const empty = spec.dropEmptyText
      ? choice.text === ""
      : typeof delta === "object" && delta !== null && Object.keys(delta).length === 0;
    if (!empty || choice.finish_reason !== null) allEmpty = false;
  }
  const drop = streaming && (spec.dropEmptyChunks || spec.dropEmptyText) && allEmpty && (obj.usage === undefined || obj.usage === null);
  return { changed, drop };
}
