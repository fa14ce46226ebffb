// vLLM (and clawloop's embedded engine, which speaks vLLM's dialect): runtime LoRA loading through
// `POST /v1/load_lora_adapter {lora_name, lora_path}` and `/v1/unload_lora_adapter {lora_name}`.
// Every version gets its own name and is never loaded in place (`load_inplace` makes running
// requests switch weights mid-completion, and vLLM's prefix cache is keyed by name). vLLM reads
// the PEFT files of the version directory; the embedded engine its `adapter.gguf`.
// vLLM needs `--enable-lora --max-lora-rank R` and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True.
import { callOk, call, errorMessage, serverRoot, type HttpOptions } from "./http.js";
import { chatProbe, discoverBase, listModels, scoreByPromptLogprobs } from "./openai.js";
import { DriverError, type AdapterDriver, type DriverCapabilities, type ProbeResult } from "./types.js";

export interface DriverOptions extends HttpOptions {
  /** The server's URL (with or without /v1). */
  url: string;
  /** The base model's served name; null: discovered from the server. */
  baseModel?: string | null;
  /** Prefix of served adapter names. */
  prefix?: string;
  /** Timeout of a load (reading the adapter, creating a context). */
  loadTimeoutMs?: number;
}

export class VllmDriver implements AdapterDriver {
  readonly capabilities: DriverCapabilities;
  protected readonly root: string;
  private base: string | null;

  constructor(
    protected readonly opts: DriverOptions,
    readonly kind: "vllm" | "clawloop" = "vllm",
  ) {
    this.root = serverRoot(opts.url);
    this.base = opts.baseModel ?? null;
    this.capabilities = { runtimeLoad: true, score: true, format: kind === "clawloop" ? "gguf" : "peft" };
  }

  async baseModel(): Promise<string> {
    this.base ??= await discoverBase(this.root, this.opts);
    return this.base;
  }

  servedName(version: string): string {
    return `${this.opts.prefix ?? "clawloop"}-${version}`;
  }

  requestModel(servedName: string): string {
    return servedName;
  }

  async load(servedName: string, dir: string): Promise<void> {
    const a = await call(this.root, "POST", "/v1/load_lora_adapter", { lora_name: servedName, lora_path: dir }, { ...this.opts, timeoutMs: this.opts.loadTimeoutMs ?? 300_000 });
    if (a.status === 200) return;
    const message = errorMessage(a);
    // A restart of the sidecar finds its versions still loaded; the name means these exact weights.
    if (a.status === 400 && /already been loaded/i.test(message)) return;
    if (a.status === 404 && /^not found$/i.test(message.trim())) {
      throw new DriverError(
        this.kind === "vllm"
          ? "vLLM does not expose /v1/load_lora_adapter: start it with --enable-lora and the environment variable VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
          : "the server does not expose /v1/load_lora_adapter",
        404,
        true,
      );
    }
    throw new DriverError(`loading ${servedName} from ${dir} → ${a.status}: ${message}`, a.status);
  }

  async unload(servedName: string): Promise<void> {
    const a = await call(this.root, "POST", "/v1/unload_lora_adapter", { lora_name: servedName }, this.opts);
    if (a.status === 200 || a.status === 404) return;
    throw new DriverError(`unloading ${servedName} → ${a.status}: ${errorMessage(a)}`, a.status);
  }

  async loaded(): Promise<string[]> {
    return (await listModels(this.root, this.opts)).filter((m) => m.parent).map((m) => m.id);
  }

  probe(model: string): Promise<ProbeResult> {
    return chatProbe(this.root, model, this.opts);
  }

  score(model: string, promptIds: number[], responseIds: number[]): Promise<number[]> {
    return scoreByPromptLogprobs(this.root, model, promptIds, responseIds, this.opts);
  }
}

/** `callOk` re-exported for drivers that extend this one. */
export { callOk };
