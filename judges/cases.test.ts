import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CasesError, inputFromCase, loadCases, parseCases } from "./cases.js";
import { RulesJudge } from "./rules.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CASES = path.join(ROOT, "fixtures/judge-cases/cases.jsonl");

describe("the labeled set", () => {
  const lines = fs.readFileSync(CASES, "utf8").split("\n").filter((l) => l.trim());
  const cases = loadCases(CASES);

  it("has at least 150 cases, one JSON object per line with exactly the documented keys", () => {
    expect(cases.length).toBeGreaterThanOrEqual(150);
    expect(cases.length).toBe(lines.length);
    for (const line of lines) {
      const o = JSON.parse(line) as Record<string, Record<string, unknown>>;
      expect(Object.keys(o).sort()).toEqual(["action", "hint", "label", "next_state", "request"]);
      expect(Object.keys(o.action!).sort()).toEqual(["content", "tool_calls"]);
      expect(Object.keys(o.next_state!).sort()).toEqual(["kind", "text"]);
    }
  });

  it("covers every next-state kind and every label", () => {
    const kinds = new Set(cases.map((c) => c.next_state.kind));
    expect([...kinds].sort()).toEqual(["feedback", "tool_error", "tool_result", "user_message"]);
    for (const label of [1, 0, -1]) expect(cases.filter((c) => c.label === label).length).toBeGreaterThanOrEqual(15);
    expect(cases.filter((c) => c.hint).length).toBeGreaterThanOrEqual(40);
    expect(cases.filter((c) => /ignore (all )?previous instructions|\\boxed/i.test(c.next_state.text)).length).toBeGreaterThanOrEqual(8);
  });

  it("the rules stay accurate on it (a regression guard, not a claim of accuracy on real traffic)", () => {
    const rules = new RulesJudge();
    let correct = 0;
    let hintBoth = 0;
    let hintPredicted = 0;
    let hintExpected = 0;
    for (const c of cases) {
      const v = rules.judge(inputFromCase(c));
      if ((v?.score ?? 0) === c.label) correct++;
      if (v?.hint) hintPredicted++;
      if (c.hint) hintExpected++;
      if (v?.hint && c.hint) hintBoth++;
    }
    expect(correct / cases.length).toBeGreaterThanOrEqual(0.9);
    expect(hintBoth / hintPredicted).toBeGreaterThanOrEqual(0.85);
    expect(hintBoth / hintExpected).toBeGreaterThanOrEqual(0.85);
  });
});

describe("parseCases", () => {
  it("reports every bad line by number and loses nothing silently", () => {
    const good = JSON.stringify({ request: "r", action: { content: "a", tool_calls: [] }, next_state: { kind: "user_message", text: "t" }, label: 1, hint: false });
    const text = [good, "{not json", JSON.stringify({ request: "r" }), good.replace('"label":1', '"label":2')].join("\n");
    expect(() => parseCases(text, "x.jsonl")).toThrow(CasesError);
    try {
      parseCases(text, "x.jsonl");
    } catch (err) {
      const msg = (err as Error).message;
      expect(msg).toContain("3 invalid case(s)");
      expect(msg).toContain("x.jsonl:2: not JSON");
      expect(msg).toContain("x.jsonl:3:");
      expect(msg).toContain("x.jsonl:4: label");
    }
  });

  it("accepts OpenAI-shaped tool calls as well as the compact form", () => {
    const c = parseCases(
      JSON.stringify({
        request: "r",
        action: { content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "exec", arguments: '{"command":"ls"}' } }] },
        next_state: { kind: "tool_result", text: "a b" },
        label: 1,
        hint: false,
      }),
    );
    expect(inputFromCase(c[0]!).action.toolCalls).toEqual([{ name: "exec", arguments: '{"command":"ls"}' }]);
  });

  it("refuses an empty file and a missing one with a clear error", () => {
    expect(() => parseCases("\n\n")).toThrow(/no cases/);
    expect(() => loadCases("/nonexistent/cases.jsonl")).toThrow(/cannot read/);
  });
});
