import { describe, expect, it } from "vitest";
import type { Turn } from "../types.js";
import { makeTurn } from "../../test/support/rows.js";
import { BLOB_MIN_CHARS, BlobIdCache, ID_CHUNK, IdChunkCache, idsBlobId, joinTurn, RecentIds, refIds, splitTurn, type BlobRow } from "./blobs.js";

const SYSTEM = "You are a personal assistant running inside OpenClaw. ".repeat(100);
const TOOLS = Array.from({ length: 6 }, (_, i) => ({ type: "function", function: { name: `tool_${i}`, description: "Reads files. ".repeat(20) } }));

function bigTurn(i: number, over: Partial<Turn> = {}): Turn {
  return makeTurn(i, {
    request: {
      params: { temperature: 0.2, stream: true },
      messages: [
        { role: "system", content: SYSTEM },
        { role: "user", content: `question ${i}` },
      ],
      tools: TOOLS,
    },
    promptTokenIds: Array.from({ length: ID_CHUNK * 2 + 7 }, (_, k) => (k < ID_CHUNK * 2 ? k : 100_000 + i * 10 + k)),
    ...over,
  });
}

function store() {
  const rows = new Map<string, BlobRow>();
  const known = new BlobIdCache();
  const ids = new RecentIds();
  return {
    rows,
    split(t: Turn) {
      const s = splitTurn(t, known, ids);
      for (const b of s.blobs) rows.set(b.id, b);
      return s;
    },
  };
}

describe("content-addressed turns", () => {
  it("stores large messages, tools and full chunks of prompt ids once, and puts the turn back exactly", () => {
    const s = store();
    const a = s.split(bigTurn(1));
    // The system prompt, the tool list and two chunks of ids; the short user message stays inline.
    expect(a.blobs.map((b) => b.kind).sort()).toEqual(["ids", "ids", "json", "json"]);
    expect(a.blobs.filter((b) => b.kind === "ids").every((b) => b.ids?.length === ID_CHUNK)).toBe(true);
    expect(a.refs?.m).toEqual({ "0": expect.stringMatching(/^j-[0-9a-f]{32}$/) });
    expect(a.turn.request.messages?.[1]).toEqual({ role: "user", content: "question 1" });
    expect(JSON.stringify(a.turn.request)).not.toContain("OpenClaw");
    expect(a.turn.promptTokenIds).toHaveLength(7);
    expect(joinTurn(a.turn, a.refs!, (id) => s.rows.get(id))).toEqual(bigTurn(1));
    // Same key order as sent, so the JSON is the same text too.
    expect(JSON.stringify(joinTurn(a.turn, a.refs!, (id) => s.rows.get(id)))).toBe(JSON.stringify(bigTurn(1)));

    // The next call shares everything but its question and the tail of its ids: no new blob.
    const b = s.split(bigTurn(2));
    expect(b.blobs).toEqual([]);
    expect(refIds(b.refs!).sort()).toEqual(refIds(a.refs!).sort());
    expect(joinTurn(b.turn, b.refs!, (id) => s.rows.get(id))).toEqual(bigTurn(2));
  });

  it("keeps the call's own messages in the row: the latest user message and what follows the last answer", () => {
    const s = store();
    const long = (t: string) => t.repeat(BLOB_MIN_CHARS);
    const t = makeTurn(5, {
      request: {
        params: {},
        messages: [
          { role: "system", content: SYSTEM },
          { role: "user", content: long("u") },
          { role: "assistant", content: long("a"), tool_calls: [] },
          { role: "user", content: long("v") },
          { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "read", arguments: "{}" } }] },
          { role: "tool", tool_call_id: "c1", content: long("t") },
        ],
      },
    });
    const r = s.split(t);
    // System prompt, the first question and the first answer are history; the latest question and
    // the tool result are this call's.
    expect(Object.keys(r.refs?.m ?? {})).toEqual(["0", "1", "2"]);
    expect(r.turn.request.messages?.[3]?.content).toBe(long("v"));
    expect(r.turn.request.messages?.[5]?.content).toBe(long("t"));
    expect(joinTurn(r.turn, r.refs!, (id) => s.rows.get(id))).toEqual(t);
  });

  it("leaves small turns untouched", () => {
    const s = store();
    const t = makeTurn(3);
    const r = s.split(t);
    expect(r).toEqual({ turn: t, refs: null, blobs: [] });
    expect(JSON.stringify(t.request).length).toBeLessThan(BLOB_MIN_CHARS);
  });

  it("blobs a completions prompt, and keeps ids of a prompt shorter than a chunk inline", () => {
    const s = store();
    const t = makeTurn(4, { endpoint: "completions", request: { prompt: "p".repeat(BLOB_MIN_CHARS), params: {} }, promptTokenIds: [1, 2, 3] });
    const r = s.split(t);
    expect(r.refs).toEqual({ p: expect.any(String) });
    expect(r.turn.request.prompt).toBeNull();
    expect(r.turn.promptTokenIds).toEqual([1, 2, 3]);
    expect(joinTurn(r.turn, r.refs!, (id) => s.rows.get(id))).toEqual(t);
  });

  it("names blobs by content: different content, different id; a missing blob is an error, not a hole", () => {
    const s = store();
    const a = s.split(bigTurn(1));
    const b = s.split(bigTurn(1, { request: { ...bigTurn(1).request, messages: [{ role: "system", content: SYSTEM + "!" }] } }));
    expect(b.refs?.m?.["0"]).not.toBe(a.refs?.m?.["0"]);
    expect(() => joinTurn(a.turn, a.refs!, () => undefined)).toThrow(/blob .* is missing/);
  });

  it("writes a blob again once the cache has forgotten it (the store merges it by id)", () => {
    const known = new BlobIdCache(BLOB_MIN_CHARS * 8);
    const ids = new RecentIds(1);
    const first = splitTurn(bigTurn(1), known, ids);
    // Other large content pushes the system prompt out of the bounded cache.
    for (let i = 0; i < 20; i++) splitTurn(makeTurn(i, { request: { messages: [{ role: "user", content: `${i}`.repeat(BLOB_MIN_CHARS) }], params: {} } }), known, ids);
    const again = splitTurn(bigTurn(1), known, ids);
    expect(again.blobs.map((b) => b.id)).toEqual(expect.arrayContaining([first.refs!.m!["0"]!]));
  });

  it("gives every chunk of token ids the id its content hashes to, with or without the chunk cache", () => {
    // Prompts sharing prefixes, chunks differing in one id, and a cache small enough to forget.
    const cache = new IdChunkCache(8);
    let seed = 7;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 49152;
    const base = Array.from({ length: ID_CHUNK * 12 }, rand);
    for (let k = 0; k < 40; k++) {
      const ids = base.slice(0, ID_CHUNK * (1 + (k % 12)));
      if (k % 3 === 0) ids[(k * 131) % ids.length] = 49152 + k;
      for (let at = 0; at + ID_CHUNK <= ids.length; at += ID_CHUNK) {
        expect(cache.idOf(ids, at)).toBe(idsBlobId(ids.slice(at, at + ID_CHUNK)));
      }
    }
    // splitTurn refers to the same blobs either way.
    const turn = { ...makeTurn(1), promptTokenIds: base };
    const plain = splitTurn(turn, new BlobIdCache(), new RecentIds());
    const cached = splitTurn(turn, new BlobIdCache(), new RecentIds(), new IdChunkCache());
    expect(cached.refs).toEqual(plain.refs);
    expect(cached.blobs).toEqual(plain.blobs);
  });
});
