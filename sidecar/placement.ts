// Where a model call belongs: which session, main line or side traffic, and how we know.
//
// A call with a session id (plugin or OpenClaw-RL headers) is `tagged` and goes where its tags say.
// Untagged calls are placed by traffic inference (sidecar/inference: a request whose messages extend
// an earlier turn's prompt + response continues that turn's session, `inferred`, with that turn as
// `parentTurnId`); without inference, or where it does not apply, they are `untagged`: side traffic
// in a session of their own. Side rules (sidecar/inference/side-rules.ts) mark housekeeping calls
// as `side` whichever way they were placed.
import type { IncomingHttpHeaders } from "node:http";
import type { TurnRequest, TurnType } from "../core/index.js";
import { SideRules, type SideRule } from "./inference/side-rules.js";
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
  /** The session starts with this call (its first seq is 0, nothing to look up). */
  newSession?: boolean;
}

export interface Placer {
  place(input: PlacementInput): Placement | Promise<Placement>;
}

/** An untagged call in a session of its own, never trained on. */
export function untaggedPlacement(turnId: string): Placement {
  return { sessionId: `untagged-${turnId}`, turnType: "side", placement: "untagged", parentTurnId: null, newSession: true };
}

/** Places calls by their tags; side rules mark housekeeping calls as `side`. */
export class TagPlacer implements Placer {
  readonly rules: SideRules;

  /** `sideRules`: the configured rules, or a rule set built by the caller (with the built-ins). */
  constructor(sideRules: readonly SideRule[] | SideRules = []) {
    this.rules = sideRules instanceof SideRules ? sideRules : new SideRules(sideRules);
  }

  place(input: PlacementInput): Placement {
    const { tags } = input;
    if (!tags.sessionId) return untaggedPlacement(input.turnId);
    const housekeeping = input.request === null || this.rules.match(input) !== null;
    // A run id means clawloop's plugin tagged an agent call; OpenClaw-RL's default is side.
    const type = tags.turnType ?? (tags.runId ? "main" : "side");
    return { sessionId: tags.sessionId, turnType: housekeeping ? "side" : type, placement: "tagged", parentTurnId: null };
  }
}
