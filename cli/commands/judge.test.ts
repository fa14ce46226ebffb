import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Store } from "../../core/index.js";
import { startScriptedJudge, type ScriptedJudge } from "../../judges/testing/scripted-judge.js";
import { makeTurn } from "../../test/support/rows.js";
import { buildProgram } from "../main.js";

let out = "";
let scripted: ScriptedJudge | null = null;
const dirs: string[] = [];

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "judge-cli-"));
  dirs.push(d);
  return d;
}

async function run(...argv: string[]): Promise<string> {
  out = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await buildProgram().exitOverride().parseAsync(["node", "clawloop", ...argv]);
  } finally {
    spy.mockRestore();
  }
  return out;
}

afterEach(async () => {
  await scripted?.close();
  scripted = null;
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  process.exitCode = undefined;
});

describe("clawloop judge eval", () => {
  it("prints accuracy, the confusion matrix, hint precision/recall and cost as JSON", async () => {
    const report = JSON.parse(await run("judge", "eval", "--data", tmp(), "--method", "rules", "--json")) as Record<string, any>;
    expect(report.cases).toBeGreaterThanOrEqual(150);
    expect(report.accuracy).toBeGreaterThan(0.5);
    expect(report.confusion.labels).toEqual([1, 0, -1]);
    expect(report.confusion.matrix.flat().reduce((a: number, b: number) => a + b, 0)).toBe(report.cases);
    expect(report.hint).toHaveProperty("precision");
    expect(report.hint).toHaveProperty("recall");
    expect(report.cost).toHaveProperty("meanTokens");
    expect(report.cost).toHaveProperty("meanMs");
  });

  it("evaluates a model judge at --endpoint/--model, and prints a readable table without --json", async () => {
    scripted = await startScriptedJudge({ chat: () => "\\boxed{-1}" });
    const cases = path.join(tmp(), "cases.jsonl");
    const line = (label: number) =>
      JSON.stringify({ request: "q", action: { content: "a", tool_calls: [] }, next_state: { kind: "user_message", text: "hmm" }, label, hint: false });
    fs.writeFileSync(cases, [line(-1), line(-1), line(1)].join("\n") + "\n");
    const text = await run("judge", "eval", "--data", tmp(), "--cases", cases, "--method", "prm", "--votes", "1", "--endpoint", scripted.url, "--model", "m");
    expect(text).toContain("judge prm: 2/3 correct");
    expect(text).toMatch(/confusion \(rows: label, columns: predicted\)/);
    expect(scripted.requests.filter((r) => r.path === "/v1/chat/completions")).toHaveLength(3);
  });

  it("fails clearly on a bad cases file and on an unknown method", async () => {
    const bad = path.join(tmp(), "bad.jsonl");
    fs.writeFileSync(bad, "{oops\n");
    await expect(run("judge", "eval", "--data", tmp(), "--cases", bad, "--method", "rules")).rejects.toThrow(/bad.jsonl:1: not JSON/);
    await expect(run("judge", "eval", "--data", tmp(), "--method", "oracle")).rejects.toThrow(/--method must be one of/);
  });
});

describe("clawloop judge --once", () => {
  it("judges what is ready in the data directory and exits", async () => {
    const data = tmp();
    const sidecar = await Store.open({ dataDir: data, writes: ["turns", "next_states"] });
    const at = new Date().toISOString();
    sidecar.put("turns", makeTurn(1));
    sidecar.put("next_states", {
      id: "ns-1", kind: "user_message", sessionId: "s1", forRunId: null, forCallId: "call-1", turnId: "call-1",
      text: "perfect, thanks!", score: null, toolName: null, toolCallId: null, exitCode: null, at, receivedAt: at, source: "plugin",
    });
    await sidecar.close();
    expect(await run("judge", "--data", data, "--method", "rules", "--log-level", "silent", "--once")).toContain("judged 1 turn(s)");
    const store = await Store.open({ dataDir: data });
    expect(await store.get("judgments", "call-1")).toMatchObject({ score: 1, method: "rules" });
    await store.close();
  });

  it("refuses a model judge with no endpoint, with a clear message", async () => {
    await expect(run("judge", "--data", tmp(), "--method", "prm", "--once")).rejects.toThrow(/no judge endpoint/);
  });
});
