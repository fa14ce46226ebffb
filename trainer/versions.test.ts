import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { TrainStep } from "../core/index.js";
import { listVersions, removeTemporaries, trainedCounts, verifyAdapterDir, versionName, writeAdapterDir, writeAdapterDirSync, type ManifestFields } from "./versions.js";
import { TrainerState } from "./state.js";

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-versions-"));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const fields = (ids: string[]): ManifestFields => ({
  parent: null, baseModel: "m", baseModelHash: "h", step: 1, sampleCount: ids.length, sampleIds: ids, rank: 4, alpha: 8, targetModules: ["q_proj"],
});

describe("adapter versions", () => {
  it("writes a version atomically with file hashes and lists it", async () => {
    const seenDuring: string[][] = [];
    const dir = path.join(root, versionName(1));
    const manifest = await writeAdapterDir(dir, { version: 1, name: "v000001" }, fields(["a", "b"]), (tmp) => {
      fs.writeFileSync(path.join(tmp, "adapter_model.safetensors"), "weights");
      fs.writeFileSync(path.join(tmp, "adapter_config.json"), "{}");
      seenDuring.push(listVersions(root).map((v) => v.name));
    });
    expect(seenDuring).toEqual([[]]);
    expect(Object.keys(manifest.files)).toEqual(["adapter_config.json", "adapter_model.safetensors"]);
    expect(manifest.files["adapter_model.safetensors"]).toMatch(/^[0-9a-f]{64}$/);
    expect(listVersions(root).map((v) => [v.name, v.manifest.sampleIds])).toEqual([["v000001", ["a", "b"]]]);
    expect(verifyAdapterDir(dir)).toEqual([]);
    fs.appendFileSync(path.join(dir, "adapter_model.safetensors"), "!");
    expect(verifyAdapterDir(dir)).toEqual(["adapter_model.safetensors does not match its hash"]);
  });

  it("leaves nothing behind when writing fails, and never overwrites a version", async () => {
    const dir = path.join(root, "v000001");
    await expect(writeAdapterDir(dir, { version: 1, name: "v000001" }, fields([]), () => { throw new Error("disk full"); })).rejects.toThrow("disk full");
    expect(fs.readdirSync(root)).toEqual([]);
    await writeAdapterDir(dir, { version: 1, name: "v000001" }, fields([]), () => undefined);
    await expect(writeAdapterDir(dir, { version: 1, name: "v000001" }, fields([]), () => undefined)).rejects.toThrow(/never overwritten/);
  });

  it("the synchronous writer writes the same directory (files, hashes, manifest) and fails the same way", async () => {
    const write = (tmp: string) => {
      fs.writeFileSync(path.join(tmp, "adapter_model.safetensors"), "weights");
      fs.writeFileSync(path.join(tmp, "adapter_config.json"), "{}");
    };
    const a = await writeAdapterDir(path.join(root, "v000001"), { version: 1, name: "v000001" }, fields(["a"]), write);
    const b = writeAdapterDirSync(path.join(root, "v000002"), { version: 1, name: "v000001" }, fields(["a"]), write);
    expect({ ...b, createdAt: a.createdAt }).toEqual(a);
    const read = (name: string) => JSON.parse(fs.readFileSync(path.join(root, name, "manifest.json"), "utf8")) as { createdAt: string };
    expect({ ...read("v000002"), createdAt: a.createdAt }).toEqual(read("v000001"));
    expect(fs.readdirSync(path.join(root, "v000002")).sort()).toEqual(fs.readdirSync(path.join(root, "v000001")).sort());
    expect(verifyAdapterDir(path.join(root, "v000002"))).toEqual([]);
    expect(() => writeAdapterDirSync(path.join(root, "v000003"), { version: 3, name: "v000003" }, fields([]), () => { throw new Error("disk full"); })).toThrow("disk full");
    expect(() => writeAdapterDirSync(path.join(root, "v000002"), { version: 2, name: "v000002" }, fields([]), () => undefined)).toThrow(/never overwritten/);
    expect(fs.readdirSync(root).sort()).toEqual(["v000001", "v000002"]);
  });

  it("ignores directories without a manifest and removes interrupted writes", () => {
    fs.mkdirSync(path.join(root, "v000002"));
    fs.mkdirSync(path.join(root, ".tmp-v000003-1-ab"));
    fs.mkdirSync(path.join(root, "notes"));
    expect(listVersions(root)).toEqual([]);
    expect(removeTemporaries(root)).toEqual([".tmp-v000003-1-ab"]);
    expect(fs.readdirSync(root).sort()).toEqual(["notes", "v000002"]);
    expect(listVersions(path.join(root, "missing"))).toEqual([]);
  });

  it("counts how often each sample was trained on", async () => {
    await writeAdapterDir(path.join(root, "v000001"), { version: 1, name: "v000001" }, fields(["a", "b"]), () => undefined);
    await writeAdapterDir(path.join(root, "v000002"), { version: 2, name: "v000002" }, fields(["b", "c"]), () => undefined);
    expect([...trainedCounts(listVersions(root).map((v) => v.manifest))]).toEqual([["a", 1], ["b", 2], ["c", 1]]);
    expect(() => versionName(0)).toThrow();
    expect(versionName(42)).toBe("v000042");
  });
});

describe("TrainerState", () => {
  it("keeps the newest states up to the latest version and drops interrupted ones", () => {
    const state = new TrainerState(path.join(root, "trainer"));
    // Only the id: TrainerState keeps the step as JSON without reading its fields, and it is read back as is.
    const step = { id: "x" } as TrainStep;
    for (const v of [1, 2, 3, 4]) state.save(versionName(v), new Uint8Array([v]), step);
    fs.writeFileSync(path.join(root, "trainer", "optim-v000009.bin.77.tmp"), "");
    state.prune(3);
    expect(fs.readdirSync(path.join(root, "trainer")).sort()).toEqual(["optim-v000002.bin", "optim-v000003.bin", "step-v000002.json", "step-v000003.json"]);
    expect(state.loadOptimizer("v000003")).toEqual(new Uint8Array([3]));
    expect(state.loadOptimizer("v000004")).toBe(null);
    expect(state.loadStep("v000002")).toEqual({ id: "x" });
  });
});
