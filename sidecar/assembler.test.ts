// llama.cpp's log-prob entries as ids: taken only when they account for every generated token
// (see the top of assembler.ts; the real server's behaviour is in test/e2e/llama-server.test.ts).
import { describe, expect, it } from "vitest";
import { ResponseAssembler } from "./assembler.js";

const entry = (id: number) => ({ id, token: `t${id}`, bytes: [], logprob: -0.5, top_logprobs: [] });

function nonStreamed(ids: number[], completionTokens: number) {
  const a = new ResponseAssembler();
  a.addResponse({
    choices: [{ finish_reason: "stop", index: 0, message: { role: "assistant", content: "x" }, logprobs: { content: ids.map(entry) } }],
    usage: { completion_tokens: completionTokens, prompt_tokens: 3, total_tokens: 3 + completionTokens },
  });
  return a.result();
}

function streamedChat(ids: number[], predicted: number, finish: string) {
  const a = new ResponseAssembler();
  a.addChunk({ choices: [{ finish_reason: null, index: 0, delta: { role: "assistant", content: null } }] });
  for (const id of ids) a.addChunk({ choices: [{ finish_reason: null, index: 0, delta: { content: "x" }, logprobs: { content: [entry(id)] } }] });
  a.addChunk({ choices: [{ finish_reason: finish, index: 0, delta: {} }], timings: { predicted_n: predicted } });
  a.markDone();
  return a.result();
}

function streamedCompletion(ids: number[], predicted: number, finish: string) {
  const a = new ResponseAssembler();
  for (const id of ids) a.addChunk({ choices: [{ text: "x", index: 0, logprobs: { content: [entry(id)] }, finish_reason: null }] });
  a.addChunk({ choices: [{ text: "", index: 0, logprobs: null, finish_reason: finish }], usage: { completion_tokens: predicted, prompt_tokens: 1, total_tokens: predicted + 1 } });
  a.markDone();
  return a.result();
}

describe("llama.cpp log-prob entries as token ids", () => {
  it("takes them when there is one per generated token", () => {
    expect(nonStreamed([5, 6, 2], 3).completionTokenIds).toEqual([5, 6, 2]);
    expect(streamedCompletion([5, 6, 2], 3, "stop").completionTokenIds).toEqual([5, 6, 2]);
    expect(streamedChat([5, 6], 2, "length").completionTokenIds).toEqual([5, 6]);
  });

  it("takes a streamed chat's that lack only the textless last token of an answer that stopped", () => {
    const r = streamedChat([5, 6], 3, "stop");
    expect(r.completionTokenIds).toEqual([5, 6]);
    expect(r.completionLogprobs).toEqual([-0.5, -0.5]);
  });

  it("records none when tokens are missing (a character over several tokens, text held back)", () => {
    for (const r of [nonStreamed([230, 5430], 4), streamedChat([5, 6], 3, "length"), streamedChat([5], 3, "stop"), streamedCompletion([5, 6], 3, "stop")]) {
      expect(r.completionTokenIds).toBeNull();
      expect(r.completionLogprobs).toBeNull();
    }
  });

  it("leaves entries without a count alone, and ids of other servers untouched", () => {
    const a = new ResponseAssembler();
    a.addResponse({ choices: [{ index: 0, message: { content: "x" }, logprobs: { content: [entry(1), entry(2)] } }] });
    expect(a.result().completionTokenIds).toEqual([1, 2]);
    const v = new ResponseAssembler();
    v.addResponse({ choices: [{ index: 0, message: { content: "x" }, token_ids: [1, 2, 3] }], usage: { completion_tokens: 5, prompt_tokens: 1, total_tokens: 6 } });
    expect(v.result().completionTokenIds).toEqual([1, 2, 3]);
  });
});
