// The simulated user's agent, as the OpenClaw plugin would run it: chat calls through the sidecar
// tagged with the plugin's headers, and the user's next messages reported as next-state events.
import type { ChatMessage, ClawloopEvent } from "../core/index.js";
import { requestJson } from "./http.js";

export interface CallTags {
  sessionId: string;
  runId: string;
  callId: string;
}

export interface Sampling {
  temperature: number;
  topP: number;
  maxTokens: number;
}

export interface ChatReply {
  content: string;
  finishReason: string | null;
  /** The model that answered, as the sidecar reports it (`clawloop-v000003` once an adapter is live). */
  model: string;
  ms: number;
}

interface ChatCompletion {
  model: string;
  choices: { message: { content: string | null }; finish_reason: string | null }[];
}

export class SidecarClient {
  constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  /** The base model's name, as the server lists it first. */
  async baseModel(): Promise<string> {
    const models = await requestJson<{ data: { id: string }[] }>("GET", `${this.url}/v1/models`);
    const id = models.data[0]?.id;
    if (!id) throw new Error(`${this.url}/v1/models lists no model`);
    return id;
  }

  /** One main-line model call of an agent turn, tagged as the plugin tags it. */
  async chat(model: string, messages: ChatMessage[], sampling: Sampling, tags: CallTags): Promise<ChatReply> {
    const started = Date.now();
    const res = await requestJson<ChatCompletion>(
      "POST",
      `${this.url}/v1/chat/completions`,
      { model, messages, temperature: sampling.temperature, top_p: sampling.topP, max_tokens: sampling.maxTokens },
      { "x-session-id": tags.sessionId, "x-openclaw-run-id": tags.runId, "x-openclaw-call-id": tags.callId, "x-turn-type": "main" },
    );
    const choice = res.choices[0];
    if (!choice) throw new Error("the sidecar answered with no choice");
    return { content: choice.message.content ?? "", finishReason: choice.finish_reason, model: res.model, ms: Date.now() - started };
  }

  /** Next-state events, as the plugin sends them. */
  async events(events: ClawloopEvent[]): Promise<void> {
    await requestJson("POST", `${this.url}/clawloop/v1/events`, events, this.auth());
  }

  /** A control API read (`/clawloop/v1/...`). */
  get<T>(pathAndQuery: string): Promise<T> {
    return requestJson<T>("GET", `${this.url}${pathAndQuery}`, undefined, this.auth());
  }

  private auth(): Record<string, string> {
    return { authorization: `Bearer ${this.token}` };
  }
}
