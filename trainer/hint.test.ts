import { describe, expect, it } from "vitest";
import type { ChatMessage } from "../core/index.js";
import { appendHint, flattenContent } from "./hint.js";

describe("appendHint", () => {
  it("appends OpenClaw-RL's block to the last user message, leaving the input untouched", () => {
    const messages: ChatMessage[] = [
      { role: "system", content: "be brief" },
      { role: "user", content: "first" },
      { role: "assistant", content: "a" },
      { role: "user", content: "second" },
      { role: "tool", content: "tool output", tool_call_id: "c1" },
    ];
    const copy = structuredClone(messages);
    const out = appendHint(messages, "Check the file first.");
    expect(out[3]!.content).toBe("second\n\n[user's hint / instruction]\nCheck the file first.");
    expect(out.filter((_, i) => i !== 3)).toEqual(messages.filter((_, i) => i !== 3));
    expect(messages).toEqual(copy);
  });

  it("flattens content parts and falls back to the last message without a user turn", () => {
    const parts: ChatMessage = { role: "user", content: [{ type: "text", text: "look" }, { type: "image_url", image_url: {} }, { type: "text", text: "here" }] };
    expect(flattenContent(parts.content)).toBe("look\nhere");
    expect(appendHint([parts], "h")[0]!.content).toBe("look\nhere\n\n[user's hint / instruction]\nh");
    expect(appendHint([{ role: "system", content: null }], "h")[0]!.content).toBe("\n\n[user's hint / instruction]\nh");
    expect(() => appendHint([], "h")).toThrow(/empty/);
  });
});
