import { describe, expect, it } from "vitest";
import type { TurnRequest } from "../../core/index.js";
import { SideRules } from "./side-rules.js";

const req = (messages: TurnRequest["messages"]): TurnRequest => ({ messages, params: {} });
const input = (messages: TurnRequest["messages"], model = "m", headers: Record<string, string> = {}) => ({ request: req(messages), model, headers });

// Open WebUI's default title template (backend/open_webui/config.py), filled in as it sends it.
const OPEN_WEBUI_TITLE = `### Task:
Generate a concise, 3-5 word title with an emoji summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
### Output:
JSON format: { "title": "your concise title here" }
### Chat History:
<chat_history>
USER: how do I bake bread?
ASSISTANT: Mix flour, water, salt and yeast...
</chat_history>`;

describe("SideRules", () => {
  it("knows well-known housekeeping prompts, and only with the built-ins on", () => {
    const on = new SideRules([], true);
    expect(on.match(input([{ role: "user", content: OPEN_WEBUI_TITLE }]))).toBe("Open WebUI: title generation");
    expect(on.match(input([{ role: "user", content: OPEN_WEBUI_TITLE.replace("Generate a concise, 3-5 word title with an emoji", "Write a witty title") }]))).toMatch(/customized task template/);
    expect(
      on.match(
        input([
          { role: "user", content: '[Sat 2026-11-21 10:23 UTC] Based on this conversation, generate a short 1-2 word filename slug (lowercase, hyphen-separated, no file extension).\n\nConversation summary:\n...' },
        ]),
      ),
    ).toBe("OpenClaw: session-memory filename slug");
    expect(on.match(input([{ role: "system", content: "You are a context summarization assistant. Your task is to read a conversation" }, { role: "user", content: "..." }]))).toBe(
      "OpenClaw: compaction summary",
    );
    expect(
      on.match(
        input([
          { role: "user", content: "[Sat 2026-11-21 10:00 UTC] Follow the heartbeat monitor scratch context when provided. Recurring tasks are automations. If nothing needs attention, reply NO_REPLY." },
        ]),
      ),
    ).toBe("OpenClaw: heartbeat");
    expect(on.match(input([{ role: "user", content: "Generate a concise, 3-5 word title for my essay about bread" }]))).toBeNull();
    expect(new SideRules([], false).match(input([{ role: "user", content: OPEN_WEBUI_TITLE }]))).toBeNull();
  });

  it("matches user rules by model, system prompt, last user message and header, all conditions together", () => {
    const rules = new SideRules([
      { model: "^title-", systemPrompt: null, header: null, userPrompt: null },
      { model: null, systemPrompt: null, header: "x-task: ^(title|tags)$", userPrompt: null },
      { model: "^big$", systemPrompt: "^Summarize", header: null, userPrompt: null },
      { model: null, systemPrompt: null, header: null, userPrompt: null },
    ]);
    expect(rules.match(input([{ role: "user", content: "x" }], "title-mini"))).toBe("sidecar.sideRules[0]");
    expect(rules.match(input([{ role: "user", content: "x" }], "m", { "x-task": "tags" }))).toBe("sidecar.sideRules[1]");
    expect(rules.match(input([{ role: "system", content: "Summarize this" }, { role: "user", content: "x" }], "big"))).toBe("sidecar.sideRules[2]");
    expect(rules.match(input([{ role: "system", content: "Summarize this" }, { role: "user", content: "x" }], "small"))).toBeNull();
    expect(rules.match(input([{ role: "user", content: "x" }]))).toBeNull();
  });

  it("refuses rules that cannot work, with the rule in the message", () => {
    expect(() => new SideRules([{ model: "(", systemPrompt: null, header: null, userPrompt: null }])).toThrow(/model "\(" is not a valid regex/);
    expect(() => new SideRules([{ model: null, systemPrompt: null, header: "no-colon", userPrompt: null }])).toThrow(/not "name: regex"/);
  });
});
