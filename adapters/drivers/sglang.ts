// SGLang: `POST /load_lora_adapter {lora_name, lora_path}` and `/unload_lora_adapter {lora_name}`,
// both answering `{success, error_message, loaded_adapters}`. A name cannot be reloaded (unload
// first), and an unload drops the name at once while running requests finish on the old weights,
// so versions get their own names. OpenAI endpoints select an adapter with
// `model: "<base>:<adapter>"`. Scoring uses the native `/generate` with `input_ids` and
// `return_logprob` from the start of the response. SGLang must be started with `--enable-lora`,
// `--max-lora-rank R` and `--lora-target-modules all` (otherwise later adapters must be "smaller"
// than the ones given at start).
import { call, errorMessage, serverRoot } from "./http.js";
import { chatProbe, listModels } from "./openai.js";
import { DriverError, type AdapterDriver, type DriverCapabilities, type ProbeResult } from "./types.js";
import type { DriverOptions } from "./vllm.js";

interface SglangAnswer {
  success?: boolean;
  error_message?: string;
  loaded_adapters?: Record<string, unknown>;
}

export class SglangDriver implements AdapterDriver {
  readonly kind = "sglang" as const;
  readonly capabilities: DriverCapabilities = { runtimeLoad: true, score: true, format: "peft" };
  private readonly root: string;
  private base: string | null;

  constructor(private readonly opts: DriverOptions) {
    this.root = serverRoot(opts.url);
    this.base = opts.baseModel ?? null;
  }

  async baseModel(): Promise<string> {
    if (this.base) return this.base;
    const models = await listModels(this.root, this.opts);
    if (!models.length) throw new DriverError("SGLang lists no model in /v1/models; set adapters.baseModel");
    this.base = models[0]!.id;
    return this.base;
  }

  servedName(version: string): string {
    return `${this.opts.prefix ?? "clawloop"}-${version}`;
  }

  requestModel(servedName: string, base: string): string {
    return `${base}:${servedName}`;
  }

  async load(servedName: string, dir: string): Promise<void> {
    const a = await call(this.root, "POST", "/load_lora_adapter", { lora_name: servedName, lora_path: dir }, { ...this.opts, timeoutMs: this.opts.loadTimeoutMs ?? 300_000 });
    const body = (a.json ?? {}) as SglangAnswer;
    if (a.status === 200 && body.success !== false) return;
    const message = body.error_message || errorMessage(a);
    if (/already exists/i.test(message) && body.loaded_adapters && servedName in body.loaded_adapters) return;
    if (a.status === 404) throw new DriverError("SGLang does not expose /load_lora_adapter: start it with --enable-lora (and --max-lora-rank, --lora-target-modules all)", 404, true);
    throw new DriverError(`loading ${servedName} from ${dir} → ${a.status}: ${message}`, a.status);
  }

  async unload(servedName: string): Promise<void> {
    const a = await call(this.root, "POST", "/unload_lora_adapter", { lora_name: servedName }, this.opts);
    const body = (a.json ?? {}) as SglangAnswer;
    if (a.status === 200 && body.success !== false) return;
    const message = body.error_message || errorMessage(a);
    if (body.loaded_adapters && !(servedName in body.loaded_adapters)) return;
    throw new DriverError(`unloading ${servedName} → ${a.status}: ${message}`, a.status);
  }

  async loaded(): Promise<string[] | null> {
    // SGLang reports its adapters only in load/unload answers; none of its GET endpoints lists them reliably.
    return null;
  }

  probe(model: string): Promise<ProbeResult> {
    return chatProbe(this.root, model, this.opts);
  }

  /** `/generate` with `input_ids`, no new tokens, log-probs of the input from the response on. */
  async score(model: string, promptIds: number[], responseIds: number[]): Promise<number[]> {
    const adapter = model.includes(":") ? model.slice(model.indexOf(":") + 1) : null;
    const a = await call(
      this.root,
      "POST",
      "/generate",
      {
        input_ids: [...promptIds, ...responseIds],
        sampling_params: { max_new_tokens: 0, temperature: 1 },
        return_logprob: true,
        logprob_start_len: promptIds.length,
        lora_path: adapter,
      },
      this.opts,
    );
    if (a.status !== 200) throw new DriverError(`scoring under ${model}: /generate → ${a.status}: ${errorMessage(a)}`, a.status);
    const rows = (a.json as { meta_info?: { input_token_logprobs?: [number | null, number, unknown][] } } | null)?.meta_info?.input_token_logprobs;
    if (!Array.isArray(rows)) throw new DriverError(`scoring under ${model}: no meta_info.input_token_logprobs in the answer`);
    // The offset of the first entry differs between SGLang versions: align on the token ids.
    const scored = rows.filter((r) => typeof r[0] === "number");
    const tail = scored.slice(-responseIds.length);
    if (tail.length !== responseIds.length || tail.some((r, i) => r[1] !== responseIds[i])) {
      throw new DriverError(`scoring under ${model}: input_token_logprobs do not end with the response tokens`);
    }
    return tail.map((r) => r[0] as number);
  }
}
