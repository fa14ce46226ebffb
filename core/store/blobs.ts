// Content-addressed storage of what turns repeat. An agent resends its system prompt, its tool
// schemas and the whole conversation so far on every model call (OpenClaw: ~40 KB of prompt and
// tools, ~10k prompt token ids, per call), so a `turns` row keeps only what is new: each large
// message, the tool list and a completions prompt go to the internal `blobs` table once, keyed by
// the hash of their JSON text, and the prompt's token ids go there in fixed chunks (a shared prefix
// gives identical chunks). The row keeps the rest (small messages inline, the last partial chunk of
// ids) and a `blob_refs` column saying where each blob goes back. Readers never see any of this:
// the store puts turns back together before returning them.
import { createHash } from "node:crypto";
import type { ChatMessage, Turn, TurnRequest } from "../types.js";

/** A message, tool list or prompt whose JSON text is at least this long is stored as a blob. */
export const BLOB_MIN_CHARS = 1024;
/**
 * Prompt token ids per chunk. A prompt shorter than this keeps its ids inline, and so does the tail
 * of a longer one: smaller chunks keep less in the row (which LanceDB's writer converts per row)
 * at the price of more references.
 */
export const ID_CHUNK = 512;

export type BlobKind = "json" | "ids";

/** A row of the internal `blobs` table. Immutable: its id is the hash of its content. */
export interface BlobRow {
  id: string;
  kind: BlobKind;
  /** JSON text (kind `json`). */
  text: string | null;
  /** Token ids (kind `ids`). */
  ids: number[] | null;
}

/** Where a turn's blobs go back (the `blob_refs` column). */
export interface BlobRefs {
  /** Message index → blob id. */
  m?: Record<string, string>;
  /** `request.tools`. */
  t?: string;
  /** `request.prompt`. */
  p?: string;
  /** Leading chunks of `promptTokenIds`, in order; the row holds the ids after them. */
  ids?: string[];
}

function digest(kind: BlobKind, data: string | Uint8Array): string {
  // 128 bits of SHA-256: collisions are out of reach even for content an attacker writes.
  return `${kind === "json" ? "j" : "i"}-${createHash("sha256").update(data).digest("hex").slice(0, 32)}`;
}

export function jsonBlobId(text: string): string {
  return digest("json", text);
}

export function idsBlobId(ids: ArrayLike<number>): string {
  return int32BlobId(Int32Array.from(ids as ArrayLike<number>));
}

function int32BlobId(a: Int32Array): string {
  return digest("ids", new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

/**
 * Remembers the blob ids of recent JSON texts, so content seen again (the same system prompt, call
 * after call) is neither hashed nor written again. Bounded by the characters it holds.
 */
export class BlobIdCache {
  private readonly map = new Map<string, string>();
  private chars = 0;

  constructor(private readonly maxChars = 8 * 1024 * 1024) {}

  get(text: string): string | undefined {
    const id = this.map.get(text);
    if (id !== undefined) {
      this.map.delete(text);
      this.map.set(text, id);
    }
    return id;
  }

  set(text: string, id: string): void {
    if (text.length > this.maxChars / 4) return;
    if (!this.map.has(text)) this.chars += text.length;
    this.map.delete(text);
    this.map.set(text, id);
    for (const k of this.map.keys()) {
      if (this.chars <= this.maxChars) break;
      this.map.delete(k);
      this.chars -= k.length;
    }
  }

  clear(): void {
    this.map.clear();
    this.chars = 0;
  }
}

/**
 * Remembers the blob ids of recent chunks of prompt token ids. An agent's prompts share long
 * prefixes, so most chunks of a call were seen in the one before; SHA-256 over 512 ids costs ~15 µs
 * a chunk (~0.3 ms for an OpenClaw-sized prompt), a lookup here ~1 µs. A chunk is found by a cheap
 * 32-bit hash and compared id by id, so an id is only reused for exactly the content it was computed
 * from. Bounded by the number of chunks (2 KB each).
 */
export class IdChunkCache {
  private readonly map = new Map<number, { ids: Int32Array; id: string }[]>();
  private size = 0;

  constructor(private readonly maxChunks = 1024) {}

  /** The blob id of `ids[from, from + ID_CHUNK)`. */
  idOf(ids: ArrayLike<number>, from: number): string {
    const key = fnv1a(ids, from);
    const bucket = this.map.get(key);
    if (bucket) {
      for (const e of bucket) {
        if (!sameIds(e.ids, ids, from)) continue;
        this.map.delete(key);
        this.map.set(key, bucket);
        return e.id;
      }
    }
    const chunk = Int32Array.from({ length: ID_CHUNK }, (_, i) => ids[from + i]!);
    const id = int32BlobId(chunk);
    this.map.delete(key);
    this.map.set(key, [...(bucket ?? []), { ids: chunk, id }]);
    this.size++;
    // Oldest keys first (Map order: a key re-set goes to the end).
    for (const [k, b] of this.map) {
      if (this.size <= this.maxChunks) break;
      this.map.delete(k);
      this.size -= b.length;
    }
    return id;
  }
}

function fnv1a(ids: ArrayLike<number>, from: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < from + ID_CHUNK; i++) h = Math.imul(h ^ (ids[i]! | 0), 0x01000193);
  return h >>> 0;
}

function sameIds(a: Int32Array, ids: ArrayLike<number>, from: number): boolean {
  for (let i = 0; i < ID_CHUNK; i++) if (a[i] !== ids[from + i]) return false;
  return true;
}

export interface SplitTurn {
  /** The turn as stored: blobbed parts replaced by null, `promptTokenIds` cut to its tail. */
  turn: Turn;
  refs: BlobRefs | null;
  /** Blobs the turn needs that `known` did not already hold. */
  blobs: BlobRow[];
}

/** A bounded set of recently used ids (least recently used dropped first). */
export class RecentIds {
  private readonly set = new Set<string>();

  constructor(private readonly limit = 50_000) {}

  has(id: string): boolean {
    if (!this.set.has(id)) return false;
    this.set.delete(id);
    this.set.add(id);
    return true;
  }

  add(id: string): void {
    this.set.delete(id);
    this.set.add(id);
    if (this.set.size > this.limit) this.set.delete(this.set.values().next().value!);
  }

  clear(): void {
    this.set.clear();
  }
}

/**
 * Splits a turn into the row to store and its blobs. `known` maps JSON texts to ids of blobs already
 * written (and remembers new ones); `knownIds` holds the ids blobs already written (and new ones);
 * `chunkIds`, if given, spares hashing chunks of token ids seen recently.
 */
export function splitTurn(turn: Turn, known: BlobIdCache, knownIds: RecentIds, chunkIds: IdChunkCache | null = null): SplitTurn {
  const refs: BlobRefs = {};
  const blobs: BlobRow[] = [];
  const blobOf = (value: unknown): string | null => {
    if (value === null || value === undefined) return null;
    const text = JSON.stringify(value);
    if (text.length < BLOB_MIN_CHARS) return null;
    let id = known.get(text);
    if (id === undefined) {
      id = jsonBlobId(text);
      known.set(text, id);
      blobs.push({ id, kind: "json", text, ids: null });
    }
    return id;
  };

  let request: TurnRequest = turn.request;
  const messages = request.messages;
  if (Array.isArray(messages)) {
    // What is new in this call (the messages after the last answer) and the latest user message
    // stay in the row: they are this call's own, and SQL filters on `request` can still find them.
    // System prompts are shared whatever their place.
    const lastAssistant = messages.findLastIndex((m) => m?.role === "assistant");
    const lastUser = messages.findLastIndex((m) => m?.role === "user");
    const shared = (m: ChatMessage) => m?.role === "system" || m?.role === "developer";
    let stored: (ChatMessage | null)[] | null = null;
    messages.forEach((m, i) => {
      if (i === lastUser || (i > lastAssistant && !shared(m))) return;
      const id = blobOf(m);
      if (id === null) return;
      stored ??= [...messages];
      stored[i] = null;
      (refs.m ??= {})[String(i)] = id;
    });
    if (stored) request = { ...request, messages: stored as ChatMessage[] };
  }
  // Blobbed fields stay in place as null, so the request keeps its key order when put back.
  const tools = blobOf(request.tools);
  if (tools !== null) {
    refs.t = tools;
    request = { ...request, tools: null as unknown as unknown[] };
  }
  const prompt = blobOf(request.prompt);
  if (prompt !== null) {
    refs.p = prompt;
    request = { ...request, prompt: null };
  }

  let promptTokenIds = turn.promptTokenIds;
  if (promptTokenIds && promptTokenIds.length >= ID_CHUNK) {
    const full = promptTokenIds.length - (promptTokenIds.length % ID_CHUNK);
    refs.ids = [];
    for (let at = 0; at < full; at += ID_CHUNK) {
      const id = chunkIds ? chunkIds.idOf(promptTokenIds, at) : idsBlobId(promptTokenIds.slice(at, at + ID_CHUNK));
      refs.ids.push(id);
      if (knownIds.has(id)) continue;
      knownIds.add(id);
      blobs.push({ id, kind: "ids", text: null, ids: promptTokenIds.slice(at, at + ID_CHUNK) });
    }
    promptTokenIds = promptTokenIds.slice(full);
  }

  const any = refs.m !== undefined || refs.t !== undefined || refs.p !== undefined || refs.ids !== undefined;
  if (!any) return { turn, refs: null, blobs };
  return { turn: { ...turn, request, promptTokenIds }, refs, blobs };
}

/** The blob ids a stored turn needs. */
export function refIds(refs: BlobRefs): string[] {
  return [...Object.values(refs.m ?? {}), ...(refs.t ? [refs.t] : []), ...(refs.p ? [refs.p] : []), ...(refs.ids ?? [])];
}

/** Puts a stored turn back together. Throws if a blob it needs is missing. */
export function joinTurn(stored: Turn, refs: BlobRefs, blob: (id: string) => BlobRow | undefined): Turn {
  const need = (id: string): BlobRow => {
    const b = blob(id);
    if (!b) throw new Error(`turn ${stored.id}: blob ${id} is missing from the store`);
    return b;
  };
  const json = (id: string): unknown => JSON.parse(need(id).text ?? "null");
  const request: TurnRequest = { ...stored.request };
  if (refs.m) {
    const messages = [...(request.messages ?? [])];
    for (const [i, id] of Object.entries(refs.m)) messages[Number(i)] = json(id) as ChatMessage;
    request.messages = messages;
  }
  if (refs.t) request.tools = json(refs.t) as unknown[];
  if (refs.p) request.prompt = json(refs.p);
  let promptTokenIds = stored.promptTokenIds;
  if (refs.ids) {
    const out: number[] = [];
    for (const id of refs.ids) for (const x of need(id).ids ?? []) out.push(x);
    for (const x of promptTokenIds ?? []) out.push(x);
    promptTokenIds = out;
  }
  return { ...stored, request, promptTokenIds };
}
