// Each driver against a scripted server that follows that server's documented LoRA API
// (fixtures/servers/lora.ts): vLLM, SGLang, Ollama and llama.cpp's llama-server cannot run here.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startLoraServer, type LoraServer } from "../../fixtures/servers/lora.js";
import { tokenLogprob } from "../../fixtures/upstream/index.js";
import { writeVersion } from "../../test/support/adapter-versions.js";
import { DriverError, LlamaCppDriver, OllamaDriver, SglangDriver, VllmDriver, versionProblems } from "../index.js";

let dir: string;
let server: LoraServer | null = null;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-drivers-"));
});
afterEach(async () => {
  await server?.close();
  server = null;
  fs.rmSync(dir, { recursive: true, force: true });
});

const ggufBase = { architecture: "llama", numHeads: 2, numKvHeads: 2 };

/** The DriverError a call rejects with; a call that succeeds or throws anything else fails the test. */
async function driverError(call: Promise<unknown>): Promise<DriverError> {
  try {
    await call;
  } catch (e) {
    if (e instanceof DriverError) return e;
    throw e;
  }
  throw new Error("expected the call to reject with a DriverError; it succeeded");
}

describe("vLLM driver", () => {
  it("loads each version under its own name, serves it, scores through prompt_logprobs, unloads", async () => {
    server = await startLoraServer({ kind: "vllm", model: "base-m" });
    const d = new VllmDriver({ url: `${server.url}/v1` });
    expect(await d.baseModel()).toBe("base-m");
    const v1 = writeVersion(dir, 1);
    const name = d.servedName("v000001");
    expect(name).toBe("clawloop-v000001");
    await d.load(name, v1);
    expect(server.adapters.get(name)).toBe(v1);
    expect(await d.loaded()).toEqual([name]);
    // Loading the same name again (a sidecar restart) is accepted: the name means these weights.
    await d.load(name, v1);
    const probe = await d.probe(name);
    expect(probe.ok).toBe(true);
    const scored = await d.score(name, [11, 12, 13], [14, 15]);
    expect(scored).toEqual([tokenLogprob(14), tokenLogprob(15)]);
    const sent = server.requests.find((r) => r.path === "/v1/completions")!.body!;
    expect(sent).toMatchObject({ model: name, prompt: [11, 12, 13, 14, 15], prompt_logprobs: 0 });
    await d.unload(name);
    expect(server.adapters.size).toBe(0);
    await d.unload(name); // already gone: not an error
    const gone = await d.probe(name);
    expect(gone.ok).toBe(false);
    expect(gone.status).toBe(404);
    expect(gone.error).toContain("does not exist");
  });

  it("says how to start vLLM when runtime loading is off, and reports the server's refusal", async () => {
    server = await startLoraServer({ kind: "vllm", model: "base-m", runtimeUpdating: false });
    const d = new VllmDriver({ url: server.url });
    const err = await driverError(d.load("clawloop-v000001", writeVersion(dir, 1)));
    expect(err).toBeInstanceOf(DriverError);
    expect(err.permanent).toBe(true);
    expect(err.message).toContain("VLLM_ALLOW_RUNTIME_LORA_UPDATING=True");
    await server.close();

    server = await startLoraServer({ kind: "vllm", model: "base-m", maxLoraRank: 2 });
    const d2 = new VllmDriver({ url: server.url });
    const refused = await driverError(d2.load("clawloop-v000002", writeVersion(dir, 2)));
    expect(refused.status).toBe(400);
    expect(refused.message).toContain("max_lora_rank");
    const missing = await driverError(d2.load("clawloop-v000009", path.join(dir, "nowhere")));
    expect(missing.status).toBe(404);
  });

  it("reaches no server: a passing failure, not a refusal", async () => {
    const d = new VllmDriver({ url: "http://127.0.0.1:9", timeoutMs: 2000 });
    const err = await driverError(d.load("x", dir));
    expect(err).toBeInstanceOf(DriverError);
    expect(err.status).toBeNull();
    expect(err.permanent).toBe(false);
    expect((await d.probe("x")).ok).toBe(false);
  });
});

describe("SGLang driver", () => {
  it("loads, selects with base:adapter, scores through /generate, unloads", async () => {
    server = await startLoraServer({ kind: "sglang", model: "base-s" });
    const d = new SglangDriver({ url: server.url });
    expect(await d.baseModel()).toBe("base-s");
    const name = d.servedName("v000003");
    await d.load(name, writeVersion(dir, 3));
    await d.load(name, path.join(dir, "v000003")); // already there: accepted
    const model = d.requestModel(name, "base-s");
    expect(model).toBe("base-s:clawloop-v000003");
    expect((await d.probe(model)).ok).toBe(true);
    expect(await d.score(model, [5, 6], [7, 8, 9])).toEqual([7, 8, 9].map(tokenLogprob));
    const gen = server.requests.find((r) => r.path === "/generate")!.body!;
    expect(gen).toMatchObject({ input_ids: [5, 6, 7, 8, 9], return_logprob: true, logprob_start_len: 2, lora_path: "clawloop-v000003" });
    await d.unload(name);
    await d.unload(name);
    const gone = await d.probe(model);
    expect(gone.ok).toBe(false);
    expect(gone.error).toContain("not loaded");
  });

  it("reports a load the server refused with its error_message", async () => {
    server = await startLoraServer({ kind: "sglang", model: "base-s" });
    const d = new SglangDriver({ url: server.url });
    const err = await driverError(d.load("clawloop-v000001", path.join(dir, "missing")));
    expect(err.status).toBe(400);
    expect(err.message).toContain("adapter_config.json");
  });
});

describe("Ollama driver", () => {
  it("creates a model per version from the GGUF adapter blob, and deletes it", async () => {
    server = await startLoraServer({ kind: "ollama", model: "smol:latest" });
    const d = new OllamaDriver({ url: server.url });
    expect(await d.baseModel()).toBe("smol:latest");
    const name = d.servedName("v000002", "smol:latest");
    expect(name).toBe("smol-clawloop:v000002");
    const v2 = writeVersion(dir, 2, { gguf: ggufBase });
    await d.load(name, v2);
    const create = server.requests.find((r) => r.path === "/api/create")!.body!;
    expect(create).toMatchObject({ model: name, from: "smol:latest", stream: false });
    expect(Object.keys(create.adapters as object)).toEqual(["adapter.gguf"]);
    expect(server.requests.some((r) => r.method === "POST" && r.path.startsWith("/api/blobs/sha256:"))).toBe(true);
    expect(await d.loaded()).toEqual([name]);
    // The blob is there now: a second model from the same file uploads nothing.
    const uploads = server.requests.filter((r) => r.method === "POST" && r.path.startsWith("/api/blobs/")).length;
    await d.load(d.servedName("v000003", "smol:latest"), v2);
    expect(server.requests.filter((r) => r.method === "POST" && r.path.startsWith("/api/blobs/")).length).toBe(uploads);
    expect((await d.probe(name)).ok).toBe(true);
    expect(await d.score()).toBeNull();
    await d.unload(name);
    expect(server.calls).toContain(`delete ${name}`);
    expect((await d.probe(name)).ok).toBe(false);
  });

  it("explains a release that no longer creates models with adapters, and a missing GGUF", async () => {
    server = await startLoraServer({ kind: "ollama", model: "smol:latest", refuseAdapters: true });
    const d = new OllamaDriver({ url: server.url, baseModel: "smol:latest" });
    const err = await driverError(d.load("smol-clawloop:v000001", writeVersion(dir, 1, { gguf: ggufBase })));
    expect(err.permanent).toBe(true);
    expect(err.message).toMatch(/v0\.34\.1/);
    expect(err.message).toContain("clawloop up --model");
    const noGguf = await driverError(d.load("smol-clawloop:v000002", writeVersion(dir, 2)));
    expect(noGguf.message).toContain("adapter.gguf is missing");
  });

  it("asks for adapters.baseModel when Ollama has several models", async () => {
    server = await startLoraServer({ kind: "ollama", model: "a:latest" });
    const d = new OllamaDriver({ url: server.url });
    const v = writeVersion(dir, 1, { gguf: ggufBase });
    // Another model on the same Ollama (made here the only way the scripted server makes models).
    await new OllamaDriver({ url: server.url, baseModel: "a:latest" }).load("other:latest", v);
    const err = await driverError(d.baseModel());
    expect(err.message).toContain("adapters.baseModel");
  });
});

describe("llama.cpp driver", () => {
  it("cannot load at run time: says which restart brings a version in, and sees it once there", async () => {
    const v4 = writeVersion(dir, 4, { gguf: ggufBase });
    server = await startLoraServer({ kind: "llamacpp", model: "base-l" });
    const d = new LlamaCppDriver({ url: server.url, baseModel: "base-l" });
    const err = await driverError(d.load("clawloop-v000004", v4));
    expect(err.permanent).toBe(true);
    expect(err.message).toContain(`--lora ${path.join(v4, "adapter.gguf")}`);
    await server.close();
    // The user restarted llama-server with the version's adapter.
    server = await startLoraServer({ kind: "llamacpp", model: "base-l", loras: [{ path: path.join(v4, "adapter.gguf") }] });
    const d2 = new LlamaCppDriver({ url: server.url, baseModel: "base-l" });
    await d2.load("clawloop-v000004", v4);
    expect(d2.requestModel("clawloop-v000004", "base-l")).toBe("base-l");
    expect((await d2.probe("base-l")).ok).toBe(true);
    expect(await d2.score()).toBeNull();
  });
});

describe("version directory checks", () => {
  it("finds corrupted and missing files before anything is sent", () => {
    const good = writeVersion(dir, 1, { gguf: ggufBase });
    expect(versionProblems(good, "peft")).toEqual([]);
    expect(versionProblems(good, "gguf")).toEqual([]);
    const bad = writeVersion(dir, 2, { corrupt: "adapter_model.safetensors" });
    expect(versionProblems(bad, "peft")[0]).toContain("does not match the sha256");
    const noGguf = writeVersion(dir, 3);
    expect(versionProblems(noGguf, "gguf")[0]).toContain("adapter.gguf is missing");
    fs.rmSync(path.join(noGguf, "manifest.json"));
    expect(versionProblems(noGguf, "peft")).toEqual(["manifest.json is missing or not JSON"]);
  });
});
