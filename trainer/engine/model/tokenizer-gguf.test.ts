// Tokenizers built from GGUF vocabularies other than SmolLM2's, against llama.cpp itself: small
// synthetic vocabularies written as vocab-only GGUF files, loaded by node-llama-cpp with
// `vocabOnly`, and tokenized by both. Covers SentencePiece (`llama`: Llama 2, Mistral) and the
// byte-level BPE pre-tokenizers of Llama 3 (`llama-bpe`, with ignore_merges), Qwen2, SmolLM and GPT-2.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama, type Llama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeGguf, readGguf, type GgufMetaValue } from "../../../adapters/index.js";
import { bytesToUnicode } from "../../../test/support/tiny-models.js";
import { tokenizerFromGguf } from "./tokenizer.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tok-gguf-"));
let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ build: "never", gpu: false });
});
afterAll(async () => {
  await llama?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const ARCH: Record<string, GgufMetaValue> = {
  "general.architecture": { type: "string", value: "llama" },
  "llama.block_count": { type: "u32", value: 1 },
  "llama.context_length": { type: "u32", value: 128 },
  "llama.embedding_length": { type: "u32", value: 8 },
  "llama.feed_forward_length": { type: "u32", value: 8 },
  "llama.attention.head_count": { type: "u32", value: 2 },
  "llama.attention.layer_norm_rms_epsilon": { type: "f32", value: 1e-5 },
};

async function compare(name: string, meta: Record<string, GgufMetaValue>, texts: string[]) {
  const file = path.join(tmp, `${name}.gguf`);
  fs.writeFileSync(file, encodeGguf({ metadata: { ...ARCH, ...meta }, tensors: [] }));
  const tok = tokenizerFromGguf(readGguf(file));
  const model = await llama.loadModel({ modelPath: file, vocabOnly: true });
  try {
    for (const t of texts) {
      const theirs = Array.from(model.tokenize(t, true));
      expect(tok.encode(t, { parseSpecial: true }), `${name}: ${JSON.stringify(t)}`).toEqual(theirs);
      expect(tok.encode(t, { parseSpecial: false }), `${name} (plain): ${JSON.stringify(t)}`).toEqual(Array.from(model.tokenize(t, false)));
      if (theirs.length) expect(tok.decode(theirs)).toBe(model.detokenize(theirs, true));
    }
  } finally {
    await model.dispose();
  }
  return tok;
}

describe("GGUF tokenizers match llama.cpp", () => {
  it("SentencePiece (tokenizer.ggml.model = llama): score-ordered merges, byte fallback, space prefix after specials", async () => {
    const tokens = ["<unk>", "<s>", "</s>"];
    const types = [2, 3, 3];
    const scores = [0, 0, 0];
    for (let b = 0; b < 256; b++) {
      tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
      types.push(6);
      scores.push(0);
    }
    const pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "a", "t", "s", "n", "i", "▁h", "he", "ll", "▁he", "▁hell", "▁hello", "lo", "▁w", "or", "ld", "▁wor", "▁world", "at", "▁t", "th", "▁th", "▁that", "in", "is", "▁is", "▁a", "es", "st", "▁test", "é", "▁é"];
    pieces.forEach((p, i) => {
      tokens.push(p);
      types.push(1);
      scores.push(-i);
    });
    tokens.push("<|user|>");
    types.push(3);
    scores.push(0);
    const tok = await compare(
      "spm",
      {
        "tokenizer.ggml.model": { type: "string", value: "llama" },
        "tokenizer.ggml.tokens": { type: "array", itemType: "string", value: tokens },
        "tokenizer.ggml.scores": { type: "array", itemType: "f32", value: scores },
        "tokenizer.ggml.token_type": { type: "array", itemType: "i32", value: types },
        "tokenizer.ggml.bos_token_id": { type: "u32", value: 1 },
        "tokenizer.ggml.eos_token_id": { type: "u32", value: 2 },
        "tokenizer.ggml.unknown_token_id": { type: "u32", value: 0 },
      },
      ["hello world", "that is a test", " hello  world ", "héllo wörld 🙂", "hello<|user|>world", "<|user|> hello", "", "x", "\n\tthat\n"],
    );
    // SentencePiece vocabularies add BOS by default (llama.cpp's rule when the GGUF does not say).
    expect(tok.encode("hello", { addSpecial: true })[0]).toBe(1);
  });

  // A byte-level vocabulary whose merges cross the boundaries the pre-tokenizers disagree on
  // (digit runs, spaces, newlines, contractions), so a wrong regex shows up as different ids.
  const bytes = bytesToUnicode();
  const merges = ["1 2", "12 3", "4 5", "Ġ t", "Ġt h", "Ċ Ċ", "Ġ Ġ", "' s", "D O", "DO N", "' T", "h e", "he l", "hel l", "hell o", "Ġ h"];
  const bpeTokens = [...bytes];
  for (const m of merges) bpeTokens.push(m.replace(" ", ""));
  // A whole word no merge sequence reaches: only Llama 3's ignore_merges emits it as one token.
  bpeTokens.push("Ġhello");
  bpeTokens.push("<|im_start|>", "<|im_end|>");
  const bpeTypes = bpeTokens.map((_, i) => (i >= bpeTokens.length - 2 ? 3 : 1));
  const TEXTS = ["12345 6789", "the  thing\n\n\nthen", "DON'T it's they'S", "Ġ literal", "hello hello", "a\r\n\r\nb", "x  \n  y", "<|im_start|>hello<|im_end|>", "naïve 🙂 ok"];
  for (const pre of ["llama-bpe", "qwen2", "smollm", "gpt-2"]) {
    it(`byte-level BPE with pre-tokenizer "${pre}"`, async () => {
      await compare(`bpe-${pre}`, {
        "tokenizer.ggml.model": { type: "string", value: "gpt2" },
        "tokenizer.ggml.pre": { type: "string", value: pre },
        "tokenizer.ggml.tokens": { type: "array", itemType: "string", value: bpeTokens },
        "tokenizer.ggml.token_type": { type: "array", itemType: "i32", value: bpeTypes },
        "tokenizer.ggml.merges": { type: "array", itemType: "string", value: merges },
        "tokenizer.ggml.bos_token_id": { type: "u32", value: bpeTokens.length - 2 },
        "tokenizer.ggml.eos_token_id": { type: "u32", value: bpeTokens.length - 1 },
        "tokenizer.ggml.add_bos_token": { type: "bool", value: false },
      }, TEXTS);
    });
  }
});
