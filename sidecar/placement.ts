// Where a model call belongs: which session, main line or side traffic, and how we know.
//
// This is a seam. Today calls are placed by their tags alone: a call with a session id is
// `tagged`; one without is `untagged`, side traffic in a session of its own. Traffic inference
// (a request whose messages extend an earlier turn's prompt + response continues that turn's
// session: DESIGN.md, "Turn tagging") plugs in as another `Placer`, returning `inferred` with the
// turn it continues as `parentTurnId`.
import type { IncomingHttpHeaders } from "node:http";
import type { Config, TurnRequest, TurnType } from "../core/index.js";
import type { Tags } from "./tagging.js";

export interface PlacementInput {
  /** The recorded call's id (used to name a session of its own). */
  turnId: string;
  tags: Tags;
  /** The parsed request, or null when the body was not a usable request. */
  request: TurnRequest | null;
  model: string;
  endpoint: "chat" | "completions";
  headers: IncomingHttpHeaders;
}

export interface Placement {
  sessionId: string;
  turnType: TurnType;
  placement: "tagged" | "inferred" | "untagged";
  parentTurnId: string | null;
}

export interface Placer {
  place(input: PlacementInput): Placement | Promise<Placement>;
}

type SideRule = Config["sidecar"]["sideRules"][number];

interface CompiledRule {
  model: RegExp | null;
  systemPrompt: RegExp | null;
  header: { name: string; value: RegExp } | null;
}

function compileRule(rule: SideRule): CompiledRule {
  let header: CompiledRule["header"] = null;
  if (rule.header) {
    const colon = rule.header.indexOf(":");
    if (colon <= 0) throw new Error(`sidecar.sideRules: header rule "${rule.header}" is not "name: regex"`);
    header = { name: rule.header.slice(0, colon).trim().toLowerCase(), value: new RegExp(rule.header.slice(colon + 1).trim()) };
  }
  return {
    model: rule.model ? new RegExp(rule.model) : null,
    systemPrompt: rule.systemPrompt ? new RegExp(rule.systemPrompt) : null,
    header,
  };
}

function firstSystemText(request: TurnRequest | null): string | null {
  const m = request?.messages?.find((x) => x.role === "system" || x.role === "developer");
  if (!m) return null;
  if (typeof m.content === "string") return m.content;
  if (Array.isArray(m.content)) return m.content.map((p) => (typeof p.text === "string" ? p.text : "")).join("");
  return null;
}

/** True when every condition a rule sets holds (a rule with no conditions matches nothing). */
function matches(rule: CompiledRule, input: PlacementInput): boolean {
  if (!rule.model && !rule.systemPrompt && !rule.header) return false;
  if (rule.model && !rule.model.test(input.model)) return false;
  if (rule.systemPrompt) {
    const sys = firstSystemText(input.request);
    if (sys === null || !rule.systemPrompt.test(sys)) return false;
  }
  if (rule.header) {
    const v = input.headers[rule.header.name];
    const s = Array.isArray(v) ? v.join(",") : v;
    if (s === undefined || !rule.header.value.test(s)) return false;
  }
  return true;
}

/** Places calls by their tags; configured side rules mark housekeeping calls as `side`. */
export class TagPlacer implements Placer {
  private readonly rules: CompiledRule[];

  constructor(sideRules: SideRule[] = []) {
    this.rules = sideRules.map(compileRule);
  }

  place(input: PlacementInput): Placement {
    const { tags } = input;
    const housekeeping = input.request === null || this.rules.some((r) => matches(r, input));
    if (tags.sessionId) {
      // A run id means clawloop's plugin tagged an agent call; OpenClaw-RL's default is side.
      const type = tags.turnType ?? (tags.runId ? "main" : "side");
      return { sessionId: tags.sessionId, turnType: housekeeping ? "side" : type, placement: "tagged", parentTurnId: null };
    }
    return { sessionId: `untagged-${input.turnId}`, turnType: "side", placement: "untagged", parentTurnId: null };
  }
}
