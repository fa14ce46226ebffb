import { describe, expect, it } from "vitest";
import { SseSplitter, isDone, parseEvent, replaceData } from "./sse.js";

const b = (s: string) => Buffer.from(s, "utf8");
const text = (bufs: Buffer[]) => bufs.map((x) => x.toString("utf8"));

describe("SseSplitter", () => {
  it("returns whole events with their terminators, however the bytes are cut", () => {
    const stream = 'data: {"a":1}\n\ndata: {"b":"x\\ny"}\n\n: comment\ndata: [DONE]\n\n';
    const expected = ['data: {"a":1}\n\n', 'data: {"b":"x\\ny"}\n\n', ": comment\ndata: [DONE]\n\n"];
    // Every possible pair of cut points.
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j += 7) {
        const s = new SseSplitter();
        const out = [...s.push(b(stream.slice(0, i))), ...s.push(b(stream.slice(i, j))), ...s.push(b(stream.slice(j)))];
        expect(text(out)).toEqual(expected);
        expect(s.rest()).toBeNull();
      }
    }
  });

  it("handles CRLF framing and keeps bytes exact", () => {
    const s = new SseSplitter();
    const out = [...s.push(b("event: delta\r\ndata: {\"x\":1}\r")), ...s.push(b("\n\r\n")), ...s.push(b("data: [DONE]\r\n\r\n"))];
    expect(text(out)).toEqual(['event: delta\r\ndata: {"x":1}\r\n\r\n', "data: [DONE]\r\n\r\n"]);
  });

  it("keeps an unterminated tail for rest()", () => {
    const s = new SseSplitter();
    expect(s.push(b("data: 1\n\ndata: 2"))).toHaveLength(1);
    expect(s.rest()?.toString()).toBe("data: 2");
  });

  it("does not split multi-byte characters it passes on", () => {
    const ev = "data: {\"t\":\"héllo 🦀\"}\n\n";
    const raw = b(ev);
    const s = new SseSplitter();
    const out: Buffer[] = [];
    for (let i = 0; i < raw.length; i++) out.push(...s.push(raw.subarray(i, i + 1)));
    expect(Buffer.concat(out).equals(raw)).toBe(true);
    expect(parseEvent(out[0]!).data).toBe('{"t":"héllo 🦀"}');
  });
});

describe("parseEvent / replaceData", () => {
  it("reads data (joined lines), event and ignores comments", () => {
    expect(parseEvent(b("event: error\ndata: a\ndata: b\n: c\n\n"))).toEqual({ data: "a\nb", dataLines: 2, event: "error" });
    expect(parseEvent(b(": keepalive\n\n")).data).toBeNull();
    expect(parseEvent(b("data:[DONE]\n\n")).data).toBe("[DONE]");
  });

  it("replaces the data line and keeps the other lines and line endings", () => {
    expect(replaceData(b("id: 7\r\ndata: {\"a\":1}\r\n\r\n"), '{"a":2}').toString()).toBe('id: 7\r\ndata: {"a":2}\r\n\r\n');
  });
});

describe("isDone", () => {
  it("knows the end of a stream in every framing, and nothing else", () => {
    for (const ev of ["data: [DONE]\n\n", "data:[DONE]\n\n", "data: [DONE]\r\n\r\n", ": bye\ndata: [DONE]\n\n", "data: [DONE] \n\n"]) expect(isDone(b(ev))).toBe(true);
    for (const ev of ['data: {"x":"[DONE]"}\n\n', "data: [DONE]x\n\n", "data: [DON\n\n", ": [DONE]\n\n", "event: done\n\n"]) expect(isDone(b(ev))).toBe(false);
  });
});
