// The offline sample format, one JSON object per line:
//   {"messages": [...], "response": "...", "reward": 1|-1|0, "hint": "..."}
// `hint` is optional. `response` may also be an assistant message object
// (`{"content": ..., "tool_calls": [...], "reasoning_content": ...}`) for replies that call tools;
// optional `id` names the sample and `tools` carries the request's tool definitions, which the
// chat template renders. `clawloop export` writes exactly this, so export → train round-trips.
import { z } from "zod";
import type { ChatMessage, Reward, ToolCall } from "../core/index.js";
import type { Exchange } from "./samples.js";

const toolCall = z.looseObject({
  id: z.string(),
  type: z.literal("function").default("function"),
  function: z.looseObject({ name: z.string(), arguments: z.string() }),
});

const message = z.looseObject({
  role: z.string().min(1),
  content: z.union([z.string(), z.array(z.looseObject({ type: z.string() })), z.null()]).default(null),
});

const reply = z.union([
  z.string(),
  z.looseObject({
    content: z.string().nullish(),
    tool_calls: z.array(toolCall).nullish(),
    reasoning_content: z.string().nullish(),
  }),
]);

export const sampleLineSchema = z.object({
  id: z.string().min(1).optional(),
  messages: z.array(message).min(1),
  tools: z.array(z.unknown()).optional(),
  response: reply,
  reward: z.union([z.literal(1), z.literal(-1), z.literal(0)]),
  hint: z.string().nullish(),
});

export type SampleLine = z.input<typeof sampleLineSchema>;

export interface LineError {
  /** 1-based line number. */
  line: number;
  message: string;
}

export interface ParsedLines {
  exchanges: (Exchange & { line: number })[];
  errors: LineError[];
}

/** Parses every line it can; each bad line becomes an error naming the line and the problem. */
export function parseSampleLines(text: string): ParsedLines {
  const exchanges: ParsedLines["exchanges"] = [];
  const errors: LineError[] = [];
  const ids = new Set<string>();
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim()) return;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (err) {
      errors.push({ line, message: `not valid JSON: ${(err as Error).message}` });
      return;
    }
    const parsed = sampleLineSchema.safeParse(json);
    if (!parsed.success) {
      const why = parsed.error.issues.map((is) => `${is.path.join(".") || "(line)"}: ${is.message}`).join("; ");
      errors.push({ line, message: why });
      return;
    }
    const v = parsed.data;
    const id = v.id ?? `line-${line}`;
    if (ids.has(id)) {
      errors.push({ line, message: `duplicate id "${id}"` });
      return;
    }
    ids.add(id);
    const r = typeof v.response === "string" ? { content: v.response } : v.response;
    exchanges.push({
      line,
      id,
      turnId: id,
      messages: v.messages as ChatMessage[],
      tools: v.tools,
      reply: {
        content: r.content ?? "",
        toolCalls: (r.tool_calls ?? []) as ToolCall[],
        reasoning: r.reasoning_content ?? null,
      },
      reward: v.reward as Reward,
      hint: v.hint ?? null,
    });
  });
  return { exchanges, errors };
}

/** One exchange as a line of the offline format. */
export function sampleLine(ex: Exchange): string {
  const { content, toolCalls, reasoning } = ex.reply;
  const response =
    toolCalls.length || reasoning
      ? { content, ...(toolCalls.length ? { tool_calls: toolCalls } : {}), ...(reasoning ? { reasoning_content: reasoning } : {}) }
      : content;
  const out: Record<string, unknown> = { id: ex.id, messages: ex.messages };
  if (ex.tools?.length) out.tools = ex.tools;
  out.response = response;
  out.reward = ex.reward;
  if (ex.hint) out.hint = ex.hint;
  return JSON.stringify(out);
}
