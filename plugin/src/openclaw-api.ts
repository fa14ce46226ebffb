// The slice of OpenClaw's plugin API (2026.9.x) this plugin uses, typed structurally.
// The plugin imports nothing at run time (OpenClaw is not a dependency of clawloop); these shapes
// follow `dist/plugin-entry-*.d.ts` of openclaw@2026.9.6. Fields we do not read are left out.

export interface PluginLogger {
  debug?: (msg: string) => void;
  info: (msg: string) => void;
  warn: (msg: string) => void;
  error: (msg: string) => void;
}

/** Agent-run hook context (`PluginHookAgentContext`). */
export interface AgentContext {
  runId?: string;
  agentId?: string;
  sessionKey?: string;
  sessionId?: string;
  /** `EmbeddedRunTrigger`: "cron" | "heartbeat" | "manual" | "memory" | "overflow" | "user". */
  trigger?: string;
  channel?: string;
  senderId?: string;
}

export interface ToolContext {
  runId?: string;
  sessionKey?: string;
  sessionId?: string;
  toolName: string;
  toolCallId?: string;
}

export interface SessionContext {
  sessionId: string;
  sessionKey?: string;
}

export interface BeforePromptBuildEvent {
  prompt: string;
  currentUserMessage?: string;
  messages: unknown[];
}

export interface LlmInputEvent {
  runId: string;
  sessionId: string;
  prompt: string;
  historyMessages: unknown[];
}

export interface BeforeAgentReplyEvent {
  cleanedBody: string;
}

export interface BeforeAgentReplyResult {
  handled: boolean;
  reply?: { text?: string };
  reason?: string;
}

export interface AfterToolCallEvent {
  toolName: string;
  params: Record<string, unknown>;
  runId?: string;
  toolCallId?: string;
  result?: unknown;
  error?: string;
  durationMs?: number;
}

export interface ModelCallEndedEvent {
  runId: string;
  callId: string;
  sessionKey?: string;
  sessionId?: string;
  provider: string;
  model: string;
  outcome: "completed" | "error";
  errorCategory?: string;
  failureKind?: string;
}

export interface BeforeMessageWriteEvent {
  message: { role?: string; content?: unknown; [k: string]: unknown };
  sessionKey?: string;
}

export interface SessionEndEvent {
  sessionId: string;
  sessionKey?: string;
  reason?: string;
}

export interface BeforeResetEvent {
  reason?: string;
}

export interface CommandContext {
  senderId?: string;
  channel: string;
  isAuthorizedSender: boolean;
  sessionKey?: string;
  sessionId?: string;
  args?: string;
  commandBody: string;
}

export interface CommandResult {
  text?: string;
  continueAgent?: boolean;
}

/** What the stream function receives (`@openclaw/ai` stream options). */
export interface StreamOptions {
  sessionId?: string;
  /** `<runId>:model:<n>` */
  requestId?: string;
  headers?: Record<string, string>;
  onPayload?: (payload: unknown, model: unknown) => unknown;
  [k: string]: unknown;
}

export type StreamFn = (model: unknown, context: unknown, options?: StreamOptions) => unknown;

export interface WrapStreamContext {
  provider: string;
  modelId: string;
  streamFn?: StreamFn;
}

export interface ProviderPlugin {
  id: string;
  label: string;
  auth: unknown[];
  wrapStreamFn?: (ctx: WrapStreamContext) => StreamFn | undefined;
}

export interface ServiceDefinition {
  id: string;
  start: (ctx: { stateDir?: string; logger?: PluginLogger }) => void | Promise<void>;
  stop?: () => void | Promise<void>;
}

export interface CommandDefinition {
  name: string;
  description: string;
  acceptsArgs?: boolean;
  handler: (ctx: CommandContext) => CommandResult | Promise<CommandResult>;
}

export interface HookOptions {
  priority?: number;
}

export interface PluginApi {
  id: string;
  registrationMode?: string;
  pluginConfig?: Record<string, unknown>;
  logger?: PluginLogger;
  runtime?: { state?: { resolveStateDir?: (env?: NodeJS.ProcessEnv) => string } };
  on: (hook: string, handler: (event: never, ctx: never) => unknown, opts?: HookOptions) => void;
  registerProvider: (provider: ProviderPlugin) => void;
  registerCommand: (command: CommandDefinition) => void;
  registerService: (service: ServiceDefinition) => void;
}
