// ONNX Runtime sessions for the engine's programs, on the requested execution provider. ONNX
// Runtime does not fall back by itself when a provider fails to load (`['webgpu', 'cpu']` throws),
// so a failing GPU provider is caught here, reported once, and CPU is used from then on.
import os from "node:os";
import * as ort from "onnxruntime-node";

export type ExecutionProvider = "cpu" | "cuda" | "webgpu" | "dml";
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ["cpu", "cuda", "webgpu", "dml"];

export interface RuntimeOptions {
  executionProvider?: ExecutionProvider;
  /** Intra-op threads; default: all cores. */
  threads?: number;
  /** Told once when the requested provider cannot be used. */
  onFallback?: (message: string) => void;
  /**
   * Graph optimization level. "all" for real work; float64 graphs need "basic", because the
   * extended fusions (QuickGelu for x·sigmoid(x), …) have float32 kernels only.
   */
  optimization?: "basic" | "all";
  /**
   * Write ONNX Runtime's per-node profile (Chrome trace JSON) of every session to files starting
   * with this prefix; `Runtime.endProfiling()` flushes them. For finding where a step's time goes.
   */
  profileFilePrefix?: string;
}

export class Runtime {
  readonly requested: ExecutionProvider;
  /** The provider sessions actually run on. */
  provider: ExecutionProvider;
  /** Why the requested provider is not used, when it is not. */
  fallbackReason: string | null = null;
  readonly threads: number;
  private readonly optimization: "basic" | "all";
  private readonly onFallback: (message: string) => void;
  private readonly profileFilePrefix: string | undefined;
  private readonly profiled: ort.InferenceSession[] = [];

  constructor(opts: RuntimeOptions = {}) {
    this.requested = opts.executionProvider ?? "cpu";
    if (!EXECUTION_PROVIDERS.includes(this.requested)) {
      throw new Error(`unknown execution provider "${String(this.requested)}" (expected one of ${EXECUTION_PROVIDERS.join(", ")})`);
    }
    this.provider = this.requested;
    this.threads = opts.threads ?? Math.max(1, os.availableParallelism());
    this.optimization = opts.optimization ?? "all";
    this.onFallback = opts.onFallback ?? ((m) => process.stderr.write(`clawloop: ${m}\n`));
    this.profileFilePrefix = opts.profileFilePrefix;
    if (this.requested !== "cpu") {
      const listed = ort.listSupportedBackends().find((b) => b.name === this.requested);
      if (!listed) this.fallBack(`this onnxruntime-node build has no "${this.requested}" execution provider`);
    }
  }

  private fallBack(reason: string): void {
    this.fallbackReason = reason;
    this.provider = "cpu";
    this.onFallback(`execution provider "${this.requested}" is unavailable (${reason}); falling back to CPU`);
  }

  private options(provider: ExecutionProvider): ort.InferenceSession.SessionOptions {
    return {
      executionProviders: [provider],
      intraOpNumThreads: this.threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: this.optimization,
      enableCpuMemArena: true,
      enableMemPattern: true,
      logSeverityLevel: 3,
      ...(this.profileFilePrefix ? { enableProfiling: true, profileFilePrefix: this.profileFilePrefix } : {}),
    };
  }

  /** Ends profiling of every session created so far (each writes its trace file). */
  endProfiling(): void {
    for (const s of this.profiled.splice(0)) s.endProfiling();
  }

  async createSession(bytes: Uint8Array): Promise<ort.InferenceSession> {
    const session = await this.create(bytes);
    if (this.profileFilePrefix) this.profiled.push(session);
    return session;
  }

  private async create(bytes: Uint8Array): Promise<ort.InferenceSession> {
    if (this.provider !== "cpu") {
      try {
        return await ort.InferenceSession.create(bytes, this.options(this.provider));
      } catch (e) {
        this.fallBack(firstLine(e));
      }
    }
    return ort.InferenceSession.create(bytes, this.options("cpu"));
  }
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0]!.trim();
}

export { ort };
