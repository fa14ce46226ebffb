import { describe, expect, it } from "vitest";
import { applyStrip, planCapture, type StripSpec } from "./capture.js";
import { SseSplitter } from "./sse.js";
import { stripEvents, stripEventText } from "./strip-text.js";

type Obj = Record<string, unknown>;

const specFor = (kind: "vllm" | "clawloop" | "llamacpp", endpoint: "chat" | "completions", body: Obj = {}): StripSpec => {
  const plan = planCapture(kind, endpoint, { model: "m", messages: [], prompt: "p", stream: true, ...body }, true);
  return plan.strip!;
};
const SPECS: [string, StripSpec][] = [
  ["vllm chat", specFor("vllm", "chat")],
  ["clawloop chat", specFor("clawloop", "chat")],
  ["vllm completions", specFor("vllm", "completions")],
  ["clawloop completions", specFor("clawloop", "completions")],
  ["llamacpp chat", specFor("llamacpp", "chat")],
  ["vllm chat, client asked for log-probs", specFor("vllm", "chat", { logprobs: true })],
];

/** What the parsing path makes of one event: null when dropped, else the JSON the client gets. */
function parsed(json: string, spec: StripSpec): unknown {
  const obj = JSON.parse(json) as Obj;
  const r = applyStrip(obj, spec, true);
  return r.drop ? null : obj;
}

// A small deterministic generator of chunks like the servers send, with the awkward cases mixed in.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const STRINGS = ["tok", "", 'say "logprobs": 1', "back\\slash\\", "émoji 🦀", '{"choices":[', "line\nbreak", "]}", "\\\"", "token_ids"];

function chunk(r: () => number): Obj {
  const pick = <T,>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const n = r() < 0.9 ? 1 : 2;
  const choices = Array.from({ length: n }, (_, index) => {
    const c: Obj = { index };
    if (r() < 0.5) c.delta = r() < 0.15 ? {} : { content: pick(STRINGS), ...(r() < 0.2 ? { tool_calls: [{ index: 0, function: { arguments: pick(STRINGS) } }] } : {}) };
    else c.text = r() < 0.15 ? "" : pick(STRINGS);
    if (r() < 0.8) c.logprobs = r() < 0.2 ? null : { content: [{ token: pick(STRINGS), logprob: -r(), bytes: [116, 111], top_logprobs: [] }] };
    if (r() < 0.7) c.token_ids = r() < 0.1 ? null : Array.from({ length: 1 + Math.floor(r() * 3) }, () => Math.floor(r() * 50000));
    if (r() < 0.2) c.prompt_token_ids = Array.from({ length: 5 }, (_, i) => i);
    c.finish_reason = r() < 0.8 ? null : "stop";
    if (r() < 0.1) c.nested = { logprobs: [1, 2], token_ids: "kept" };
    // Arrays that end at a later `]` than the first one.
    if (r() < 0.2) c.tags = [pick(STRINGS), [1, [2]], { k: "]" }];
    return c;
  });
  const out: Obj = { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model: "m", choices: r() < 0.05 ? [] : choices };
  if (r() < 0.3) out.prompt_token_ids = r() < 0.2 ? null : Array.from({ length: 40 }, (_, i) => i * 7);
  if (r() < 0.1) out.usage = { prompt_tokens: 3, completion_tokens: 1 };
  if (r() < 0.05) out.logprobs = { top: "level" };
  if (r() < 0.2) out.extra = [{ a: "]" }, "x]", [3]];
  return out;
}

/** JSON text with whitespace between tokens, as a server with another serializer might send it. */
function spaced(v: unknown, r: () => number): string {
  const sp = () => (r() < 0.3 ? " " : "");
  if (Array.isArray(v)) return `[${sp()}${v.map((x) => spaced(x, r)).join(`${sp()},${sp()}`)}${sp()}]`;
  if (v && typeof v === "object") return `{${sp()}${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}${sp()}:${sp()}${spaced(x, r)}`).join(`,${sp()}`)}${sp()}}`;
  return JSON.stringify(v);
}

describe("stripEventText", () => {
  it("gives the client exactly what the parsing path gives, on 3,000 generated chunks per server dialect", () => {
    for (const [name, spec] of SPECS) {
      const r = rng(name.length * 7919);
      let fast = 0;
      for (let i = 0; i < 3000; i++) {
        const obj = chunk(r);
        const json = i % 2 ? JSON.stringify(obj) : spaced(obj, r);
        const raw = Buffer.from(`data: ${json}\n\n`);
        const out = stripEventText(raw, spec, 6, raw.length - 2);
        const want = parsed(json, spec);
        if (out === null) continue; // the parsing path decides
        fast++;
        expect(want, `${name}: a chunk the parser drops must not take the fast path: ${json}`).not.toBeNull();
        const text = out.toString("utf8");
        expect(text.startsWith("data: ") && text.endsWith("\n\n")).toBe(true);
        expect(JSON.parse(text.slice(6)), `${name}: ${json}`).toEqual(want);
        // Untouched when there was nothing to undo.
        if (JSON.stringify(want) === JSON.stringify(JSON.parse(json))) expect(out).toBe(raw);
      }
      // Most chunks take the fast path (the rest are possible drops or null-only cases).
      expect(fast, name).toBeGreaterThan(2000);
    }
  });

  it("keeps every byte it does not undo, and finds keys only where applyStrip looks", () => {
    const spec = specFor("vllm", "chat");
    const json = '{"id":"x", "choices":[{"index":0,"delta":{"content":"\\"logprobs\\": 1"},"logprobs":{"content":[{"token":"a","logprob":-0.1}]},"token_ids":[42],"finish_reason":null,"x":{"logprobs":7}}],"prompt_token_ids":[1,2,3] }';
    const raw = Buffer.from(`data: ${json}\n\n`);
    const out = stripEventText(raw, spec, 6, raw.length - 2)!.toString();
    expect(out).toBe('data: {"id":"x", "choices":[{"index":0,"delta":{"content":"\\"logprobs\\": 1"},"logprobs":null,"token_ids":null,"finish_reason":null,"x":{"logprobs":7}}],"prompt_token_ids":null }\n\n');
  });

  it("removes fields with their commas wherever they sit (clawloop's engine: absent, not null)", () => {
    const spec = specFor("clawloop", "chat");
    const cases: [string, string][] = [
      ['{"choices":[{"token_ids":[1],"index":0,"delta":{"content":"a"}}]}', '{"choices":[{"index":0,"delta":{"content":"a"}}]}'],
      ['{"choices":[{"index":0,"delta":{"content":"a"},"token_ids":[1]}]}', '{"choices":[{"index":0,"delta":{"content":"a"}}]}'],
      ['{"choices":[{"token_ids":[1]}]}', '{"choices":[{}]}'],
      ['{"prompt_token_ids":[1,2],"choices":[]}', '{"choices":[]}'],
      ['{ "choices" : [ ] , "prompt_token_ids" : [ 1 , 2 ] }', '{ "choices" : [ ] }'],
    ];
    for (const [json, want] of cases) {
      const raw = Buffer.from(`data: ${json}\n\n`);
      expect(stripEventText(raw, spec, 6, raw.length - 2)?.toString()).toBe(`data: ${want}\n\n`);
    }
  });

  it("leaves to the parser what it cannot be sure of", () => {
    const spec = specFor("vllm", "chat");
    for (const json of [
      '{"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":null}]}', // maybe dropped
      '{"choices":[{"index":0,"delta":{"content":"a"},"log\\u0070robs":{"x":1}}]}', // escaped key
      '{"choices":[{"index":0,"delta":{"content":"a"}}', // cut short
      '{"choices":[{"index":0 "delta":{}}]}', // not JSON
    ]) {
      const raw = Buffer.from(`data: ${json}\n\n`);
      expect(stripEventText(raw, spec, 6, raw.length - 2), json).toBeNull();
    }
    // Not an object: passed on as it is, as the parsing path does.
    const arr = Buffer.from("data: [1,2]\n\n");
    expect(stripEventText(arr, spec, 6, arr.length - 2)).toBe(arr);
  });
});

describe("stripEvents", () => {
  it("rewrites whole events only, and sends other events' bytes untouched", () => {
    const spec = specFor("vllm", "chat");
    const split = new SseSplitter();
    const stream = ': ping\n\ndata: {"choices":[{"index":0,"delta":{"content":"hi"},"logprobs":{"content":[]},"token_ids":[7],"finish_reason":null}]}\n\ndata: [DONE]\n\n';
    const bytes = Buffer.from(stream);
    // Split mid-event: the first push yields only the comment.
    const first = split.push(bytes.subarray(0, 30));
    expect(stripEvents(first, spec)?.toString()).toBe(": ping\n\n");
    const rest = split.push(bytes.subarray(30));
    expect(stripEvents(rest, spec)?.toString()).toBe('data: {"choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null,"token_ids":null,"finish_reason":null}]}\n\ndata: [DONE]\n\n');
    // One data line in another spelling goes to the parser.
    expect(stripEvents([Buffer.from('data:{"choices":[]}\r\n\r\n')], spec)).toBeNull();
    expect(stripEvents([], spec)?.length).toBe(0);
  });
});
