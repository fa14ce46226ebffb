// Housekeeping calls: requests that are not the agent's work (chat titles, tags, follow-up
// suggestions, filename slugs, compaction summaries) and must never be trained on. A rule marks a
// request as `side` when every condition it sets holds: a regex on the model name, on the first
// system message, on a request header (`name: regex`), or on the last user message (with client
// decorations removed: normalize.ts). Users add rules in `sidecar.sideRules`; the built-in ones below
// cover the default prompts of well-known clients and are switched off with
// `sidecar.builtinSideRules: false`.
import type { IncomingHttpHeaders } from "node:http";
import type { ChatMessage, Config, TurnRequest } from "../../core/index.js";
import { contentText, userText } from "./normalize.js";

export type SideRule = Config["sidecar"]["sideRules"][number];

export interface NamedSideRule extends Partial<SideRule> {
  /** Why the rule exists (shown in logs and docs). */
  name: string;
}

/**
 * Default prompts of well-known clients' housekeeping calls. Sources: Open WebUI
 * `backend/open_webui/config.py` (DEFAULT_*_PROMPT_TEMPLATE; sent as the only user message, or as
 * the system message for tool selection) and OpenClaw 2026.9.6 (`hooks/llm-slug-generator.ts`, the
 * conversation-label generator's system prompt, compaction's SUMMARIZATION_SYSTEM_PROMPT, the
 * default HEARTBEAT_PROMPT, the memory-flush prompt) and Aider (`aider/prompts.py`: `summarize`, `commit_system`).
 */
export const BUILTIN_SIDE_RULES: readonly NamedSideRule[] = [
  { name: "Open WebUI: title generation", userPrompt: "^### Task:\\s*Generate a concise, 3-5 word title" },
  { name: "Open WebUI: tag generation", userPrompt: "^### Task:\\s*Generate 1-3 broad tags" },
  { name: "Open WebUI: follow-up suggestions", userPrompt: "^### Task:\\s*Suggest 3-5 relevant follow-up questions" },
  { name: "Open WebUI: search/retrieval query generation", userPrompt: "^### Task:\\s*Analyze the chat history to determine the necessity of generating search queries" },
  { name: "Open WebUI: autocompletion", userPrompt: "^### Task:\\s*You are an autocompletion system" },
  { name: "Open WebUI: image prompt generation", userPrompt: "^### Task:\\s*Generate a detailed prompt for an? image generation task" },
  { name: "Open WebUI: emoji generation", userPrompt: "^Your task is to reflect the speaker's likely facial expression through a fitting emoji" },
  { name: "Open WebUI: mixture-of-agents synthesis", userPrompt: "^You have been provided with a set of responses from various models to the latest user query" },
  { name: "Open WebUI: a customized task template (### Task: … <chat_history>)", userPrompt: "^### Task:[\\s\\S]*<chat_history>[\\s\\S]*</chat_history>" },
  { name: "Open WebUI: tool selection (non-native function calling)", systemPrompt: "^Available Tools: [\\s\\S]*Your task is to choose and return the correct tool\\(s\\)" },
  { name: "OpenClaw: session-memory filename slug", userPrompt: "Based on this conversation, generate a short 1-2 word filename slug" },
  { name: "OpenClaw: session title / conversation label", systemPrompt: "You are labeling the supplied message, not participating in its conversation" },
  { name: "OpenClaw: compaction summary", systemPrompt: "^You are a context summarization assistant\\." },
  { name: "OpenClaw: heartbeat", userPrompt: "^Follow the heartbeat monitor scratch context when provided\\." },
  { name: "OpenClaw: pre-compaction memory flush", userPrompt: "Save important context from this session to the daily memory file\\.\\s*STRICT RULES:" },
  { name: "Aider: chat history summary", systemPrompt: "^\\*Briefly\\* summarize this partial conversation about programming" },
  { name: "Aider: commit message", systemPrompt: "^You are an expert software engineer\\.\\s*Review the provided context and diffs which are about to be committed" },
];

export interface SideRuleInput {
  request: TurnRequest | null;
  model: string;
  headers: IncomingHttpHeaders;
}

interface CompiledRule {
  name: string;
  model: RegExp | null;
  systemPrompt: RegExp | null;
  userPrompt: RegExp | null;
  header: { name: string; value: RegExp } | null;
}

function regex(source: string, where: string): RegExp {
  try {
    return new RegExp(source);
  } catch (err) {
    throw new Error(`sidecar.sideRules: ${where} "${source}" is not a valid regex: ${(err as Error).message}`);
  }
}

function compile(rule: NamedSideRule): CompiledRule {
  let header: CompiledRule["header"] = null;
  if (rule.header) {
    const colon = rule.header.indexOf(":");
    if (colon <= 0) throw new Error(`sidecar.sideRules: header rule "${rule.header}" is not "name: regex"`);
    header = { name: rule.header.slice(0, colon).trim().toLowerCase(), value: regex(rule.header.slice(colon + 1).trim(), "header") };
  }
  return {
    name: rule.name,
    model: rule.model ? regex(rule.model, "model") : null,
    systemPrompt: rule.systemPrompt ? regex(rule.systemPrompt, "systemPrompt") : null,
    userPrompt: rule.userPrompt ? regex(rule.userPrompt, "userPrompt") : null,
    header,
  };
}

function firstSystemText(messages: readonly ChatMessage[] | undefined): string | null {
  const m = messages?.find((x) => x && (x.role === "system" || x.role === "developer"));
  return m ? contentText(m.content) : null;
}

function lastUserText(messages: readonly ChatMessage[] | undefined): string | null {
  if (!messages) return null;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m?.role !== "user") continue;
    const text = userText(contentText(m.content));
    if (text) return text;
  }
  return null;
}

export class SideRules {
  private readonly rules: CompiledRule[];
  /** System-prompt rule results by system text: clients resend the same (large) system prompt. */
  private readonly systemResults = new Map<string, boolean[]>();

  /** Throws on a rule that is not valid (a bad regex, a header rule without a colon). */
  constructor(userRules: readonly SideRule[] = [], builtins = false) {
    this.rules = [
      ...userRules.map((r, i) => compile({ ...r, name: `sidecar.sideRules[${i}]` })),
      ...(builtins ? BUILTIN_SIDE_RULES.map(compile) : []),
    ];
  }

  get size(): number {
    return this.rules.length;
  }

  /** The name of the first rule the request matches, or null. A rule with no conditions matches nothing. */
  match(input: SideRuleInput): string | null {
    if (this.rules.length === 0) return null;
    const messages = input.request?.messages;
    let system: string | null | undefined;
    let user: string | null | undefined;
    for (const rule of this.rules) {
      if (!rule.model && !rule.systemPrompt && !rule.userPrompt && !rule.header) continue;
      if (rule.model && !rule.model.test(input.model)) continue;
      if (rule.systemPrompt) {
        system ??= firstSystemText(messages);
        if (system === null || !this.systemMatches(system)[this.rules.indexOf(rule)]) continue;
      }
      if (rule.userPrompt) {
        user ??= lastUserText(messages);
        if (user === null || !rule.userPrompt.test(user)) continue;
      }
      if (rule.header) {
        const v = input.headers[rule.header.name];
        const s = Array.isArray(v) ? v.join(",") : v;
        if (s === undefined || !rule.header.value.test(s)) continue;
      }
      return rule.name;
    }
    return null;
  }

  private systemMatches(system: string): boolean[] {
    let r = this.systemResults.get(system);
    if (!r) {
      r = this.rules.map((rule) => rule.systemPrompt?.test(system) ?? false);
      this.systemResults.set(system, r);
      if (this.systemResults.size > 32) this.systemResults.delete(this.systemResults.keys().next().value!);
    }
    return r;
  }
}
