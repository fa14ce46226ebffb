// sidecar/inference: sessions and next states inferred from untagged traffic (agents without the
// plugin), and the side rules that keep housekeeping calls out of training.
export { SessionInference, type SessionInferenceOptions, type InferenceOutcome, type NextStateSink, type FinishedCall } from "./inferrer.js";
export { SideRules, BUILTIN_SIDE_RULES, type SideRule, type NamedSideRule, type SideRuleInput } from "./side-rules.js";
export { normalizeMessages, responseMessage, ConversationHash, CLIENT_DECORATIONS, type NormMessage, type ConvKey } from "./normalize.js";
export { toolOutcome, type ToolOutcome } from "./tool-outcome.js";
export { nextStatesOf } from "./next-states.js";
export { TurnIndex, INDEX_FILE } from "./turn-index.js";
