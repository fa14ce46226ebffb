// The model's tokenizer and chat template as a ChatTokenizer, from a Hugging Face folder
// (tokenizer.json + tokenizer_config.json) or from GGUF metadata, whose vocabulary we turn into
// an equivalent tokenizer.json so one well-kept implementation (@huggingface/tokenizers) does
// the work either way. Rendering goes through core's renderChat, the same code the embedded
// server uses, so the trainer sees exactly the text the server tokenized.
//
// Special tokens follow llama.cpp's rules, which HF's match for these models:
//  - `parseSpecial`: control tokens (`<|im_start|>`) written in the text become their ids;
//    without it they are tokenized as plain text. User-defined added tokens are always matched.
//  - `addSpecial`: BOS (and EOS) are added when the model asks for them (`add_bos_token`).
//  - `encodeChat`: the rendered text is tokenized with special tokens parsed; BOS is prepended
//    only when the model wants one and the template did not already write it (so never twice).
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import type { ChatMessage } from "../../../core/index.js";
import { renderChat } from "../../../core/index.js";
import type { GgufFile } from "../../../adapters/index.js";
import { ggufNumber, ggufString } from "../../../adapters/index.js";
import type { ChatRenderOptions, ChatTokenizer } from "./types.js";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface TokenizerSpec {
  /** A tokenizer.json document. */
  tokenizerJson: Json;
  bosTokenId: number | null;
  eosTokenIds: number[];
  addBos: boolean;
  addEos: boolean;
  chatTemplate: string | null;
}

export class HfChatTokenizer implements ChatTokenizer {
  readonly bosTokenId: number | null;
  readonly eosTokenIds: number[];
  readonly chatTemplate: string | null;
  private readonly withSpecial: Tokenizer;
  private plain: Tokenizer | null = null;
  private readonly bosText: string | null;
  private readonly eosText: string | null;

  constructor(private readonly spec: TokenizerSpec) {
    // BOS/EOS are added by us (addSpecial), not by the JSON's post-processor, so both sources agree.
    const json = { ...spec.tokenizerJson, post_processor: null };
    this.withSpecial = new Tokenizer(json, {});
    this.bosTokenId = spec.bosTokenId;
    this.eosTokenIds = spec.eosTokenIds;
    this.chatTemplate = spec.chatTemplate;
    this.bosText = spec.bosTokenId === null ? null : (this.withSpecial.id_to_token(spec.bosTokenId) ?? null);
    this.eosText = spec.eosTokenIds.length ? (this.withSpecial.id_to_token(spec.eosTokenIds[0]!) ?? null) : null;
  }

  /** Same vocabulary, but special added tokens are not recognized in text (parseSpecial: false). */
  private plainTokenizer(): Tokenizer {
    if (!this.plain) {
      const j = this.spec.tokenizerJson;
      const added = (j.added_tokens ?? []) as Json[];
      // Special added tokens stay in the vocabulary (so ids decode) but are not split out of text.
      const vocab = { ...(j.model?.vocab ?? {}) };
      for (const t of added) if (t.special) vocab[t.content] = t.id;
      this.plain = new Tokenizer({ ...j, post_processor: null, model: { ...j.model, vocab }, added_tokens: added.filter((t) => !t.special) }, {});
    }
    return this.plain;
  }

  encode(text: string, opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
    const tok = opts.parseSpecial === false ? this.plainTokenizer() : this.withSpecial;
    const ids = text.length ? tok.encode(text, { add_special_tokens: false }).ids : [];
    if (opts.addSpecial) {
      if (this.spec.addBos && this.bosTokenId !== null) ids.unshift(this.bosTokenId);
      if (this.spec.addEos && this.eosTokenIds.length) ids.push(this.eosTokenIds[0]!);
    }
    return ids;
  }

  decode(ids: number[], opts: { skipSpecial?: boolean } = {}): string {
    if (ids.length === 0) return "";
    return this.withSpecial.decode(ids, { skip_special_tokens: opts.skipSpecial ?? false, clean_up_tokenization_spaces: false });
  }

  renderChat(messages: ChatMessage[], opts: ChatRenderOptions): string {
    return renderChat(this.chatTemplate, messages, {
      tools: opts.tools ?? null,
      addGenerationPrompt: opts.addGenerationPrompt,
      bosToken: this.bosText,
      eosToken: this.eosText,
    });
  }

  encodeChat(messages: ChatMessage[], opts: ChatRenderOptions): number[] {
    const ids = this.encode(this.renderChat(messages, opts), { addSpecial: false, parseSpecial: true });
    if (this.spec.addBos && this.bosTokenId !== null && ids[0] !== this.bosTokenId) ids.unshift(this.bosTokenId);
    return ids;
  }
}

// ---------------------------------------------------------------------------------------------
// From a Hugging Face folder

function tokenText(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as Json).content === "string") return (v as Json).content;
  return null;
}

function readJson(file: string): Json | null {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Json) : null;
}

/** The chat template of a folder: chat_template.jinja, or tokenizer_config.json's (string or named list). */
function folderChatTemplate(dir: string, cfg: Json): string | null {
  const jinja = path.join(dir, "chat_template.jinja");
  if (fs.existsSync(jinja)) return fs.readFileSync(jinja, "utf8");
  const t = cfg.chat_template;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) return (t.find((x: Json) => x.name === "default") ?? t[0])?.template ?? null;
  return null;
}

export function tokenizerFromFolder(dir: string): HfChatTokenizer {
  const tokenizerJson = readJson(path.join(dir, "tokenizer.json"));
  if (!tokenizerJson) throw new Error(`${dir}: no tokenizer.json (only fast-tokenizer folders are supported)`);
  const cfg = readJson(path.join(dir, "tokenizer_config.json")) ?? {};
  const gen = readJson(path.join(dir, "generation_config.json")) ?? {};
  const probe = new Tokenizer(tokenizerJson, {});
  const idOf = (text: string | null): number | null => (text === null ? null : (probe.token_to_id(text) ?? null));
  const bosTokenId = idOf(tokenText(cfg.bos_token));
  const eosIds = new Set<number>();
  const eos = idOf(tokenText(cfg.eos_token));
  if (eos !== null) eosIds.add(eos);
  for (const id of [gen.eos_token_id].flat()) if (typeof id === "number") eosIds.add(id);
  // Whether BOS is added: tokenizer_config says so, else what the JSON's post-processor does.
  let addBos = cfg.add_bos_token;
  let addEos = cfg.add_eos_token;
  if (typeof addBos !== "boolean" || typeof addEos !== "boolean") {
    const a = probe.encode("a", { add_special_tokens: true }).ids;
    const b = probe.encode("a", { add_special_tokens: false }).ids;
    if (typeof addBos !== "boolean") addBos = bosTokenId !== null && a.length > b.length && a[0] === bosTokenId;
    if (typeof addEos !== "boolean") addEos = eos !== null && a.length > b.length && a[a.length - 1] === eos;
  }
  return new HfChatTokenizer({
    tokenizerJson,
    bosTokenId,
    eosTokenIds: [...eosIds],
    addBos: addBos as boolean,
    addEos: addEos as boolean,
    chatTemplate: folderChatTemplate(dir, cfg),
  });
}

// ---------------------------------------------------------------------------------------------
// From GGUF metadata

const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

// llama.cpp's pre-tokenizer regexes (llama-vocab.cpp), by `tokenizer.ggml.pre`. Each list is
// applied in turn, every match and every gap becoming a piece: HF's Split(behavior: Isolated).
const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const LLAMA3 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const PRE: Record<string, { regexes: string[]; ignoreMerges?: boolean }> = {};
for (const p of ["gpt-2", "gpt2", "mpt", "olmo", "jais", "trillion", "granite-docling"]) PRE[p] = { regexes: [GPT2] };
for (const p of ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"]) PRE[p] = { regexes: ["\\p{N}", GPT2] };
for (const p of ["llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"]) PRE[p] = { regexes: [LLAMA3], ignoreMerges: true };
for (const p of ["qwen2", "deepseek-r1-qwen", "stablelm2", "hunyuan"]) PRE[p] = { regexes: [QWEN2] };
PRE["default"] = { regexes: ["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"] };

function addedTokens(tokens: string[], types: ArrayLike<number> | undefined): Json[] {
  const out: Json[] = [];
  if (!types) return out;
  for (let id = 0; id < tokens.length; id++) {
    const t = types[id];
    if (t === TOKEN_TYPE.CONTROL || t === TOKEN_TYPE.USER_DEFINED || t === TOKEN_TYPE.UNKNOWN)
      out.push({ id, content: tokens[id], special: t !== TOKEN_TYPE.USER_DEFINED, single_word: false, lstrip: false, rstrip: false, normalized: false });
  }
  return out;
}

/** tokenizer.json for a GGUF `gpt2` (byte-level BPE) vocabulary. */
function gpt2TokenizerJson(g: GgufFile, tokens: string[], types: ArrayLike<number> | undefined): Json {
  const pre = ggufString(g, "tokenizer.ggml.pre") ?? "default";
  const rules = PRE[pre];
  if (!rules) throw new Error(`${g.path}: pre-tokenizer "${pre}" is not supported (supported: ${Object.keys(PRE).join(", ")})`);
  const merges = g.metadata.get("tokenizer.ggml.merges") as string[] | undefined;
  if (!merges) throw new Error(`${g.path}: BPE vocabulary without tokenizer.ggml.merges`);
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  return {
    version: "1.0",
    added_tokens: addedTokens(tokens, types),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        ...rules.regexes.map((r) => ({ type: "Split", pattern: { Regex: r }, behavior: "Isolated", invert: false })),
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: rules.ignoreMerges ?? false, vocab, merges },
  };
}

/**
 * tokenizer.json for a GGUF `llama` (SentencePiece BPE) vocabulary. llama.cpp merges the adjacent
 * pair whose joined piece has the highest score; BPE with every such pair as a merge, ranked by
 * that score, makes the same choices. Unknown characters fall back to `<0xXX>` byte tokens, and a
 * space is prepended to each text run (after BOS or any special token), as llama.cpp does.
 */
function spmTokenizerJson(g: GgufFile, tokens: string[], types: ArrayLike<number> | undefined): Json {
  const scores = g.metadata.get("tokenizer.ggml.scores") as Float32Array | undefined;
  if (!scores) throw new Error(`${g.path}: SentencePiece vocabulary without tokenizer.ggml.scores`);
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const mergeable = (id: number) => !types || types[id] === TOKEN_TYPE.NORMAL || types[id] === TOKEN_TYPE.USER_DEFINED;
  const pairs: { left: string; right: string; score: number; id: number }[] = [];
  tokens.forEach((piece, id) => {
    if (!mergeable(id)) return;
    const chars = Array.from(piece);
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join("");
      const right = chars.slice(k).join("");
      const l = vocab[left];
      const r = vocab[right];
      if (l !== undefined && r !== undefined && mergeable(l) && mergeable(r)) pairs.push({ left, right, score: scores[id]!, id });
    }
  });
  pairs.sort((a, b) => b.score - a.score || a.id - b.id);
  const addPrefix = g.metadata.get("tokenizer.ggml.add_space_prefix") !== false;
  const unk = ggufNumber(g, "tokenizer.ggml.unknown_token_id");
  return {
    version: "1.0",
    added_tokens: addedTokens(tokens, types),
    normalizer: {
      type: "Sequence",
      normalizers: [...(addPrefix ? [{ type: "Prepend", prepend: "▁" }] : []), { type: "Replace", pattern: { String: " " }, content: "▁" }],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        ...(addPrefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: "BPE", dropout: null, unk_token: unk === undefined ? null : tokens[unk], continuing_subword_prefix: null,
      end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab,
      merges: pairs.map((p) => [p.left, p.right]),
    },
  };
}

export function tokenizerFromGguf(g: GgufFile): HfChatTokenizer {
  const model = ggufString(g, "tokenizer.ggml.model");
  const tokens = g.metadata.get("tokenizer.ggml.tokens") as string[] | undefined;
  if (!model || !tokens) throw new Error(`${g.path}: no tokenizer in the GGUF metadata`);
  const types = g.metadata.get("tokenizer.ggml.token_type") as Int32Array | undefined;
  let tokenizerJson: Json;
  if (model === "gpt2") tokenizerJson = gpt2TokenizerJson(g, tokens, types);
  else if (model === "llama") tokenizerJson = spmTokenizerJson(g, tokens, types);
  else throw new Error(`${g.path}: tokenizer model "${model}" is not supported (supported: gpt2, llama)`);
  const bos = ggufNumber(g, "tokenizer.ggml.bos_token_id");
  const eosIds = new Set<number>();
  for (const key of ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]) {
    const id = ggufNumber(g, key);
    if (id !== undefined && id >= 0 && id < tokens.length) eosIds.add(id);
  }
  const flag = (key: string, fallback: boolean): boolean => {
    const v = g.metadata.get(key);
    return typeof v === "boolean" ? v : fallback;
  };
  // llama.cpp's defaults: SentencePiece vocabularies add BOS, byte-level BPE ones only for Llama 3.
  const pre = ggufString(g, "tokenizer.ggml.pre") ?? "";
  const addBos = flag("tokenizer.ggml.add_bos_token", model === "llama" || PRE[pre]?.ignoreMerges === true);
  return new HfChatTokenizer({
    tokenizerJson,
    bosTokenId: bos === undefined ? null : bos,
    eosTokenIds: [...eosIds],
    addBos,
    addEos: flag("tokenizer.ggml.add_eos_token", false),
    chatTemplate: ggufString(g, "tokenizer.chat_template") ?? null,
  });
}
