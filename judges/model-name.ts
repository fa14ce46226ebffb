// The judge model's name: configured, or discovered from the endpoint's `/v1/models` (the base
// model, not an adapter: vLLM lists adapters with a `parent`). Discovered once, then cached.
import { EndpointError, type OpenAIClient } from "./client.js";

export class ModelName {
  private cached: Promise<string> | null = null;

  constructor(
    private readonly client: OpenAIClient,
    private readonly configured: string | null,
  ) {}

  get(): Promise<string> {
    if (this.configured) return Promise.resolve(this.configured);
    this.cached ??= this.discover().catch((err: unknown) => {
      this.cached = null;
      throw err;
    });
    return this.cached;
  }

  private async discover(): Promise<string> {
    const models = await this.client.models();
    const base = models.find((m) => !m.parent) ?? models[0];
    if (!base?.id) {
      throw new EndpointError(`${this.client.baseUrl}/v1/models lists no model; set judge.model`, null, false);
    }
    return base.id;
  }
}
