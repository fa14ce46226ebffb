// Offline training and export on the stand-in backend: file handling, per-line errors, batching,
// the round trip store → export → train --samples. Real-model offline training is covered by
// test/e2e/train-cli.test.ts.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig, silentLogger, Store, type Config, type Judgment } from "../core/index.js";
import { makeTurn } from "../test/support/rows.js";
import { exportSamples } from "./export.js";
import { parseSampleLines, sampleLine } from "./jsonl.js";
import { offlineBatches, trainOffline } from "./offline.js";
import { fakeBackend } from "./testing/fake-backend.js";
import { readManifest, verifyAdapterDir } from "./versions.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-offline-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const config = (over: Partial<Config["train"]> = {}): Config =>
  loadConfig({ env: {}, flags: { dataDir: dir, train: { model: "/models/fake.gguf", batchSize: 2, lr: 0.1, ...over } } });

const line = (o: object) => JSON.stringify(o);
const good = (i: number, reward = 1, hint?: string) =>
  line({ messages: [{ role: "user", content: `q${i}` }], response: `a${i}`, reward, ...(hint ? { hint } : {}) });

describe("parseSampleLines", () => {
  it("reports each bad line with its number and keeps the rest", () => {
    const text = [
      good(1),
      "{not json",
      line({ messages: [], response: "x", reward: 1 }),
      line({ messages: [{ role: "user", content: "q" }], response: "x", reward: 2 }),
      "",
      line({ id: "dup", messages: [{ role: "user", content: "q" }], response: { content: "", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }] }, reward: -1, hint: "h" }),
      line({ id: "dup", messages: [{ role: "user", content: "q" }], response: "x", reward: 0 }),
    ].join("\n");
    const { exchanges, errors } = parseSampleLines(text);
    expect(exchanges.map((e) => [e.line, e.id])).toEqual([[1, "line-1"], [6, "dup"]]);
    expect(exchanges[1]!.reply.toolCalls[0]!.function.name).toBe("f");
    expect(errors.map((e) => e.line)).toEqual([2, 3, 4, 7]);
    expect(errors[0]!.message).toMatch(/not valid JSON/);
    expect(errors[1]!.message).toMatch(/^messages:/);
    expect(errors[2]!.message).toMatch(/^reward:/);
    expect(errors[3]!.message).toBe('duplicate id "dup"');
  });

  it("writes lines it reads back unchanged", () => {
    const ex = parseSampleLines(line({ id: "a", messages: [{ role: "user", content: "q" }], tools: [{ type: "function" }], response: { content: "c", reasoning_content: "r" }, reward: 1, hint: "h" })).exchanges[0]!;
    const again = parseSampleLines(sampleLine(ex)).exchanges[0]!;
    expect({ ...again, line: 0 }).toEqual({ ...ex, line: 0 });
  });
});

describe("offlineBatches", () => {
  it("covers every sample `epochs` times with the last partial batch, or cycles for a fixed number of steps", () => {
    expect(offlineBatches([1, 2, 3, 4, 5], 2, null, 1)).toEqual([[1, 2], [3, 4], [5]]);
    expect(offlineBatches([1, 2, 3], 2, null, 2)).toEqual([[1, 2], [3, 1], [2, 3]]);
    expect(offlineBatches([1, 2, 3], 2, 4, 1)).toEqual([[1, 2], [3, 1], [2, 3], [1, 2]]);
    expect(offlineBatches([1], 4, 2, 1)).toEqual([[1], [1]]);
  });
});

describe("trainOffline", () => {
  it("trains the good lines, reports the bad ones, and writes one adapter folder with a manifest", async () => {
    const file = path.join(dir, "s.jsonl");
    fs.writeFileSync(file, [good(1), "oops", good(2, -1), good(3, 0), good(4, 0, "Be brief.")].join("\n") + "\n");
    const backend = fakeBackend();
    const out = path.join(dir, "out");
    const r = await trainOffline(config({ mode: "combined" }), { samplesFile: file, outDir: out, backend, logger: silentLogger });
    expect(r.lineErrors).toEqual([{ line: 2, message: expect.stringMatching(/not valid JSON/) }]);
    expect(r.skipped).toEqual([{ line: 4, id: "line-4", reason: "no-signal", detail: expect.any(String) }]);
    expect(r.samples).toBe(3);
    expect(r.steps).toHaveLength(2);
    expect(backend.engine!.calls.trainStep.map((b) => b.length)).toEqual([2, 1]);
    expect(r.manifest).toMatchObject({ name: "out", version: 2, step: 2, sampleIds: ["line-1", "line-3", "line-5"], parent: null });
    expect(fs.readdirSync(out).sort()).toEqual(["adapter.gguf", "adapter_config.json", "adapter_model.safetensors", "manifest.json", "probe.json"]);
    expect(verifyAdapterDir(out)).toEqual([]);
  });

  it("continues from an adapter folder for --steps steps, and refuses a non-empty --out without --force", async () => {
    const file = path.join(dir, "s.jsonl");
    fs.writeFileSync(file, [good(1), good(2, -1), good(3)].join("\n"));
    const first = path.join(dir, "first");
    await trainOffline(config(), { samplesFile: file, outDir: first, backend: fakeBackend(), logger: silentLogger });
    const second = path.join(dir, "second");
    const r = await trainOffline(config(), { samplesFile: file, outDir: second, from: first, steps: 5, backend: fakeBackend(), logger: silentLogger });
    expect(r.manifest).toMatchObject({ parent: "first", step: 2 + 5, version: 5 });
    const before = fs.readFileSync(path.join(second, "adapter_model.safetensors"));
    await expect(trainOffline(config(), { samplesFile: file, outDir: second, backend: fakeBackend(), logger: silentLogger })).rejects.toThrow(/not empty; pass --force/);
    expect(fs.readFileSync(path.join(second, "adapter_model.safetensors"))).toEqual(before);
    // --force whose write fails (disk full): the previous folder is put back.
    const failing = { ...fakeBackend(), writeAdapter: async () => { throw new Error("ENOSPC"); } };
    await expect(trainOffline(config(), { samplesFile: file, outDir: second, force: true, backend: failing, logger: silentLogger })).rejects.toThrow("ENOSPC");
    expect(fs.readFileSync(path.join(second, "adapter_model.safetensors"))).toEqual(before);
    expect(fs.readdirSync(dir).filter((n) => n.includes("replaced"))).toEqual([]);
    await trainOffline(config(), { samplesFile: file, outDir: second, force: true, backend: fakeBackend(), logger: silentLogger });
    expect(readManifest(second)).toMatchObject({ parent: null, step: 2 });
    expect(fs.readdirSync(dir).filter((n) => n.includes("replaced"))).toEqual([]);
  });

  it("fails clearly when nothing is usable, and keeps the previous --out when training fails", async () => {
    const file = path.join(dir, "s.jsonl");
    fs.writeFileSync(file, ["bad", good(1, 0)].join("\n"));
    await expect(trainOffline(config({ mode: "rl" }), { samplesFile: file, outDir: path.join(dir, "o"), backend: fakeBackend(), logger: silentLogger })).rejects.toThrow(/no usable samples .* mode rl \(1 bad lines, 1 skipped\)/);
    await expect(trainOffline(config(), { samplesFile: path.join(dir, "missing.jsonl"), outDir: path.join(dir, "o"), backend: fakeBackend(), logger: silentLogger })).rejects.toThrow(/cannot read samples file/);
    await expect(trainOffline(config(), { samplesFile: file, outDir: path.join(dir, "o"), steps: 0, backend: fakeBackend(), logger: silentLogger })).rejects.toThrow(/--steps/);
    expect(fs.existsSync(path.join(dir, "o"))).toBe(false);
  });
});

describe("exportSamples", () => {
  it("writes judged main-line chat turns in the offline format; train --samples reads them back", async () => {
    const writer = await Store.open({ dataDir: dir, writes: ["turns", "judgments"] });
    const call = { id: "c1", type: "function" as const, function: { name: "read", arguments: "{}" } };
    const turns = [
      makeTurn(1, { promptTokenIds: null, completionTokenIds: null }),
      makeTurn(2, { response: { id: null, content: "", reasoning: null, toolCalls: [call], finishReason: "tool_calls" }, request: { messages: [{ role: "user", content: "read it" }], tools: [{ type: "function", function: { name: "read" } }], params: {} } }),
      makeTurn(3, { turnType: "side" }),
      makeTurn(4, { endpoint: "completions", request: { prompt: "Once", params: {} } }),
      makeTurn(5),
    ];
    for (const t of turns) writer.put("turns", t);
    const j = (i: number, score: -1 | 0 | 1, hint: string | null): Judgment => ({
      id: `call-${i}`, turnId: `call-${i}`, sessionId: "s1", score, method: "prm", votes: [score], raw: [], hint, nextStateIds: [], judgeModel: null, costTokens: 0, costMs: 0, createdAt: "2026-01-01T00:00:00Z",
    });
    for (const x of [j(1, 1, null), j(2, -1, "Check the path first."), j(3, 1, null), j(4, 1, null), j(9, 1, null)]) writer.put("judgments", x);
    await writer.close();

    const file = path.join(dir, "export", "samples.jsonl");
    const r = await exportSamples(config(), file);
    expect(r).toMatchObject({ written: 2, skipped: { notTrainable: 1, notChat: 1, turnMissing: 1 } });
    const lines = fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ id: "call-1", messages: [{ role: "user", content: "hello 1" }], response: "answer 1", reward: 1 });
    expect(lines[1]).toEqual({
      id: "call-2", messages: [{ role: "user", content: "read it" }], tools: [{ type: "function", function: { name: "read" } }],
      response: { content: "", tool_calls: [call] }, reward: -1, hint: "Check the path first.",
    });
    const trained = await trainOffline(config(), { samplesFile: file, outDir: path.join(dir, "out"), backend: fakeBackend(), logger: silentLogger });
    expect(trained.lineErrors).toEqual([]);
    expect(trained.manifest.sampleIds).toEqual(["call-1", "call-2"]);
  });
});
