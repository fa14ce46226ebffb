// The labeled set's format (fixtures/judge-cases/cases.jsonl): one JSON object per line,
// {"request", "action": {"content", "tool_calls"}, "next_state": {"kind", "text"}, "label", "hint"}.
import fs from "node:fs";
import { z } from "zod";
import type { Reward } from "../core/index.js";
import { argumentsText, type JudgeInput } from "./input.js";

// Tool calls in either the compact form {name, arguments} or OpenAI's {type, function: {name, arguments}}.
const toolCallSchema = z.union([
  z.object({ name: z.string().min(1), arguments: z.unknown().optional() }),
  z.object({ function: z.object({ name: z.string().min(1), arguments: z.unknown().optional() }) }),
]);

export const judgeCaseSchema = z.object({
  request: z.string(),
  action: z.object({
    content: z.string().nullable().default(""),
    tool_calls: z.array(toolCallSchema).default([]),
  }),
  next_state: z.object({
    kind: z.enum(["user_message", "tool_result", "tool_error", "feedback"]),
    text: z.string(),
  }),
  label: z.union([z.literal(1), z.literal(-1), z.literal(0)]),
  hint: z.boolean(),
});

export type JudgeCase = z.infer<typeof judgeCaseSchema>;

export class CasesError extends Error {}

/** Parses JSONL text; every bad line is reported with its number, and none is silently skipped. */
export function parseCases(text: string, source = "cases"): JudgeCase[] {
  const cases: JudgeCase[] = [];
  const errors: string[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      errors.push(`${source}:${i + 1}: not JSON (${(err as Error).message})`);
      return;
    }
    const parsed = judgeCaseSchema.safeParse(value);
    if (!parsed.success) {
      errors.push(`${source}:${i + 1}: ${parsed.error.issues.map((x) => `${x.path.join(".") || "(line)"}: ${x.message}`).join("; ")}`);
      return;
    }
    cases.push(parsed.data);
  });
  if (errors.length) throw new CasesError(`${errors.length} invalid case(s):\n${errors.slice(0, 20).join("\n")}`);
  if (!cases.length) throw new CasesError(`${source}: no cases`);
  return cases;
}

export function loadCases(file: string): JudgeCase[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new CasesError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return parseCases(text, file);
}

export function caseLabel(c: JudgeCase): Reward {
  return c.label;
}

/** A case as the judges see a recorded turn. */
export function inputFromCase(c: JudgeCase): JudgeInput {
  return {
    request: c.request,
    context: "",
    action: {
      content: c.action.content ?? "",
      toolCalls: c.action.tool_calls.map((tc) =>
        "function" in tc
          ? { name: tc.function.name, arguments: argumentsText(tc.function.arguments) }
          : { name: tc.name, arguments: argumentsText(tc.arguments) },
      ),
    },
    evidence: [
      {
        id: null,
        kind: c.next_state.kind,
        text: c.next_state.text,
        score: null,
        exitCode: null,
        toolName: c.action.tool_calls.length === 1 ? ("function" in c.action.tool_calls[0]! ? c.action.tool_calls[0]!.function.name : c.action.tool_calls[0]!.name) : null,
      },
    ],
  };
}
