// Retention and pausing against a running hot-loading sidecar (in front of the scripted vLLM with
// its LoRA API): the trainer's retention pass deletes old versions while the sidecar watches the
// directory — the live and pinned ones stay, nothing is rejected, the listings (control API and
// `clawloop adapters list` without a sidecar) leave the deleted ones out, and a rollback to one is
// a 404 that says it was pruned. Pause and resume through the control API, with the bearer token.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { readPruned } from "../../adapters/index.js";
import { loadConfig, readTrainPause, silentLogger, Store, type AdapterVersion, type Config } from "../../core/index.js";
import { startLoraServer } from "../../fixtures/servers/lora.js";
import { startHotloadingSidecar, type HotloadSidecarHandle } from "../../sidecar/hotload/index.js";
import { offlineListing } from "../../cli/commands/adapters.js";
import { programFor } from "../../cli/entry.js";
import { readTable, Retention } from "../../trainer/retention.js";
import { writeVersion } from "../support/adapter-versions.js";
import { until } from "../support/until.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function rig(): Promise<{ sc: HotloadSidecarHandle; config: Config; dataDir: string; adapters: string; api: (p: string, body?: unknown, auth?: boolean) => Promise<{ status: number; json: any }> }> {
  const server = await startLoraServer({ kind: "vllm", model: "base-m" });
  cleanup.push(() => server.close());
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-retention-e2e-"));
  cleanup.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({ flags: { dataDir, sidecar: { upstream: `${server.url}/v1`, port: 0, upstreamKind: "vllm" }, adapters: { retrySec: 0.2 } }, env: {} });
  const sc = await startHotloadingSidecar(config, { logger: silentLogger, storeHost: "main" });
  cleanup.push(() => sc.close());
  const api = async (p: string, body?: unknown, auth = true) => {
    const res = await fetch(sc.url + p, {
      method: body === undefined ? "GET" : "POST",
      headers: { ...(auth ? { authorization: `Bearer ${sc.token}` } : {}), "content-type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, json: await res.json() };
  };
  return { sc, config, dataDir, adapters: path.join(dataDir, "adapters"), api };
}


describe("retention under a running sidecar", () => {
  it("deletes old versions but never the live or pinned one; listings leave them out; rollback to one is a clear 404", async () => {
    const r = await rig();
    for (let n = 1; n <= 6; n++) writeVersion(r.adapters, n);
    await until("v000006 live", () => r.sc.hotload!.status().live === "v000006");
    // The user pins an old version: it serves, and the table says so (what the trainer reads).
    expect((await r.api("/clawloop/v1/adapters/pin", { version: "v000002" })).json).toEqual({ live: "v000002", pinned: "v000002" });
    const reader = await Store.open({ dataDir: r.dataDir });
    cleanup.push(() => reader.close());
    const table = await until("the pin in the table", async () => {
      const t = await readTable(reader);
      return t.inUse.includes("v000002") ? t : null;
    });

    const retention = new Retention({ adaptersDir: r.adapters, keep: 2, graceMs: 0, logger: silentLogger });
    expect(retention.pass({ table: table.inUse, head: null, tip: "v000006" }).pruned).toEqual(["v000001", "v000003", "v000004"]);
    await r.sc.hotload!.idle();
    // The watcher saw the deletes; the switchboard rejected nothing and still serves the pin.
    const st = r.sc.hotload!.status();
    expect(st).toMatchObject({ live: "v000002", pinned: "v000002", lastRejection: null });
    const listing = (await r.api("/clawloop/v1/adapters")).json as { live: string; versions: AdapterVersion[] };
    expect(listing.versions.map((v) => v.id)).toEqual(["v000006", "v000005", "v000002"]);

    const gone = await r.api("/clawloop/v1/adapters/rollback", { version: "v000003" });
    expect(gone.status).toBe(404);
    expect(gone.json.error.message).toMatch(/^v000003 was pruned at .*adapters\.keepVersions/);
    expect((await r.api("/clawloop/v1/adapters/pin", { version: "v000001" })).status).toBe(404);
    expect((await r.api("/clawloop/v1/adapters/rollback", { version: "v000099" })).json.error.message).toMatch(/^no adapter version v000099/);
    // The row of a pruned version was not turned into a rejection by the failed attempt.
    expect(r.sc.hotload!.status().lastRejection).toBe(null);
    expect((await r.api("/clawloop/v1/adapters/rollback", { version: "v000005" })).json).toEqual({ live: "v000005", pinned: "v000005" });

    // `clawloop adapters list` without a sidecar reads the same (from the store and the directory).
    await r.sc.close();
    const offline = await offlineListing(r.config);
    expect(offline.versions.map((v) => v.id)).toEqual(["v000006", "v000005", "v000002"]);
    expect(offline).toMatchObject({ live: "v000005", pinned: "v000005" });
    expect([...readPruned(r.adapters).keys()]).toEqual(["v000001", "v000003", "v000004"]);
    const out: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => out.push(String(chunk)) > 0);
    cleanup.push(() => {
      vi.restoreAllMocks();
    });
    const argv = ["node", "clawloop", "adapters", "list", "--data", r.dataDir, "--url", r.sc.url];
    await (await programFor(argv)).parseAsync(argv);
    const text = out.join("");
    expect(text.split("\n").filter((l) => /^[ *]v\d{6}/.test(l)).map((l) => l.slice(1, 8))).toEqual(["v000006", "v000005", "v000002"]);
    expect(text).toContain("the sidecar is not running: from the store");
    expect(text).toContain("3 older versions deleted by retention (adapters.keepVersions); they cannot be rolled back to");
  });
});

describe("pausing training through the control API", () => {
  it("POST /clawloop/v1/train/pause and /resume set and clear <data>/train.paused; /status shows it; the token is required", async () => {
    const r = await rig();
    expect((await r.api("/clawloop/v1/train/pause", {}, false)).status).toBe(401);
    expect(readTrainPause(r.dataDir)).toBe(null);
    expect((await r.api("/clawloop/v1/status")).json.train).toEqual({ paused: null });

    // No body at all is fine.
    const res = await fetch(`${r.sc.url}/clawloop/v1/train/pause`, { method: "POST", headers: { authorization: `Bearer ${r.sc.token}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ paused: true, wasPaused: false, by: "api", reason: null, since: expect.any(String) });
    expect(readTrainPause(r.dataDir)).toMatchObject({ by: "api" });
    expect((await r.api("/clawloop/v1/status")).json.train.paused).toMatchObject({ by: "api" });

    expect((await r.api("/clawloop/v1/train/pause", { reason: 5 })).status).toBe(400);
    expect((await r.api("/clawloop/v1/train/pause", "{not json")).status).toBe(400);
    // Pausing again keeps the first pause.
    const again = await r.api("/clawloop/v1/train/pause", { reason: "second" });
    expect(again.json).toMatchObject({ paused: true, wasPaused: true, reason: null });

    expect((await r.api("/clawloop/v1/train/resume", {}, false)).status).toBe(401);
    expect(readTrainPause(r.dataDir)).not.toBe(null);
    expect((await r.api("/clawloop/v1/train/resume", {})).json).toEqual({ paused: false, wasPaused: true });
    expect(readTrainPause(r.dataDir)).toBe(null);
    expect((await r.api("/clawloop/v1/train/resume", {})).json).toEqual({ paused: false, wasPaused: false });
    expect((await r.api("/clawloop/v1/status")).json.train).toEqual({ paused: null });
  });
});
