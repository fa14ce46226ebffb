// The shared vocabulary of clawloop. Every loop speaks in these types; none redefines them.

export type TurnType = "main" | "side";

/** How a recorded model call ended, from the proxy's point of view. */
export type TurnStatus = "ok" | "upstream_error" | "client_aborted" | "upstream_cut";

/** The model server behind the sidecar. `clawloop` is the embedded llama.cpp engine. */
export type UpstreamKind = "vllm" | "sglang" | "llamacpp" | "ollama" | "openai" | "clawloop";
export const UPSTREAM_KINDS: readonly UpstreamKind[] = ["vllm", "sglang", "llamacpp", "ollama", "openai", "clawloop"];

export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface ContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

/** An OpenAI chat message as clients send it; unknown fields are kept. */
export interface ChatMessage {
  role: "system" | "developer" | "user" | "assistant" | "tool" | string;
  content: string | ContentPart[] | null;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  reasoning_content?: string;
  [key: string]: unknown;
}

/** What the client asked for, minus anything clawloop added. */
export interface TurnRequest {
  messages?: ChatMessage[];
  /** `/v1/completions` prompt, as sent. */
  prompt?: unknown;
  tools?: unknown[];
  /** Every other body field (temperature, max_tokens, tool_choice, …). */
  params: Record<string, unknown>;
}

/** The assembled response of one model call (one choice: index 0). */
export interface TurnResponse {
  id: string | null;
  content: string;
  reasoning: string | null;
  toolCalls: ToolCall[];
  finishReason: string | null;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** One model call, as recorded by the sidecar. Immutable once written. */
export interface Turn {
  /** Unique id of the call: the plugin's call id when tagged, else generated. */
  id: string;
  sessionId: string;
  runId: string | null;
  callId: string | null;
  turnType: TurnType;
  /** 0-based position of this call in its session. */
  seq: number;
  endpoint: "chat" | "completions";
  /** `model` as the client sent it. */
  model: string;
  /** Adapter version that served the call (`v000003`), or null for the base model. */
  adapter: string | null;
  request: TurnRequest;
  response: TurnResponse | null;
  promptTokenIds: number[] | null;
  completionTokenIds: number[] | null;
  /** Behaviour-policy log-probs of `completionTokenIds`, same length. */
  completionLogprobs: number[] | null;
  usage: Usage | null;
  /** ISO-8601 time the request reached the sidecar. */
  startedAt: string;
  ttfbMs: number | null;
  totalMs: number;
  upstreamStatus: number | null;
  status: TurnStatus;
  error: string | null;
  traceparent: string | null;
  /** How the session placement was made: plugin headers, OpenClaw-RL headers, traffic inference, or none. */
  placement: "tagged" | "inferred" | "untagged";
  /** For inferred turns: the earlier turn this one continues. */
  parentTurnId: string | null;
}

export type NextStateKind =
  | "user_message"
  | "tool_result"
  | "tool_error"
  | "model_error"
  | "feedback"
  | "session_end";

/** What happened after a turn. Linked to the turn it follows once that turn is known. */
export interface NextState {
  /** Event id; events are idempotent by id. */
  id: string;
  kind: NextStateKind;
  sessionId: string;
  /** The agent turn (run) this follows; its last model call. */
  forRunId: string | null;
  /** The single model call this follows, where known. */
  forCallId: string | null;
  /** The resolved turn id, null until the turn it follows has been seen. */
  turnId: string | null;
  text: string | null;
  /** Explicit feedback: +1 or −1. */
  score: number | null;
  toolName: string | null;
  toolCallId: string | null;
  /** Process exit code reported by a tool, where one was. */
  exitCode: number | null;
  /** When the event happened (from the sender). */
  at: string;
  /** When the sidecar received it. */
  receivedAt: string;
  source: "plugin" | "inferred" | "api";
}

export type Reward = -1 | 0 | 1;
export type JudgeMethod = "rules" | "prm" | "logprob" | "feedback";

/** The judge's verdict on one main-line turn. One per turn; its id is the turn id. */
export interface Judgment {
  id: string;
  turnId: string;
  sessionId: string;
  score: Reward;
  method: JudgeMethod;
  /** Individual votes (PRM), null entries were invalid answers. */
  votes: (Reward | null)[];
  /** Raw judge answers, one per vote. */
  raw: string[];
  hint: string | null;
  /** The next-state events this judgment read. */
  nextStateIds: string[];
  judgeModel: string | null;
  /** Tokens spent (prompt + completion) and wall time. */
  costTokens: number;
  costMs: number;
  createdAt: string;
}

/** A training sample built from a judged turn. */
export interface Sample {
  id: string;
  turnId: string;
  promptTokenIds: number[];
  responseTokenIds: number[];
  /** Behaviour-policy log-probs of the response tokens (null: recompute with the current policy). */
  behaviourLogprobs: number[] | null;
  reward: Reward;
  hint: string | null;
  /** Prompt ids with the hint appended to the last user message (teacher context). */
  teacherPromptTokenIds: number[] | null;
}

export type AdapterStatus = "candidate" | "live" | "rejected" | "retired";

/** `manifest.json` of an adapter version directory. Written once, never changed. */
export interface AdapterManifest {
  version: number;
  /** `v000003` */
  name: string;
  parent: string | null;
  baseModel: string;
  baseModelHash: string;
  step: number;
  sampleCount: number;
  /** Turn ids trained on in the step that made this version. */
  sampleIds: string[];
  rank: number;
  alpha: number;
  targetModules: string[];
  createdAt: string;
  /** File name → sha256 hex. */
  files: Record<string, string>;
}

/** An adapter version as the store knows it: the manifest plus the switchboard's view. */
export interface AdapterVersion {
  /** The version name, `v000003`. */
  id: string;
  version: number;
  dir: string;
  manifest: AdapterManifest;
  status: AdapterStatus;
  statusReason: string | null;
  pinned: boolean;
  loadedAt: string | null;
  liveAt: string | null;
  retiredAt: string | null;
}

export type TrainMode = "rl" | "opd" | "combined";

/** Metrics of one optimizer step; its id is the adapter version it produced. */
export interface TrainStep {
  id: string;
  step: number;
  version: string;
  mode: TrainMode;
  loss: number;
  lossRl: number;
  lossOpd: number;
  klToBase: number | null;
  meanReward: number;
  meanAbsAdvantage: number;
  gradNorm: number;
  tokens: number;
  samples: number;
  sampleIds: string[];
  lr: number;
  durationMs: number;
  /** Mean |log π_server − log π_engine| over response tokens the server returned log-probs for (null: none did). */
  behaviourMismatch: number | null;
  createdAt: string;
}

/** Table name → row type. */
export interface Tables {
  turns: Turn;
  next_states: NextState;
  judgments: Judgment;
  adapters: AdapterVersion;
  train_steps: TrainStep;
}
export type TableName = keyof Tables;
export const TABLE_NAMES: readonly TableName[] = ["turns", "next_states", "judgments", "adapters", "train_steps"];
