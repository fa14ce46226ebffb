// The dashboard in a real browser (Debian's Chromium, driven by playwright-core), on a hot-loading
// sidecar in front of a scripted vLLM with its LoRA API, over a store with recorded turns,
// judgments, training steps and real adapter version directories. It signs in with the printed
// link, finds the latest turn, its reward and the live version, follows new turns and judgments
// without a reload, rolls back through the page (the control API then reports the new live
// version), and is refused without the token. A screenshot of each view goes to test-artifacts/.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Page } from "playwright-core";
import fs from "node:fs";
import { loadConfig, pauseTraining, resumeTraining, silentLogger, Store } from "../../core/index.js";
import { startLoraServer, type LoraServer } from "../../fixtures/servers/lora.js";
import { dashboardLink } from "../../sidecar/index.js";
import { fallbackOf } from "../../trainer/index.js";
import { startHotloadingSidecar, type HotloadSidecarHandle } from "../../sidecar/hotload/index.js";
import { writeVersion } from "../support/adapter-versions.js";
import { artifactPath, launchChromium } from "../support/browser.js";
import { seedDataDir, type Seeded } from "./dashboard-seed.js";
import { post, removeTmpDirs, tagged, tmpDir, waitFor } from "./sidecar-helpers.js";

let up: LoraServer;
let sc: HotloadSidecarHandle;
let dataDir: string;
let seed: Seeded;
let browser: Browser;
let ctx: BrowserContext;
let page: Page;
const requested: string[] = [];
// The page functions below run in the browser but are type-checked without the DOM lib (which would
// loosen node's types for every test, e.g. Response.json() to any): they name only what they touch
// (globalThis is the page's window).
type WithDataset = { dataset: Record<string, string | undefined> };
const problems: string[] = [];

/** What `GET /clawloop/v1/adapters` answers, as far as these tests read it. */
interface AdaptersBody {
  live: string | null;
  pinned: string | null;
  versions: { id: string; status: string }[];
}

async function adapters(): Promise<AdaptersBody> {
  const res = await fetch(`${sc.url}/clawloop/v1/adapters`, { headers: { authorization: `Bearer ${sc.token}` } });
  expect(res.status).toBe(200);
  // A JSON body is untyped (unknown): this names what the endpoint sends.
  return (await res.json()) as AdaptersBody;
}

/** What the page heard over its event stream, and what the API has, for a failure message. */
async function liveDiagnostics(): Promise<string> {
  const conn = page.locator("#conn");
  const res = await fetch(`${sc.url}/clawloop/v1/timeline?limit=2`, { headers: { authorization: `Bearer ${sc.token}` } });
  const tl = (await res.json()) as { turns: { id: string }[] };
  return `page: ${await conn.innerText()}, ${await conn.getAttribute("title")}; API's newest turns: ${tl.turns.map((t) => t.id).join(", ")}`;
}

async function shot(name: string, p: Page = page): Promise<void> {
  await p.screenshot({ path: artifactPath("dashboard", `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  dataDir = tmpDir("clawloop-dashboard-browser-");
  seed = await seedDataDir(dataDir);
  up = await startLoraServer({ kind: "vllm", model: "scripted-model" });
  const config = loadConfig({ flags: { dataDir, sidecar: { upstream: `${up.url}/v1`, port: 0 } }, env: {} });
  sc = await startHotloadingSidecar(config, { logger: silentLogger });
  // The newest version on disk goes live; the older ones were overtaken.
  await waitFor(async () => (await adapters()).live === "v000003", "v000003 to go live");
  // A broken copy of the next version is rejected and v000003 stays live.
  writeVersion(`${dataDir}/adapters`, 4, { corrupt: "adapter_model.safetensors" });
  await waitFor(async () => (await adapters()).versions.find((v) => v.id === "v000004")?.status === "rejected", "v000004 to be rejected");
  browser = await launchChromium();
  ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  page = await ctx.newPage();
  page.on("request", (req) => requested.push(req.url()));
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
  });
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await sc?.close();
  await up?.close();
  removeTmpDirs();
});

describe("dashboard in Chromium", () => {
  it("signs in with the printed link, then shows the latest turn, its reward and the live version", async () => {
    const link = dashboardLink(sc.url, sc.token);
    const res = await page.goto(link);
    expect(res?.status()).toBe(200);
    // The token left the address bar.
    expect(page.url()).toBe(`${sc.url}/clawloop/`);
    const first = page.locator(".timeline .turn").first();
    await first.waitFor();
    await expect.poll(() => first.getAttribute("data-turn-id")).toBe(seed.latest.id);
    const text = await first.innerText();
    expect(text).toContain("Can you run the tests again with --verbose");
    expect(text).toContain("the slowest is “store survives kill -9”");
    expect(text).toContain("perfect, that's what I needed");
    expect(await first.locator(".turn-head .reward").innerText()).toBe("+1");
    expect(await first.locator(".badge-adapter").innerText()).toBe("v000003");
    await expect.poll(() => page.locator("#live-adapter").innerText()).toBe("live: v000003");
    await expect.poll(() => page.locator("#conn").innerText()).toBe("live");
    // A hint from the judge is on the turn it was written for.
    const hinted = page.locator(".turn", { hasText: "Now open src/index.ts" });
    expect(await hinted.locator(".hint").innerText()).toContain("Use the exact path the user gave");
    await shot("1-conversations");
  });

  it("follows new turns and judgments without a reload", async () => {
    const marker = await page.evaluate(() => ((globalThis as unknown as { __marker: number }).__marker = Math.random()));
    const answer = await post(`${sc.url}/v1/chat/completions`, { model: "scripted-model", messages: [{ role: "user", content: "What does the dashboard show now?" }] }, tagged("s-alice", "live-run", 1));
    expect(answer.status).toBe(200);
    await answer.text();
    const first = page.locator(".timeline .turn").first();
    await expect
      .poll(() => first.getAttribute("data-turn-id"), { timeout: 15_000 })
      .toBe("live-run:model:1")
      .catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await liveDiagnostics()}`);
      });
    expect(await first.innerText()).toContain("echo: What does the dashboard show now?");
    // Served by the live adapter, recorded as such.
    expect(await first.locator(".badge-adapter").innerText()).toBe("v000003");
    expect(await first.locator(".turn-head .reward").innerText()).toBe("unjudged");
    // The judge loop (another store handle) scores it.
    const judge = await Store.open({ dataDir, writes: ["judgments"] });
    judge.put("judgments", {
      id: "live-run:model:1", turnId: "live-run:model:1", sessionId: "s-alice", score: -1, method: "prm", votes: [-1, -1, 1],
      raw: [], hint: "Say what the page shows instead of echoing the question.", nextStateIds: [], judgeModel: "scripted-model",
      costTokens: 1, costMs: 1, createdAt: new Date().toISOString(),
    });
    await judge.close();
    await expect.poll(() => first.locator(".turn-head .reward").innerText(), { timeout: 15_000 }).toBe("−1");
    expect(await first.locator(".hint").innerText()).toContain("instead of echoing");
    expect(await page.evaluate(() => (globalThis as unknown as { __marker?: number }).__marker)).toBe(marker);
  });

  it("searches turns by text and opens a session", async () => {
    await page.fill("input.search", "australia");
    await page.press("input.search", "Enter");
    await expect.poll(() => page.locator(".timeline .turn").count()).toBe(1);
    expect(await page.locator(".timeline .turn").first().innerText()).toContain("wrong, it's Canberra");
    await page.click(".sessions a[title='s-bob']");
    await expect.poll(() => page.locator(".timeline-head h2").innerText()).toBe("Session s-bob");
    await expect.poll(() => page.locator(".timeline .turn").count()).toBe(seed.turns.filter((t) => t.sessionId === "s-bob").length);
    // The whole session is shown: nothing older to load.
    expect(await page.locator("button.more").isVisible()).toBe(false);
    await shot("2-session");
  });

  it("learning: reward trend, training steps and demo-run satisfaction", async () => {
    await page.click(".tabs a[data-view=learning]");
    await page.locator(".learning .chart-svg").first().waitFor();
    // One reward dot per judgment: the seeded ones and the one written while we watched.
    await expect.poll(() => page.locator(".learning .panel").nth(0).locator("circle").count()).toBe(seed.judgments.length + 1);
    expect(await page.locator(".learning .panel").nth(0).locator("path.line").count()).toBe(1);
    const steps = page.locator(".learning .panel").nth(1);
    expect(await steps.locator(".small-chart").count()).toBe(4);
    expect(await steps.locator("h3").allInnerTexts()).toEqual(["Loss", "KL to base", "Gradient norm", "Tokens and mean reward per step"]);
    const runs = page.locator(".learning .panel").nth(2);
    expect(await runs.locator(".legend").innerText()).toContain("student · combined");
    expect(await runs.innerText()).toContain("17% → 76%");
    expect(await runs.locator(".notice-error").innerText()).toContain("run-broken");
    const table = page.locator(".learning .panel").nth(3);
    expect(await table.locator("tbody tr").count()).toBe(3);
    await shot("3-learning");
  });

  it("adapters: statuses, what each was trained on, and a rollback with one click", async () => {
    await page.click(".tabs a[data-view=adapters]");
    const row = (v: string) => page.locator(`tr[data-version=${v}]`);
    await row("v000003").waitFor();
    expect(await row("v000003").locator(".badge-live").innerText()).toBe("live");
    expect(await row("v000004").locator(".badge-rejected").innerText()).toBe("rejected");
    expect(await row("v000001").locator(".badge-retired").innerText()).toBe("retired");
    expect(await row("v000002").locator("a").first().innerText()).toBe(`${seed.samplesOf.v000002!.length} samples`);
    await shot("4-adapters");

    await row("v000002").getByRole("button", { name: "Roll back to this" }).click();
    await expect.poll(() => page.locator("#toast").innerText(), { timeout: 15_000 }).toContain("Rolled back to v000002");
    const after = await adapters();
    expect(after.live).toBe("v000002");
    expect(after.pinned).toBe("v000002");
    await expect.poll(() => page.locator("#adapters-live").innerText()).toBe("v000002");
    await expect.poll(() => page.locator("#live-adapter").innerText()).toBe("live: v000002");
    await expect.poll(() => row("v000002").locator(".badge-pin").count()).toBe(1);
    await shot("5-adapters-after-rollback");

    // Unpin with one click too.
    await page.locator(".adapters-summary").getByRole("button", { name: "Unpin" }).click();
    await expect.poll(async () => (await adapters()).pinned, { timeout: 15_000 }).toBeNull();

    // The samples link opens the turns that version was trained on.
    await row("v000002").locator("a").first().click();
    await expect.poll(() => page.locator(".timeline-head h2").innerText()).toBe("Training samples");
    const ids = await page.locator(".timeline .turn").evaluateAll((els: WithDataset[]) => els.map((e) => e.dataset.turnId));
    expect(ids.sort()).toEqual([...seed.samplesOf.v000002!].sort());
  });

  it("health: the four loops, queues and last errors", async () => {
    await page.click(".tabs a[data-view=health]");
    await page.locator(".loops .loop").first().waitFor();
    expect(await page.locator(".loops .loop").evaluateAll((els: WithDataset[]) => els.map((e) => e.dataset.loop))).toEqual(["serve", "collect", "judge", "train"]);
    expect(await page.locator(".loop[data-loop=serve]").getAttribute("class")).toContain("loop-ok");
    expect(await page.locator(".loop[data-loop=judge]").innerText()).toContain("running");
    expect(await page.locator(".loop[data-loop=train]").innerText()).toContain("its process is gone");
    expect(await page.locator(".errors").innerText()).toContain("out of memory while building step 4");
    await shot("6-health");
  });

  it("health: the Train card says whether the base model is loaded, who paused training and why, and the latest fall back", async () => {
    const file = `${dataDir}/loops/train.json`;
    const good = fs.readFileSync(file, "utf8");
    const at = new Date().toISOString();
    const facts = { grewFrom: "v000001", passedOver: "v000003", rejected: [{ version: "v000002", reason: "log-prob check failed" }], at };
    // As the trainer writes it: the facts and their line (fallbackOf); `line: false`, as an older trainer did (the facts only).
    const write = (weights: unknown, line = true) =>
      fs.writeFileSync(file, JSON.stringify({
        ...JSON.parse(good), pid: process.pid, state: "paused", updatedAt: new Date().toISOString(), weights,
        fallback: line ? fallbackOf(facts) : facts,
      }));
    const card = page.locator(".loop[data-loop=train]");
    try {
      pauseTraining(dataDir, "trainer", "the sidecar rejected the last 3 adapter versions it checked");
      write({ state: "not loaded", since: at, rssMb: 161 });
      await page.click(".tabs a[data-view=health]");
      await expect.poll(() => card.innerText(), { timeout: 15_000 }).toContain("not loaded (loads when a batch is ready) · trainer RSS 161 MB");
      const text = await card.innerText();
      expect(text).toMatch(/Paused\s+by trainer — the sidecar rejected the last 3 adapter versions it checked/);
      expect(text).toMatch(/Fell back\s+grew from v000001 after v000002 was rejected \(log-prob check failed\); passed over v000003, built on it/);
      await shot("6b-health-train-paused");
      // An older trainer's file, without the line: the page still shows the facts it has.
      write({ state: "not loaded", since: at, rssMb: 161 }, false);
      await expect.poll(() => card.innerText(), { timeout: 15_000 }).toMatch(/Fell back\s+passed over v000003; grew from v000001; rejected: v000002 \(log-prob check failed\)/);
      // Loaded: since when; resumed: the Paused row goes.
      write({ state: "loaded", since: at, rssMb: 412 });
      resumeTraining(dataDir);
      await expect.poll(() => card.innerText(), { timeout: 15_000 }).toMatch(/Base model\s+loaded since .* · trainer RSS 412 MB/);
      await expect.poll(() => card.innerText(), { timeout: 15_000 }).not.toContain("Paused");
    } finally {
      resumeTraining(dataDir);
      fs.writeFileSync(file, good);
    }
  });

  it("every request stayed on the sidecar, and the page logged no error", () => {
    expect(requested.length).toBeGreaterThan(5);
    expect(requested.filter((u) => !u.startsWith(`${sc.url}/`))).toEqual([]);
    expect(problems).toEqual([]);
  });

  // After the no-error check: the browser logs the refused rollback's 409 as a console error.
  it("adapters: the last rollback, and a failed one with the reason (the live version keeps serving)", async () => {
    await page.click(".tabs a[data-view=adapters]");
    const fact = page.locator("#adapters-rollback");
    // The rollback to v000002 above.
    await expect.poll(() => fact.getAttribute("data-state"), { timeout: 15_000 }).toBe("done");
    expect(await fact.innerText()).toContain("to v000002");
    const live = (await adapters()).live;
    fs.rmSync(`${dataDir}/adapters/v000001/adapter_config.json`);
    await page.locator("tr[data-version=v000001]").getByRole("button", { name: "Roll back to this" }).click();
    await expect.poll(() => page.locator("#toast").innerText(), { timeout: 15_000 }).toContain("failed");
    await expect.poll(() => fact.getAttribute("data-state"), { timeout: 15_000 }).toBe("failed");
    const text = await fact.innerText();
    expect(text).toContain("to v000001");
    expect(text).toContain("adapter_config.json is missing");
    expect(await fact.locator(".badge-bad").innerText()).toBe("failed");
    expect((await adapters()).live).toBe(live);
    await shot("8-adapters-failed-rollback");
  });

  it("refuses a browser without the token, and says how to get the link", async () => {
    const stranger = await browser.newContext({ viewport: { width: 1000, height: 600 } });
    try {
      const p = await stranger.newPage();
      const res = await p.goto(`${sc.url}/clawloop/`);
      expect(res?.status()).toBe(401);
      expect(await p.locator("body").innerText()).toContain("clawloop dashboard");
      // The refusal page may not even script (its CSP allows nothing); ask with the browser's cookies.
      const api = await stranger.request.get(`${sc.url}/clawloop/v1/timeline`);
      expect(api.status()).toBe(401);
      const wrong = await p.goto(`${sc.url}/clawloop/?token=guess`);
      expect(wrong?.status()).toBe(401);
      expect((await stranger.cookies()).length).toBe(0);
      await shot("7-refused", p);
    } finally {
      await stranger.close();
    }
  });
});
