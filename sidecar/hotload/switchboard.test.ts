// The hot-load switchboard in a real sidecar, in front of the scripted vLLM with its LoRA API:
// versions go live as they land, bad ones are rejected with the reason in /status, rollback / pin /
// unpin through the control API, the table survives a restart, and 20 swaps under continuous load
// fail and stall no request.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig, silentLogger, Store, type AdapterVersion } from "../../core/index.js";
import { startLoraServer, type LoraServer } from "../../fixtures/servers/lora.js";
import { tokenLogprob } from "../../fixtures/upstream/index.js";
import { tinyAdapter, versionName, writeVersion } from "../../test/support/adapter-versions.js";
import { appendPruned, prunedRecord, readHead, readVersionManifest } from "../../adapters/index.js";
import { readVerdicts } from "../../trainer/verdicts.js";
import { rejectionRun } from "../../trainer/reject-pause.js";
import { collectStatus, formatStatus } from "../../cli/commands/status.js";
import { startHotloadingSidecar, type HotloadSidecarHandle } from "./index.js";
import type { HotloadStatus } from "./switchboard.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

interface Rig {
  server: LoraServer;
  sc: HotloadSidecarHandle;
  dataDir: string;
  adapters: string;
  api(p: string, body?: unknown): Promise<{ status: number; json: any }>;
  chat(model?: string): Promise<{ status: number; model: string | null; ms: number }>;
  status(): Promise<HotloadStatus>;
  waitLive(v: string): Promise<void>;
  /** Until the switchboard has decided on `v`: live, rejected, retired, or waiting (with the reason). */
  decided(v: string): Promise<void>;
}

async function startRig(opts: { dataDir?: string; server?: LoraServer; keepLoaded?: number; kind?: "vllm" | "llamacpp" | "ollama"; model?: string } = {}): Promise<Rig> {
  const kind = opts.kind ?? "vllm";
  const server = opts.server ?? (await startLoraServer({ kind, model: opts.model ?? "base-m" }));
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-hotload-"));
  // Cleanups run in reverse: the directory goes after the sidecar has closed (a LanceDB write in
  // flight would otherwise refill it while it is removed).
  if (!opts.dataDir) cleanup.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({
    flags: { dataDir, sidecar: { upstream: `${server.url}/v1`, port: 0, upstreamKind: kind }, adapters: { retrySec: 0.2, keepLoaded: opts.keepLoaded ?? 1 } },
    env: {},
  });
  const sc = await startHotloadingSidecar(config, { logger: silentLogger, storeHost: "main" });
  cleanup.push(() => sc.close());
  if (!opts.server) cleanup.push(() => server.close());
  const api: Rig["api"] = async (p, body) => {
    const res = await fetch(sc.url + p, {
      method: body === undefined ? "GET" : "POST",
      headers: { authorization: `Bearer ${sc.token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  const rig: Rig = {
    server,
    sc,
    dataDir,
    adapters: path.join(dataDir, "adapters"),
    api,
    async chat(model = opts.model ?? "base-m") {
      const t0 = performance.now();
      const res = await fetch(`${sc.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "hi there" }], stream: true }),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      const m = /"model":"([^"]+)"/.exec(text);
      return { status: res.status, model: m ? m[1]! : null, ms: performance.now() - t0 };
    },
    async status() {
      return (await api("/clawloop/v1/status")).json.switchboard as HotloadStatus;
    },
    async decided(v: string) {
      const until = Date.now() + 15_000;
      for (;;) {
        await sc.hotload!.idle();
        const row = sc.hotload!.versions().versions.find((x) => x.id === v);
        if (row && (row.status !== "candidate" || sc.hotload!.status().waiting?.version === v)) return;
        if (Date.now() > until) throw new Error(`no decision on ${v}: ${JSON.stringify(sc.hotload!.status())}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async waitLive(v: string) {
      const until = Date.now() + 15_000;
      while (Date.now() < until) {
        if (sc.hotload!.status().live === v) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`${v} did not go live: ${JSON.stringify(sc.hotload!.status())}`);
    },
  };
  return rig;
}

/** A "restarted" server on the port of the one just closed (the port may take a moment to free). */
async function restartOn(port: number, opts: Parameters<typeof startLoraServer>[0]): Promise<LoraServer> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startLoraServer({ ...opts, port });
    } catch (err) {
      if (attempt >= 20 || (err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * A sidecar that made v000002 live and pinned it, then stopped with its model server: the data
 * directory a restart starts from.
 */
async function stoppedWithV2Pinned(): Promise<{ dataDir: string; adapters: string }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-hotload-"));
  cleanup.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const server = await startLoraServer({ kind: "vllm", model: "base-m" });
  const a = await startRig({ dataDir, server });
  writeVersion(a.adapters, 1);
  writeVersion(a.adapters, 2);
  await a.waitLive("v000002");
  expect((await a.api("/clawloop/v1/adapters/pin", { version: "v000002" })).status).toBe(200);
  await a.sc.close();
  await server.close();
  return { dataDir, adapters: a.adapters };
}

async function rows(r: Rig): Promise<Map<string, AdapterVersion>> {
  const listing = (await r.api("/clawloop/v1/adapters")).json as { versions: AdapterVersion[] };
  return new Map(listing.versions.map((v) => [v.id, v]));
}

describe("hot-load switchboard (scripted vLLM)", () => {
  it("loads a new version under its own name, routes base-model calls to it, retires the old one", async () => {
    const r = await startRig();
    expect((await r.chat()).model).toBe("base-m");
    writeVersion(r.adapters, 1);
    await r.waitLive("v000001");
    expect((await r.chat()).model).toBe("clawloop-v000001");
    writeVersion(r.adapters, 2);
    await r.waitLive("v000002");
    await r.sc.hotload!.idle();
    expect((await r.chat()).model).toBe("clawloop-v000002");
    // keepLoaded 1: v1 stays loaded for rollback; a third version unloads it.
    expect([...r.server.adapters.keys()].sort()).toEqual(["clawloop-v000001", "clawloop-v000002"]);
    writeVersion(r.adapters, 3);
    await r.waitLive("v000003");
    await r.sc.hotload!.idle();
    expect([...r.server.adapters.keys()].sort()).toEqual(["clawloop-v000002", "clawloop-v000003"]);
    expect(r.server.calls).toEqual(["load clawloop-v000001", "load clawloop-v000002", "load clawloop-v000003", "unload clawloop-v000001"]);
    const table = await rows(r);
    expect(table.get("v000003")!.status).toBe("live");
    expect(table.get("v000002")).toMatchObject({ status: "retired", statusReason: "replaced by v000003" });
    expect(table.get("v000001")!.retiredAt).not.toBeNull();
    // The proxy recorded the adapter that served each call.
    expect((await r.chat()).model).toBe("clawloop-v000003");
    let served: (string | null)[] = [];
    for (let i = 0; i < 100 && !served.includes("v000003"); i++) {
      await new Promise((res) => setTimeout(res, 20));
      served = ((await r.api("/clawloop/v1/turns?limit=10")).json as { turns: { adapter: string | null }[] }).turns.map((t) => t.adapter);
    }
    expect(served).toEqual(expect.arrayContaining(["v000003", "v000002", "v000001", null]));
    // Calls for other models pass untouched.
    expect((await r.chat("other-model")).status).toBe(404);
  });

  it("rejects a corrupted version and one whose log-probs do not move as predicted; the live one stays, /status says why", async () => {
    const r = await startRig();
    writeVersion(r.adapters, 1);
    await r.waitLive("v000001");
    writeVersion(r.adapters, 2, { corrupt: "adapter_model.safetensors" });
    await r.decided("v000002");
    let st = await r.status();
    expect(st.live).toBe("v000001");
    expect(st.lastRejection).toMatchObject({ version: "v000002" });
    expect(st.lastRejection!.reason).toContain("does not match the sha256");
    // The engine predicted a shift of +1 nat per token; the scripted server's weights move nothing.
    const ids = [101, 102, 103, 104];
    const baseLp = ids.map(tokenLogprob);
    writeVersion(r.adapters, 3, { probe: { promptIds: [100], responseIds: ids, base: baseLp, version: baseLp.map((x) => x + 1) } });
    await r.decided("v000003");
    st = await r.status();
    expect(st.live).toBe("v000001");
    expect(st.lastRejection!.version).toBe("v000003");
    expect(st.lastRejection!.reason).toContain("log-prob check failed");
    expect(st.lastCheck!.logprobs).toMatchObject({ ok: false, discriminative: true });
    expect(r.server.adapters.has("clawloop-v000003")).toBe(false); // unloaded again
    // A version whose probe predicts what the server measures goes live.
    writeVersion(r.adapters, 4, { probe: { promptIds: [100], responseIds: ids, base: baseLp, version: baseLp } });
    await r.waitLive("v000004");
    st = await r.status();
    expect(st.lastCheck).toMatchObject({ version: "v000004", logprobs: { ok: true, meanError: 0 } });
    const table = await rows(r);
    expect(table.get("v000002")!.status).toBe("rejected");
    expect(table.get("v000003")!.status).toBe("rejected");
    // A rejected version cannot be rolled back to.
    expect((await r.api("/clawloop/v1/adapters/rollback", { version: "v000003" })).status).toBe(409);
  });

  it("rollback pins and retires newer versions and writes HEAD; pin holds new versions back; unpin goes on", async () => {
    const r = await startRig({ keepLoaded: 1 });
    for (let n = 1; n <= 3; n++) {
      writeVersion(r.adapters, n);
      await r.waitLive(versionName(n));
    }
    await r.sc.hotload!.idle();
    const rb = await r.api("/clawloop/v1/adapters/rollback", { version: "v000001" });
    expect(rb).toEqual({ status: 200, json: { live: "v000001", pinned: "v000001" } });
    expect((await r.chat()).model).toBe("clawloop-v000001");
    expect(readHead(r.adapters)).toMatchObject({ version: "v000001", seq: 1 });
    let table = await rows(r);
    expect(table.get("v000002")!.statusReason).toBe("rolled back to v000001");
    expect(table.get("v000003")).toMatchObject({ status: "retired", statusReason: "rolled back to v000001" });
    expect(table.get("v000001")).toMatchObject({ status: "live", pinned: true });
    // The trainer continues from v1: its next version waits while pinned.
    writeVersion(r.adapters, 4, { parent: "v000001" });
    await r.decided("v000004");
    let st = await r.status();
    expect(st.live).toBe("v000001");
    expect(st.waiting).toMatchObject({ version: "v000004", reason: "pinned to v000001; unpin to go on" });
    expect((await r.api("/clawloop/v1/adapters/unpin", {})).json).toEqual({ live: "v000001", pinned: null });
    await r.waitLive("v000004");
    // pin an older loaded version without retiring anything
    const pinned = await r.api("/clawloop/v1/adapters/pin", { version: "v000001" });
    expect(pinned.json).toEqual({ live: "v000001", pinned: "v000001" });
    table = await rows(r);
    expect(table.get("v000004")!.status).toBe("retired");
    expect(readHead(r.adapters)!.seq).toBe(1);
    // Bad requests get clear errors.
    expect((await r.api("/clawloop/v1/adapters/pin", { version: "v000099" })).status).toBe(404);
    expect((await r.api("/clawloop/v1/adapters/pin", { version: "latest" })).status).toBe(400);
    expect((await r.api("/clawloop/v1/adapters/pin", { nope: 1 })).status).toBe(400);
    st = await r.status();
    expect(st.pinned).toBe("v000001");
  });

  it("re-loads the live version after a restart (of the sidecar, and of the model server)", async () => {
    const { dataDir } = await stoppedWithV2Pinned();
    // A fresh model server (nothing loaded) and a fresh sidecar on the same data directory.
    const server2 = await startLoraServer({ kind: "vllm", model: "base-m" });
    cleanup.push(() => server2.close());
    const b = await startRig({ dataDir, server: server2 });
    await b.waitLive("v000002");
    expect(b.sc.hotload!.status().pinned).toBe("v000002");
    expect((await b.chat()).model).toBe("clawloop-v000002");
    expect(server2.calls).toEqual(["load clawloop-v000002"]);
  });

  it("replaces a name the server already has from someone else (a previous run's weights) instead of serving those", async () => {
    const server = await startLoraServer({ kind: "vllm", model: "base-m" });
    cleanup.push(() => server.close());
    // Another data directory's v000001, still loaded in the long-running server.
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-hotload-other-"));
    cleanup.push(() => fs.rmSync(other, { recursive: true, force: true }));
    writeVersion(other, 1);
    const pre = await fetch(`${server.url}/v1/load_lora_adapter`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ lora_name: "clawloop-v000001", lora_path: path.join(other, "v000001") }),
    });
    expect(pre.status).toBe(200);
    const r = await startRig({ server });
    writeVersion(r.adapters, 1);
    await r.waitLive("v000001");
    expect(server.calls).toEqual(["load clawloop-v000001", "unload clawloop-v000001", "load clawloop-v000001"]);
    expect(server.adapters.get("clawloop-v000001")).toBe(path.join(r.adapters, "v000001"));
  });

  it("loads the live version again when the model server restarts under it", async () => {
    const first = await startLoraServer({ kind: "vllm", model: "base-m" });
    const r = await startRig({ server: first });
    writeVersion(r.adapters, 1);
    await r.waitLive("v000001");
    const port = first.port;
    await first.close();
    const second = await restartOn(port, { kind: "vllm", model: "base-m" });
    cleanup.push(() => second.close());
    // Within a retry period the switchboard notices and loads it again.
    const until = Date.now() + 10_000;
    while (!second.calls.includes("load clawloop-v000001") || r.sc.hotload!.status().live !== "v000001") {
      if (Date.now() > until) throw new Error(JSON.stringify(r.sc.hotload!.status()));
      await new Promise((res) => setTimeout(res, 50));
    }
    expect((await r.chat()).model).toBe("clawloop-v000001");
    expect(r.sc.hotload!.status().lastError!.message).toContain("no longer has v000001");
  });

  it("swaps 20 versions under continuous load with zero failed and zero stalled requests", async () => {
    const server = await startLoraServer({ kind: "vllm", model: "base-m", tokensPerSecond: 400 });
    cleanup.push(() => server.close());
    const r = await startRig({ server });
    let stop = false;
    const results: { status: number; model: string | null; ms: number }[] = [];
    const errors: string[] = [];
    const client = async () => {
      while (!stop) {
        try {
          results.push(await r.chat());
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    };
    const clients = Array.from({ length: 6 }, client);
    for (let n = 1; n <= 20; n++) {
      writeVersion(r.adapters, n);
      await r.waitLive(versionName(n));
      await new Promise((res) => setTimeout(res, 30));
    }
    stop = true;
    await Promise.all(clients);
    await r.sc.hotload!.idle();
    const failed = results.filter((x) => x.status !== 200);
    expect(errors).toEqual([]); // no request hung past its 30 s bound or lost its connection
    expect(failed).toEqual([]);
    const served = new Set(results.map((x) => x.model));
    // Requests were served by the versions as they went live (most of the 20, and the last).
    expect(served.has("clawloop-v000020")).toBe(true);
    expect([...served].filter((m) => m?.startsWith("clawloop-v")).length).toBeGreaterThanOrEqual(10);
    expect(r.sc.hotload!.status().swaps).toBe(19);
    // Only the live version and one for rollback stay loaded.
    expect([...server.adapters.keys()].sort()).toEqual(["clawloop-v000019", "clawloop-v000020"]);
  });
});

describe("hot-load switchboard (scripted llama.cpp and Ollama)", () => {
  const gguf = { architecture: "llama", numHeads: 2, numKvHeads: 2 };

  it("llama.cpp: a version waits for a restart with --lora, says which, and goes live once llama-server runs it", async () => {
    const first = await startLoraServer({ kind: "llamacpp", model: "base-l" });
    const port = first.port;
    const r = await startRig({ server: first, kind: "llamacpp", model: "base-l" });
    const v1 = writeVersion(r.adapters, 1, { gguf, probe: { promptIds: [1], responseIds: [2], base: [-1], version: [-0.9] } });
    await r.decided("v000001");
    let st = await r.status();
    expect(st.live).toBeNull();
    expect(st.waiting!.version).toBe("v000001");
    expect(st.waiting!.reason).toContain(`restart it with --lora ${path.join(v1, "adapter.gguf")}`);
    // The user restarts llama-server with the version's adapter (same address).
    await first.close();
    const second = await restartOn(port, { kind: "llamacpp", model: "base-l", loras: [{ path: path.join(v1, "adapter.gguf") }] });
    cleanup.push(() => second.close());
    await r.waitLive("v000001");
    // llama-server applies the adapter to every call: the model name stays, the turn records v000001.
    expect((await r.chat()).model).toBe("base-l");
    st = await r.status();
    expect(st.lastRejection).toBeNull();
    expect(st.lastCheck!.logprobsSkipped).toContain("cannot score");
  });

  it("Ollama: a model per version, the old one deleted; a release that refuses adapters leaves the live one serving", async () => {
    const server = await startLoraServer({ kind: "ollama", model: "smol:latest" });
    cleanup.push(() => server.close());
    const r = await startRig({ server, kind: "ollama", model: "smol:latest", keepLoaded: 0 });
    writeVersion(r.adapters, 1, { gguf });
    await r.waitLive("v000001");
    expect((await r.chat()).model).toBe("smol-clawloop:v000001");
    writeVersion(r.adapters, 2, { gguf });
    await r.waitLive("v000002");
    await r.sc.hotload!.idle();
    expect(server.calls).toEqual(["create smol-clawloop:v000001", "create smol-clawloop:v000002", "delete smol-clawloop:v000001"]);
    // Calls for another model on the same Ollama pass untouched.
    expect(server.requests.filter((q) => q.endpoint === "chat").every((q) => String(q.body!.model).startsWith("smol-clawloop:v"))).toBe(true);

    const refusing = await startLoraServer({ kind: "ollama", model: "smol:latest", refuseAdapters: true });
    cleanup.push(() => refusing.close());
    const r2 = await startRig({ server: refusing, kind: "ollama", model: "smol:latest" });
    writeVersion(r2.adapters, 1, { gguf });
    await r2.decided("v000001");
    const st = await r2.status();
    expect(st.live).toBeNull();
    expect(st.waiting!.reason).toMatch(/refused to create .* v0\.34\.1/);
    expect((await r2.chat()).status).toBe(200); // the base still serves
  });
});

// A lineage started over: the adapters directory moved away (as the trainer tells the user to do after
// a base-model change), the data kept. The store still has the old lineage's rows under the names the
// new one writes again; they describe other versions and must not decide about the new ones.
describe("hot-load switchboard: a lineage started over under the same names", () => {
  /** An old lineage in `dataDir`: v1 live (pinned if asked), v2 rejected; then the sidecar stops and the directory moves away. */
  async function oldLineage(dataDir: string, how: { pin?: boolean } = {}): Promise<void> {
    const server = await startLoraServer({ kind: "vllm", model: "base-m" });
    const a = await startRig({ dataDir, server });
    writeVersion(a.adapters, 1);
    await a.waitLive("v000001");
    writeVersion(a.adapters, 2, { corrupt: "adapter_model.safetensors" });
    await a.decided("v000002");
    if (how.pin) expect((await a.api("/clawloop/v1/adapters/pin", { version: "v000001" })).status).toBe(200);
    const table = await rows(a);
    expect(table.get("v000001")).toMatchObject({ status: "live", pinned: !!how.pin });
    expect(table.get("v000002")!.status).toBe("rejected");
    await a.sc.close();
    await server.close();
    fs.renameSync(a.adapters, `${a.adapters}.old`);
  }

  function tempDataDir(): string {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-hotload-"));
    cleanup.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    return dataDir;
  }

  async function freshRig(dataDir: string): Promise<Rig> {
    const server = await startLoraServer({ kind: "vllm", model: "base-m" });
    cleanup.push(() => server.close());
    return startRig({ dataDir, server });
  }

  it("new versions written under the old rows' names (old v1 live, old v2 rejected) are candidates and go live", async () => {
    const dataDir = tempDataDir();
    await oldLineage(dataDir);
    const b = await freshRig(dataDir);
    await b.sc.hotload!.idle();
    const v1 = writeVersion(b.adapters, 1, { adapter: tinyAdapter(101) });
    await b.waitLive("v000001");
    expect((await b.chat()).model).toBe("clawloop-v000001");
    const row1 = (await rows(b)).get("v000001")!;
    expect(row1.manifest).toEqual(readVersionManifest(v1));
    const v2 = writeVersion(b.adapters, 2, { adapter: tinyAdapter(102) });
    await b.waitLive("v000002");
    expect((await rows(b)).get("v000002")).toMatchObject({ status: "live", manifest: readVersionManifest(v2) });
    expect(b.server.calls).toEqual(["load clawloop-v000001", "load clawloop-v000002"]);
  });

  it("after a restart, another v1 on disk than the stale live (and pinned) row's is checked as new, not restored as the old one", async () => {
    const dataDir = tempDataDir();
    await oldLineage(dataDir, { pin: true });
    // The new lineage's first version lands while the sidecar is down.
    const v1 = writeVersion(path.join(dataDir, "adapters"), 1, { adapter: tinyAdapter(101) });
    const before = new Date().toISOString();
    const b = await freshRig(dataDir);
    await b.waitLive("v000001");
    const row1 = (await rows(b)).get("v000001")!;
    expect(row1.manifest).toEqual(readVersionManifest(v1));
    expect(row1.statusReason).not.toBe("re-loaded after a restart");
    expect(row1.pinned).toBe(false);
    expect(row1.liveAt! >= before).toBe(true);
    expect(b.sc.hotload!.status().pinned).toBe(null);
    // The stale pin holds nothing back.
    writeVersion(b.adapters, 2, { adapter: tinyAdapter(102) });
    await b.waitLive("v000002");
  });

  it("a lineage started over while the sidecar runs: its v1 replaces the live old v2, and the old v1 still loaded is not reused", async () => {
    const r = await startRig({ keepLoaded: 1 });
    writeVersion(r.adapters, 1);
    await r.waitLive("v000001");
    writeVersion(r.adapters, 2);
    await r.waitLive("v000002");
    await r.sc.hotload!.idle();
    expect([...r.server.adapters.keys()].sort()).toEqual(["clawloop-v000001", "clawloop-v000002"]);
    fs.renameSync(r.adapters, `${r.adapters}.old`);
    fs.mkdirSync(r.adapters);
    const v1 = writeVersion(r.adapters, 1, { adapter: tinyAdapter(101) });
    await r.waitLive("v000001");
    // Loaded again from the new directory (the old copy unloaded first), not switched to the old copy.
    expect(r.server.calls.slice(-2)).toEqual(["unload clawloop-v000001", "load clawloop-v000001"]);
    expect((await rows(r)).get("v000001")).toMatchObject({ status: "live", manifest: readVersionManifest(v1) });
  });
});

// The live (and pinned) version's directory is gone when the sidecar starts again: pruned or moved
// away by the user. Nothing was wrong with that version, so it is retired, not rejected, and the
// trainer (which reads rejections as verdicts) sees no rejection.
describe("hot-load switchboard: the live version's directory gone at a restart", () => {
  it("retires (not rejects) and unpins it; the trainer counts no rejection; newer versions go live", async () => {
    const a = await stoppedWithV2Pinned();
    const { dataDir } = a;
    // Pruned as retention prunes (recorded first, then the directory goes), so the trainer's
    // reject-pause would count a rejection of it.
    const v2 = path.join(a.adapters, "v000002");
    appendPruned(a.adapters, [prunedRecord(readVersionManifest(v2)!)]);
    fs.rmSync(v2, { recursive: true });

    const server2 = await startLoraServer({ kind: "vllm", model: "base-m" });
    cleanup.push(() => server2.close());
    const b = await startRig({ dataDir, server: server2 });
    // Until the first pass (with the base known) has run; the restore is part of it.
    for (const until = Date.now() + 15_000; b.sc.hotload!.status().base === null; ) {
      if (Date.now() > until) throw new Error(JSON.stringify(b.sc.hotload!.status()));
      await new Promise((res) => setTimeout(res, 20));
    }
    await b.sc.hotload!.idle();
    const st = b.sc.hotload!.status();
    expect(st).toMatchObject({ live: null, pinned: null, lastRejection: null });
    expect((await b.chat()).model).toBe("base-m");
    // Not held back by the old pin.
    writeVersion(b.adapters, 3, { parent: "v000001" });
    await b.waitLive("v000003");
    await b.sc.close();

    const store = await Store.open({ dataDir, writes: [] });
    cleanup.push(() => store.close());
    const row = (await store.list("adapters")).find((x) => x.id === "v000002")!;
    expect(row).toMatchObject({ status: "retired", pinned: false });
    expect(row.statusReason).toContain("directory is gone");
    expect(row.liveAt).not.toBeNull();
    const verdicts = await readVerdicts(store, b.adapters);
    expect([...verdicts.rejected.keys()]).toEqual([]);
    expect(rejectionRun(["v000001", "v000002", "v000003"], verdicts, 1)).toBeNull();
  });
});

// A rollback is done only once its version is live and HEAD.json names it. A target whose files
// cannot be read (corrupted or deleted on disk) fails with the reason, and changes nothing: the live
// version keeps serving, newer versions stay, HEAD is not written — also when a copy of the target
// is still loaded in the server (keepLoaded), which used to be switched to without reading the files.
describe("hot-load switchboard: a rollback whose target's files cannot be read", () => {
  it("fails with the reason (control API, /status, clawloop status); the live version keeps serving; a good rollback is done", async () => {
    const r = await startRig({ keepLoaded: 1 });
    for (let n = 1; n <= 3; n++) {
      writeVersion(r.adapters, n);
      await r.waitLive(versionName(n));
    }
    await r.sc.hotload!.idle();
    expect([...r.server.adapters.keys()].sort()).toEqual(["clawloop-v000002", "clawloop-v000003"]);
    const unchanged = async () => {
      expect(r.sc.hotload!.status()).toMatchObject({ live: "v000003", pinned: null });
      expect((await r.chat()).model).toBe("clawloop-v000003");
      expect(readHead(r.adapters)).toBeNull();
      const table = await rows(r);
      expect(table.get("v000003")).toMatchObject({ status: "live", pinned: false });
    };

    // v2 is still loaded in the server, its files on disk are corrupted.
    const f2 = path.join(r.adapters, "v000002", "adapter_model.safetensors");
    fs.writeFileSync(f2, "not safetensors");
    const bad = await r.api("/clawloop/v1/adapters/rollback", { version: "v000002" });
    expect(bad.status).toBe(409);
    expect(bad.json.error.message).toMatch(/^rollback to v000002 failed: its files cannot be read \(adapter_model\.safetensors does not match the sha256.*\); v000003 keeps serving$/);
    let st = await r.status();
    expect(st.lastRollback).toMatchObject({ version: "v000002", state: "failed", reason: bad.json.error.message });
    expect(st.lastRollback!.at).not.toBeNull();
    await unchanged();

    // v1 is not loaded, a file of it is gone.
    fs.rmSync(path.join(r.adapters, "v000001", "adapter_config.json"));
    const gone = await r.api("/clawloop/v1/adapters/rollback", { version: "v000001" });
    expect(gone.status).toBe(409);
    expect(gone.json.error.message).toContain("adapter_config.json is missing");
    expect((await r.status()).lastRollback).toMatchObject({ version: "v000001", state: "failed" });
    await unchanged();
    expect(r.server.calls.filter((c) => c.startsWith("load"))).toEqual(["load clawloop-v000001", "load clawloop-v000002", "load clawloop-v000003"]);

    // clawloop status says so.
    const config = loadConfig({ flags: { dataDir: r.dataDir }, env: {} });
    const text = formatStatus(await collectStatus(config, r.sc.url));
    expect(text).toMatch(/last rollback: to v000001 FAILED at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d: rollback to v000001 failed: its files cannot be read \(adapter_config\.json is missing\)/);

    // A rollback whose target is sound is done once it is live, and HEAD names it.
    writeVersion(r.adapters, 4);
    await r.waitLive("v000004");
    const ok = await r.api("/clawloop/v1/adapters/rollback", { version: "v000003" });
    expect(ok).toEqual({ status: 200, json: { live: "v000003", pinned: "v000003" } });
    st = await r.status();
    expect(st.lastRollback).toMatchObject({ version: "v000003", state: "done", reason: null });
    expect(readHead(r.adapters)).toMatchObject({ version: "v000003", seq: 1 });
    expect(formatStatus(await collectStatus(config, r.sc.url))).toMatch(/last rollback: to v000003 at \d{4}-/);
  });
});
