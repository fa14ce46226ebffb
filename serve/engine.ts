// The embedded engine: one GGUF model in llama.cpp (node-llama-cpp), served as a base "slot" plus
// one slot per loaded LoRA adapter. A slot is a llama.cpp context (LoRA is fixed when a context is
// created) with `parallel` sequences; requests lease a slot by model name and borrow a sequence,
// waiting in line when all are busy. Unloading an adapter removes its name at once but disposes its
// context only when its last request has finished, so a hot swap never fails a request.
import fs from "node:fs";
import path from "node:path";
import { getLlama, LlamaLogLevel, readGgufFileInfo, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";
import { silentLogger, type Logger } from "../core/index.js";
import { AbortedError, HttpError, badRequest, notFound } from "./errors.js";
import { assertSupported, releaseLora } from "./llama-internals.js";

export interface EngineOptions {
  /** Path of the GGUF model. */
  model: string;
  /** Name clients use in `model`; default: the file name without `.gguf`. */
  servedModelName?: string | null;
  /** Tokens per sequence (each parallel request gets this much room). */
  contextSize?: number;
  /** Requests served at once per slot; more wait in line. */
  parallel?: number;
  /** CPU threads; 0: the cores useful for math (physical cores), not node-llama-cpp's oversubscribing default. */
  threads?: number;
  /** GPU backend for node-llama-cpp: "auto" picks one when a prebuilt binary fits, false forces CPU. */
  gpu?: "auto" | false;
  /** Reuse an existing node-llama-cpp instance (e.g. when `clawloop up` runs the engine in-process). */
  llama?: Llama;
  logger?: Logger;
}

export interface AdapterInfo {
  name: string;
  /** What the client passed as `lora_path`. */
  path: string;
  /** The GGUF file actually loaded. */
  file: string;
  loadedAt: string;
  /** Requests running or waiting on it. */
  active: number;
}

/** A loaded model or adapter: a context and its pool of sequences. */
export class Slot {
  /** All sequences of the context, busy or not. */
  readonly sequences: readonly LlamaContextSequence[];
  private readonly free: LlamaContextSequence[];
  private readonly waiters: { resolve: (s: LlamaContextSequence) => void; reject: (e: Error) => void; signal: AbortSignal; onAbort: () => void }[] = [];
  /** Leases (requests) holding the slot. */
  leases = 0;
  retired = false;
  readonly loadedAt = new Date().toISOString();
  private disposed: Promise<void> | null = null;

  constructor(
    readonly name: string,
    readonly adapter: { path: string; file: string } | null,
    readonly context: LlamaContext,
    private readonly onDisposed: (slot: Slot) => Promise<void>,
  ) {
    const all: LlamaContextSequence[] = [];
    for (let i = 0; i < context.totalSequences; i++) all.push(context.getSequence());
    this.sequences = all;
    this.free = [...all];
  }

  /**
   * Borrows a sequence, preferring the idle one whose cached tokens share the longest prefix with
   * `prompt` (multi-turn agents resend the whole conversation; the shared part is not recomputed).
   */
  acquireSequence(prompt: readonly Token[], signal: AbortSignal): Promise<LlamaContextSequence> {
    if (signal.aborted) return Promise.reject(new AbortedError());
    if (this.free.length > 0) {
      let best = 0;
      let bestLen = -1;
      for (let i = 0; i < this.free.length; i++) {
        const n = commonPrefix(this.free[i]!.contextTokens, prompt);
        if (n > bestLen) {
          best = i;
          bestLen = n;
        }
      }
      return Promise.resolve(this.free.splice(best, 1)[0]!);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const at = this.waiters.indexOf(waiter);
          if (at >= 0) this.waiters.splice(at, 1);
          reject(new AbortedError());
        },
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  releaseSequence(seq: LlamaContextSequence): void {
    const next = this.waiters.shift();
    if (next) {
      next.signal.removeEventListener("abort", next.onAbort);
      next.resolve(seq);
      return;
    }
    this.free.push(seq);
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Sequences not lent to a request. */
  get idle(): number {
    return this.free.length;
  }

  /** Disposes the context once; further calls wait for the same disposal. */
  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      for (const w of this.waiters.splice(0)) w.reject(new HttpError(503, `model '${this.name}' was unloaded`, "ServiceUnavailableError"));
      await this.context.dispose();
      await this.onDisposed(this);
    })();
    return this.disposed;
  }
}

export function commonPrefix(a: readonly Token[], b: readonly Token[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** A request's hold on a slot; `release()` exactly once when the request is over. */
export interface Lease {
  slot: Slot;
  release(): void;
}

const ADAPTER_FILE = "adapter.gguf";

/** `lora_path` → the GGUF file: the path itself, or `adapter.gguf` / the only `.gguf` in a directory. */
export function resolveAdapterFile(loraPath: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(loraPath);
  } catch {
    throw notFound(`No adapter found at '${loraPath}'.`);
  }
  if (stat.isFile()) return path.resolve(loraPath);
  const preferred = path.join(loraPath, ADAPTER_FILE);
  if (fs.existsSync(preferred)) return path.resolve(preferred);
  const ggufs = fs.readdirSync(loraPath).filter((f) => f.endsWith(".gguf"));
  if (ggufs.length === 1) return path.resolve(loraPath, ggufs[0]!);
  if (ggufs.length === 0) throw notFound(`No adapter found at '${loraPath}': no ${ADAPTER_FILE} (llama.cpp needs a GGUF LoRA; PEFT safetensors alone cannot be served).`);
  throw badRequest(`'${loraPath}' holds several .gguf files and no ${ADAPTER_FILE}; pass the file itself.`);
}

export class Engine {
  readonly name: string;
  readonly modelPath: string;
  /** The model's chat template (GGUF `tokenizer.chat_template`), null when it has none. */
  readonly chatTemplate: string | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly contextSize: number;
  readonly vocabSize: number;
  readonly parallel: number;
  readonly threads: number;
  readonly createdAt = Math.floor(Date.now() / 1000);
  private readonly slots = new Map<string, Slot>();
  /** Adapter slots unloaded but still finishing requests. */
  private readonly retiring = new Set<Slot>();
  /** Loads in progress, by name, so a second load of the same name is refused rather than raced. */
  private readonly loading = new Set<string>();
  private readonly tokenTextCache = new Map<number, string>();
  /** Counters since start (for status pages and tests). */
  readonly stats = { generations: 0, generatedTokens: 0, aborted: 0, failed: 0 };
  private closed = false;

  private constructor(
    readonly llama: Llama,
    readonly model: LlamaModel,
    opts: Required<Pick<EngineOptions, "contextSize" | "parallel">> & { name: string; path: string; threads: number },
    private readonly log: Logger,
    private readonly ownsLlama: boolean,
  ) {
    this.name = opts.name;
    this.modelPath = opts.path;
    this.contextSize = opts.contextSize;
    this.parallel = opts.parallel;
    this.threads = opts.threads;
    const template = (model.fileInfo.metadata as { tokenizer?: { chat_template?: unknown } }).tokenizer?.chat_template;
    this.chatTemplate = typeof template === "string" && template ? template : null;
    const tokens = (model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { tokens?: unknown[] } } }).tokenizer?.ggml?.tokens;
    this.vocabSize = tokens?.length ?? 0;
    this.bosToken = model.tokens.bosString ?? null;
    this.eosToken = model.tokens.eosString ?? null;
  }

  static async load(opts: EngineOptions): Promise<Engine> {
    const log = opts.logger ?? silentLogger;
    const modelPath = path.resolve(opts.model);
    if (!fs.existsSync(modelPath)) throw new Error(`model file not found: ${modelPath}`);
    const info = await readGgufFileInfo(modelPath, { readTensorInfo: false }).catch((err: unknown) => {
      throw new Error(`${modelPath} is not a readable GGUF file: ${(err as Error).message}`);
    });
    const general = (info.metadata as { general?: { type?: string } }).general;
    if (general?.type === "adapter") throw new Error(`${modelPath} is a LoRA adapter, not a model; pass it with --lora`);
    const ownsLlama = !opts.llama;
    const llama =
      opts.llama ??
      (await getLlama({
        build: "never",
        gpu: opts.gpu ?? "auto",
        logLevel: LlamaLogLevel.warn,
        logger: (level, message) => {
          const text = message.trim();
          if (text) log.debug({ llamaLevel: level }, text);
        },
      }));
    const threads = opts.threads && opts.threads > 0 ? opts.threads : llama.cpuMathCores;
    // node-llama-cpp's default budget is max(cores, 4), which oversubscribes small machines.
    if (ownsLlama) llama.maxThreads = threads;
    const model = await llama.loadModel({ modelPath });
    const contextSize = Math.min(opts.contextSize ?? 4096, model.trainContextSize);
    const name = opts.servedModelName || path.basename(modelPath).replace(/\.gguf$/i, "");
    const engine = new Engine(llama, model, { contextSize, parallel: opts.parallel ?? 4, name, path: modelPath, threads }, log, ownsLlama);
    const base = await engine.createSlot(name, null);
    assertSupported(model, base.sequences[0]!);
    engine.slots.set(name, base);
    log.info({ model: modelPath, served: name, contextSize, parallel: engine.parallel, threads, gpu: llama.gpu }, "model loaded");
    return engine;
  }

  private async createSlot(name: string, adapter: { path: string; file: string } | null): Promise<Slot> {
    const context = await this.model.createContext({
      contextSize: this.contextSize,
      sequences: this.parallel,
      threads: this.threads,
      ...(adapter ? { lora: { adapters: [{ filePath: adapter.file }] } } : {}),
    });
    return new Slot(name, adapter, context, async (slot) => {
      this.retiring.delete(slot);
      // The weights stay in the model until freed; another slot may still use the same file.
      const file = slot.adapter?.file;
      if (file && ![...this.slots.values(), ...this.retiring].some((s) => s.adapter?.file === file)) {
        await releaseLora(this.model, file);
      }
    });
  }

  /** Holds the slot serving `model` (the base name, an adapter name, or empty for the base). */
  lease(model: string | null | undefined): Lease {
    if (this.closed) throw new HttpError(503, "the server is shutting down", "ServiceUnavailableError");
    const slot = this.slots.get(model || this.name);
    if (!slot) throw notFound(`The model \`${model}\` does not exist.`);
    slot.leases++;
    let released = false;
    return {
      slot,
      release: () => {
        if (released) return;
        released = true;
        slot.leases--;
        if (slot.retired && slot.leases === 0) void slot.dispose().catch((err: unknown) => this.log.error({ err }, "disposing an unloaded adapter failed"));
      },
    };
  }

  /** The slot serving `name` now (base or adapter), if any. */
  slot(name?: string | null): Slot | undefined {
    return this.slots.get(name || this.name);
  }

  adapters(): AdapterInfo[] {
    return [...this.slots.values()]
      .filter((s) => s.adapter)
      .map((s) => ({ name: s.name, path: s.adapter!.path, file: s.adapter!.file, loadedAt: s.loadedAt, active: s.leases }));
  }

  /** Slots unloaded but still finishing requests (for status and tests). */
  retiringCount(): number {
    return this.retiring.size;
  }

  /**
   * Loads a LoRA adapter under `name` (vLLM's `/v1/load_lora_adapter`). With `replace`, a loaded
   * adapter of that name is swapped: new requests get the new weights, running ones finish on the old.
   */
  async loadAdapter(name: string, loraPath: string, opts: { replace?: boolean } = {}): Promise<AdapterInfo> {
    if (!name || !loraPath) throw badRequest("Both 'lora_name' and 'lora_path' must be provided.");
    if (name === this.name) throw badRequest(`'${name}' is the base model's name; pick another lora_name.`);
    const existing = this.slots.get(name);
    if ((existing && !opts.replace) || this.loading.has(name)) {
      throw badRequest(`The lora adapter '${name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.`);
    }
    const file = resolveAdapterFile(loraPath);
    await this.checkAdapterFile(file);
    this.loading.add(name);
    try {
      let slot: Slot;
      try {
        slot = await this.createSlot(name, { path: loraPath, file });
      } catch (err) {
        await releaseLora(this.model, file).catch(() => undefined);
        throw badRequest(`Loading the adapter '${name}' from ${file} failed: ${(err as Error).message}`);
      }
      if (this.closed) {
        await slot.dispose();
        throw new HttpError(503, "the server is shutting down", "ServiceUnavailableError");
      }
      const old = this.slots.get(name);
      this.slots.set(name, slot);
      if (old) this.retire(old);
      this.log.info({ adapter: name, file }, "adapter loaded");
      return { name, path: loraPath, file, loadedAt: slot.loadedAt, active: 0 };
    } finally {
      this.loading.delete(name);
    }
  }

  /** Unloads an adapter: its name is gone at once, its context when its requests are done. */
  unloadAdapter(name: string): void {
    const slot = this.slots.get(name);
    if (!slot || !slot.adapter) {
      if (name === this.name) throw badRequest(`'${name}' is the base model and cannot be unloaded.`);
      throw notFound(`The lora adapter '${name}' cannot be found.`);
    }
    this.slots.delete(name);
    this.retire(slot);
    this.log.info({ adapter: name, running: slot.leases }, "adapter unloaded");
  }

  private retire(slot: Slot): void {
    slot.retired = true;
    this.retiring.add(slot);
    if (slot.leases === 0) void slot.dispose().catch((err: unknown) => this.log.error({ err }, "disposing an unloaded adapter failed"));
  }

  /** A clear 400 for files llama.cpp would reject (or crash on) before creating a context. */
  private async checkAdapterFile(file: string): Promise<void> {
    let md: { general?: { type?: string; architecture?: string }; adapter?: { type?: string } };
    try {
      md = (await readGgufFileInfo(file, { readTensorInfo: false })).metadata as typeof md;
    } catch (err) {
      throw badRequest(`${file} is not a readable GGUF file: ${(err as Error).message}`);
    }
    if (md.general?.type !== "adapter" || md.adapter?.type !== "lora") {
      throw badRequest(`${file} is not a GGUF LoRA adapter (general.type=${md.general?.type ?? "?"}, adapter.type=${md.adapter?.type ?? "?"}).`);
    }
    const arch = (this.model.fileInfo.metadata as { general?: { architecture?: string } }).general?.architecture;
    if (md.general.architecture !== arch) {
      throw badRequest(`${file} is an adapter for '${md.general.architecture}' but the model is '${arch}'.`);
    }
  }

  tokenize(text: string, opts: { addBos?: boolean; parseSpecial?: boolean } = {}): Token[] {
    const ids = this.model.tokenize(text, opts.parseSpecial ?? true);
    const bos = this.model.tokens.bos;
    if (opts.addBos && bos != null && this.model.tokens.shouldPrependBosToken && ids[0] !== bos) ids.unshift(bos);
    return ids;
  }

  detokenize(ids: readonly Token[], special = false, lastTokens?: readonly Token[]): string {
    return this.model.detokenize(ids, special, lastTokens);
  }

  /** One token's text as vLLM reports it in log-probs (special tokens spelled out). */
  tokenText(id: Token | number): string {
    let t = this.tokenTextCache.get(id);
    if (t === undefined) {
      t = this.model.detokenize([id as Token], true);
      this.tokenTextCache.set(id, t);
    }
    return t;
  }

  isEog(id: Token | number): boolean {
    return this.model.isEogToken(id as Token);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = [...this.slots.values(), ...this.retiring];
    this.slots.clear();
    await Promise.all(all.map((s) => s.dispose().catch(() => undefined)));
    await this.model.dispose();
    if (this.ownsLlama) await this.llama.dispose();
  }
}
