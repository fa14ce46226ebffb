import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { programFor } from "./entry.js";

const ROOT = path.resolve(import.meta.dirname, "..");

describe("clawloop's entry", () => {
  it("registers only the subcommand being run, and every one for help or an unknown name", async () => {
    expect((await programFor(["node", "clawloop", "sidecar", "--port", "1"])).commands.map((c) => c.name())).toEqual(["sidecar"]);
    const all = (await programFor(["node", "clawloop", "--help"])).commands.map((c) => c.name());
    expect(all).toEqual(expect.arrayContaining(["sidecar", "train", "serve", "judge", "up"]));
    expect((await programFor(["node", "clawloop", "nosuch"])).commands.length).toBe(all.length);
    expect((await programFor(["node", "clawloop", "../main"])).commands.length).toBe(all.length);
  });

  it("starts a sidecar without loading ONNX Runtime or llama.cpp", () => {
    // In a process of its own: which native libraries are mapped once the sidecar command is ready.
    const script = `
      const { programFor } = await import("./cli/entry.ts");
      await programFor(["node", "clawloop", "sidecar"]);
      const maps = (await import("node:fs")).readFileSync("/proc/self/maps", "utf8");
      console.log(JSON.stringify({ onnx: maps.includes("onnxruntime"), llama: maps.includes("llama") }));`;
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, encoding: "utf8" });
    expect(JSON.parse(out.trim().split("\n").at(-1)!)).toEqual({ onnx: false, llama: false });
  });
});
