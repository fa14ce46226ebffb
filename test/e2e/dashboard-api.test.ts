// The dashboard's server side on a real sidecar over a seeded store: sign-in (token link → cookie),
// refusals, the page's files, every read endpoint and its bad input, live updates over SSE, and
// `clawloop dashboard`'s link.
import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pauseTraining, resumeTraining, Store, type Judgment } from "../../core/index.js";
import { dashboardUrl, findDashboardLink } from "../../cli/commands/dashboard.js";
import { localUrl, upFile } from "../../cli/up-file.js";
import { loadConfig } from "../../core/index.js";
import { dashboardLink } from "../../sidecar/index.js";
import { fallbackOf } from "../../trainer/index.js";
import { seedDataDir, type Seeded } from "./dashboard-seed.js";
import { removeTmpDirs, rig, tmpDir, type Rig } from "./sidecar-helpers.js";

let r: Rig;
let seed: Seeded;
let cookie: string;

function withCookie(pathname: string, init: RequestInit = {}): Promise<Response> {
  return fetch(r.sc.url + pathname, { ...init, redirect: "manual", headers: { cookie, ...(init.headers ?? {}) } });
}

async function json<T = any>(pathname: string): Promise<T> {
  const res = await withCookie(pathname);
  expect(res.status, `${pathname}: ${res.status}`).toBe(200);
  return (await res.json()) as T;
}

beforeAll(async () => {
  const dataDir = tmpDir("clawloop-dashboard-");
  seed = await seedDataDir(dataDir);
  r = await rig({}, {}, { dataDir });
  const res = await fetch(`${r.sc.url}/clawloop/?token=${encodeURIComponent(r.sc.token)}`, { redirect: "manual" });
  cookie = (res.headers.get("set-cookie") ?? "").split(";")[0]!;
});

afterAll(async () => {
  await r?.close();
  removeTmpDirs();
});

describe("access", () => {
  it("refuses the page, its files, its API and its event stream without the token or cookie", async () => {
    const page = await fetch(`${r.sc.url}/clawloop/`);
    expect(page.status).toBe(401);
    expect(page.headers.get("content-type")).toContain("text/html");
    const html = await page.text();
    expect(html).toContain("clawloop dashboard");
    expect(html).not.toContain(r.sc.token);
    for (const p of ["/clawloop/assets/app.js", "/clawloop/v1/timeline", "/clawloop/v1/loops", "/clawloop/v1/updates", "/clawloop/v1/runs"]) {
      const res = await fetch(r.sc.url + p);
      expect(res.status, p).toBe(401);
      await res.arrayBuffer();
    }
    // A forged cookie is no better than none.
    const forged = await fetch(`${r.sc.url}/clawloop/v1/timeline`, { headers: { cookie: `clawloop_session=${r.sc.token}` } });
    expect(forged.status).toBe(401);
  });

  it("a link with a wrong token is refused and sets no cookie", async () => {
    const res = await fetch(`${r.sc.url}/clawloop/?token=not-the-token`, { redirect: "manual" });
    expect(res.status).toBe(401);
    expect(res.headers.get("set-cookie")).toBeNull();
    expect(await res.text()).toContain("not this sidecar's control token");
  });

  it("the token link sets an HttpOnly, SameSite=Strict cookie (not the token) and redirects to the clean URL", async () => {
    const res = await fetch(`${r.sc.url}/clawloop/?token=${encodeURIComponent(r.sc.token)}`, { redirect: "manual" });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/clawloop/");
    const set = res.headers.get("set-cookie") ?? "";
    expect(set).toMatch(/^clawloop_session=[\w-]+;/);
    expect(set).toContain("HttpOnly");
    expect(set).toContain("SameSite=Strict");
    expect(set).toContain("Path=/clawloop/");
    expect(set).not.toContain(r.sc.token);
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    const page = await withCookie("/clawloop/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(await page.text()).toContain('<script type="module" src="/clawloop/assets/app.js">');
    // The bearer token still works for scripts.
    const api = await r.api("/clawloop/v1/timeline?limit=1");
    expect(api.status).toBe(200);
  });

  it("serves only the page's own files, with ETags", async () => {
    const js = await withCookie("/clawloop/assets/app.js");
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toContain("text/javascript");
    const etag = js.headers.get("etag")!;
    expect(etag).toBeTruthy();
    await js.arrayBuffer();
    const again = await withCookie("/clawloop/assets/app.js", { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    for (const p of ["/clawloop/assets/..%2Fmount.ts", "/clawloop/assets/jsconfig.json", "/clawloop/assets/nope.js", "/clawloop/assets/index.html"]) {
      const res = await withCookie(p);
      expect(res.status, p).toBe(404);
      await res.arrayBuffer();
    }
  });
});

describe("read endpoints", () => {
  it("timeline: newest first, each turn with its user message, answer, next states, judgment and adapter", async () => {
    const tl = await json("/clawloop/v1/timeline?limit=50");
    expect(tl.turns.map((t: { id: string }) => t.id)).toEqual([...seed.turns].reverse().map((t) => t.id));
    const latest = tl.turns[0];
    expect(latest.id).toBe(seed.latest.id);
    expect(latest.user).toBe(seed.latest.request.messages!.at(-1)!.content);
    expect(latest.response.content).toBe(seed.latest.response!.content);
    expect(latest.adapter).toBe("v000003");
    expect(latest.judgment).toMatchObject({ score: 1, method: "prm", votes: [1, 1, 1] });
    expect(latest.nextStates).toEqual([expect.objectContaining({ kind: "user_message", text: "perfect, that's what I needed" })]);
    const failed = tl.turns.find((t: { status: string }) => t.status === "upstream_error");
    expect(failed.response).toBeNull();
    expect(failed.judgment).toBeNull();
    const tool = tl.turns.find((t: { user: string }) => t.user === "Now open src/index.ts");
    expect(tool.response.toolCalls).toEqual([{ name: "read_file", arguments: '{"path":"src/idx.ts"}' }]);
    expect(tool.judgment.hint).toContain("exact path");
    expect(tl.next).toBeNull();
  });

  it("timeline pages backwards with the cursor, without gaps or repeats", async () => {
    const seen: string[] = [];
    let before: string | null = null;
    for (let i = 0; i < 10; i++) {
      const page: { turns: { id: string }[]; next: string | null } = await json(`/clawloop/v1/timeline?limit=3${before ? `&before=${encodeURIComponent(before)}` : ""}`);
      seen.push(...page.turns.map((t) => t.id));
      if (!page.next) break;
      before = page.next;
    }
    expect(seen).toEqual([...seed.turns].reverse().map((t) => t.id));
  });

  it("timeline: by session, by text (case-insensitive, quotes and unicode), and by turn ids", async () => {
    const bob = await json("/clawloop/v1/timeline?session=s-bob");
    expect(bob.turns.length).toBe(seed.turns.filter((t) => t.sessionId === "s-bob").length);
    expect(bob.turns.every((t: { sessionId: string }) => t.sessionId === "s-bob")).toBe(true);
    const canberra = await json(`/clawloop/v1/timeline?q=${encodeURIComponent("CAPITAL of australia")}`);
    expect(canberra.turns.map((t: { user: string }) => t.user)).toEqual(["What's the capital of Australia?"]);
    const quoted = await json(`/clawloop/v1/timeline?q=${encodeURIComponent("“store survives")}`);
    expect(quoted.turns.map((t: { id: string }) => t.id)).toEqual([seed.latest.id]);
    const french = await json(`/clawloop/v1/timeline?q=${encodeURIComponent("'good morning'")}`);
    expect(french.turns).toHaveLength(1);
    const tool = await json(`/clawloop/v1/timeline?q=npm%20test`);
    expect(tool.turns.length).toBe(2); // a tool call's arguments and an answer
    const none = await json(`/clawloop/v1/timeline?q=zebra`);
    expect(none.turns).toEqual([]);
    const ids = seed.samplesOf.v000002!;
    const samples = await json(`/clawloop/v1/timeline?turns=${encodeURIComponent([...ids, "no-such-turn"].join(","))}`);
    expect(samples.turns.map((t: { id: string }) => t.id).sort()).toEqual([...ids].sort());
  });

  it("refuses bad parameters with a clear 400", async () => {
    for (const [p, msg] of [
      ["/clawloop/v1/timeline?limit=0", "limit must be a positive integer"],
      ["/clawloop/v1/timeline?limit=abc", "limit must be a positive integer"],
      ["/clawloop/v1/timeline?before=yesterday", "before must be an ISO-8601 time"],
      [`/clawloop/v1/timeline?q=${"x".repeat(201)}`, "q is longer than 200"],
      [`/clawloop/v1/timeline?turns=${Array.from({ length: 201 }, (_, i) => `t${i}`).join(",")}`, "at most 200 ids"],
      ["/clawloop/v1/judgments?since=nope", "since must be an ISO-8601 time"],
      ["/clawloop/v1/rewards?window=-1", "window must be a positive integer"],
    ] as const) {
      const res = await withCookie(p);
      expect(res.status, p).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain(msg);
    }
  });

  it("sessions of the recent turns, newest activity first", async () => {
    const { sessions } = await json("/clawloop/v1/timeline/sessions");
    expect(sessions.map((s: { sessionId: string }) => s.sessionId)).toEqual(["s-alice", "s-bob", "s-ci"]);
    const alice = sessions[0];
    expect(alice.turns).toBe(seed.turns.filter((t) => t.sessionId === "s-alice").length);
    expect(alice.errors).toBe(1);
    expect(alice.lastUser).toBe(seed.latest.request.messages!.at(-1)!.content);
  });

  it("judgments and the reward trend with its rolling mean", async () => {
    const { judgments } = await json("/clawloop/v1/judgments?limit=3");
    expect(judgments.map((j: Judgment) => j.id)).toEqual([...seed.judgments].reverse().slice(0, 3).map((j) => j.id));
    const rw = await json("/clawloop/v1/rewards?window=3");
    const scores = seed.judgments.map((j) => j.score);
    expect(rw.total).toBe(seed.judgments.length);
    expect(rw.points.map((p: { score: number }) => p.score)).toEqual(scores);
    const expected = scores.map((_, i) => {
      const w = scores.slice(Math.max(0, i - 2), i + 1);
      return w.reduce((a: number, b) => a + b, 0) / w.length;
    });
    rw.rolling.forEach((p: { mean: number }, i: number) => expect(p.mean).toBeCloseTo(expected[i]!, 12));
  });

  it("training steps, newest first", async () => {
    const { steps } = await json("/clawloop/v1/train-steps");
    expect(steps.map((s: { step: number }) => s.step)).toEqual([3, 2, 1]);
    expect(steps[0]).toMatchObject({ version: "v000003", klToBase: seed.steps[2]!.klToBase, gradNorm: seed.steps[2]!.gradNorm, tokens: seed.steps[2]!.tokens });
  });

  it("the four loops: upstream health, the store, the judge (running) and the trainer (process gone), last errors", async () => {
    const v = await json("/clawloop/v1/loops");
    expect(v.serve.health.ok).toBe(true);
    expect(v.serve.url).toContain(r.up.url);
    expect(v.collect.ok).toBe(true);
    expect(v.collect.turnsTotal).toBe(seed.turns.length);
    expect(v.judge.state).toBe("running");
    expect(v.judge.status.waiting).toBe(2);
    expect(v.train.state).toBe("not running");
    expect(v.train.status.samplesWaiting).toBe(3);
    expect(v.errors.map((e: { loop: string }) => e.loop)).toEqual(["train", "judge"]);
    expect(v.errors[0].message).toContain("out of memory");
  });

  it("a status file that is not JSON is reported, not thrown", async () => {
    const file = `${r.dataDir}/loops/judge.json`;
    const good = fs.readFileSync(file, "utf8");
    fs.writeFileSync(file, "{half a file");
    try {
      const v = await json("/clawloop/v1/loops");
      expect(v.judge.state).toBe("unreadable");
      expect(v.judge.error).toContain("judge.json");
      expect(v.errors.some((e: { loop: string }) => e.loop === "judge")).toBe(true);
    } finally {
      fs.writeFileSync(file, good);
    }
  });

  it("the trainer's base-model memory, its latest fall back and the training pause reach the page", async () => {
    const file = `${r.dataDir}/loops/train.json`;
    const good = fs.readFileSync(file, "utf8");
    const weights = { state: "not loaded", since: new Date().toISOString(), rssMb: 161 };
    const fallback = fallbackOf({ grewFrom: "v000001", passedOver: "v000003", rejected: [{ version: "v000002", reason: "failed its check" }], at: new Date().toISOString() });
    // A running trainer (this process) that paused itself: the pause flag is what counts.
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(good), pid: process.pid, state: "paused", weights, fallback }));
    pauseTraining(r.dataDir, "trainer", "3 versions in a row were rejected");
    try {
      const v = await json("/clawloop/v1/loops");
      expect(v.train.state).toBe("running");
      expect(v.train.status.weights).toEqual(weights);
      expect(v.train.status.fallback).toEqual(fallback);
      // The line the page shows, as `clawloop status` prints it.
      expect(v.train.status.fallback.text).toBe("grew from v000001 after v000002 was rejected (failed its check); passed over v000003, built on it");
      expect(v.train.paused).toMatchObject({ by: "trainer", reason: "3 versions in a row were rejected" });
      resumeTraining(r.dataDir);
      expect((await json("/clawloop/v1/loops")).train.paused).toBeNull();
    } finally {
      resumeTraining(r.dataDir);
      fs.writeFileSync(file, good);
    }
  });

  it("demo runs: summaries, a run still going, and a broken summary with the reason", async () => {
    const { runs } = await json("/clawloop/v1/runs");
    const byId = Object.fromEntries(runs.map((x: { id: string }) => [x.id, x]));
    expect(byId["run-student-combined"].summary.satisfaction.at(-1)).toEqual({ version: "v000003", afterInteractions: 36, rate: 0.76 });
    expect(byId["run-in-progress"]).toMatchObject({ summary: null, error: null });
    expect(byId["run-broken"].summary).toBeNull();
    expect(byId["run-broken"].error).toContain("not JSON");
  });

  it("without a switchboard that hot-loads, /adapters is not there (the page says so)", async () => {
    const res = await withCookie("/clawloop/v1/adapters");
    expect(res.status).toBe(404);
    await res.arrayBuffer();
  });
});

describe("live updates", () => {
  it("the event stream says hello, then which topics changed when another loop writes", async () => {
    const ac = new AbortController();
    const res = await withCookie("/clawloop/v1/updates", { signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    const nextEvent = async (name: string, deadlineMs: number): Promise<any> => {
      const end = Date.now() + deadlineMs;
      for (;;) {
        const idx = buf.indexOf("\n\n");
        if (idx >= 0) {
          const block = buf.slice(0, idx);
          buf = buf.slice(idx + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev === name) return JSON.parse(data!);
          continue;
        }
        if (Date.now() > end) throw new Error(`no "${name}" event`);
        const { value, done } = await reader.read();
        if (done) throw new Error("stream ended");
        buf += decoder.decode(value, { stream: true });
      }
    };
    try {
      expect((await nextEvent("hello", 5_000)).topics).toContain("judgments");
      // Let the pulse take its baseline, then write as the judge loop would (another store handle).
      await new Promise((res2) => setTimeout(res2, 1_500));
      const judge = await Store.open({ dataDir: r.dataDir, writes: ["judgments"] });
      const t = seed.turns.find((x) => x.status !== "ok")!;
      judge.put("judgments", { ...seed.judgments[0]!, id: t.id, turnId: t.id, sessionId: t.sessionId, score: 0, createdAt: new Date().toISOString() });
      await judge.close();
      const change = await nextEvent("change", 10_000);
      expect(change.topics).toContain("judgments");
    } finally {
      ac.abort();
      await reader.cancel().catch(() => undefined);
    }
    expect(r.sc.url).toBeTruthy();
  });
});

describe("clawloop dashboard", () => {
  it("prints the sign-in link of the running sidecar, and the link signs in", async () => {
    const link = await findDashboardLink({ dataDir: r.dataDir, url: r.sc.url });
    expect(link).toBe(`${r.sc.url}/clawloop/?token=${encodeURIComponent(r.sc.token)}`);
    expect(link).toBe(dashboardLink(r.sc.url, r.sc.token));
    const res = await fetch(link, { redirect: "manual" });
    expect(res.status).toBe(303);
    expect(localUrl("0.0.0.0", 11435)).toBe("http://127.0.0.1:11435");
    expect(localUrl("::", 11435)).toBe("http://[::1]:11435");
    expect(dashboardLink("http://0.0.0.0:9/", "t")).toBe("http://127.0.0.1:9/clawloop/?token=t");
  });

  it("finds the running `clawloop up`'s sidecar, whose port may not be the configured one; --url, --port and --host win", () => {
    const dataDir = tmpDir("clawloop-dashboard-up-");
    const config = loadConfig({ file: null, flags: { dataDir } });
    expect(dashboardUrl(config, {})).toBe("http://127.0.0.1:11435");
    fs.mkdirSync(`${dataDir}/loops`, { recursive: true });
    // A live pid (this process): as `clawloop up` writes it while it runs.
    fs.writeFileSync(upFile(dataDir), JSON.stringify({ pid: process.pid, sidecar: r.sc.url, engine: null, upstream: "http://u", model: null, trainerPid: null, startedAt: new Date().toISOString() }));
    expect(dashboardUrl(config, {})).toBe(r.sc.url);
    expect(dashboardUrl(config, { port: "11435" })).toBe("http://127.0.0.1:11435");
    expect(dashboardUrl(config, { url: "http://h:1" })).toBe("http://h:1");
    // An up.json left behind by an `up` that is gone is not followed.
    fs.writeFileSync(upFile(dataDir), JSON.stringify({ pid: 2 ** 22 + 17, sidecar: r.sc.url }));
    expect(dashboardUrl(config, {})).toBe("http://127.0.0.1:11435");
  });

  it("says what to do when there is no token, no sidecar, or another data directory's sidecar", async () => {
    const empty = tmpDir("clawloop-dashboard-cli-");
    await expect(findDashboardLink({ dataDir: empty, url: r.sc.url })).rejects.toThrow(/no sidecar has run with this data directory/);
    fs.writeFileSync(`${empty}/token`, "another-token\n");
    await expect(findDashboardLink({ dataDir: empty, url: r.sc.url })).rejects.toThrow(/runs with another data directory/);
    await expect(findDashboardLink({ dataDir: r.dataDir, url: "http://127.0.0.1:1" })).rejects.toThrow(/no sidecar answers at http:\/\/127.0.0.1:1/);
  });
});

describe("failures", () => {
  it("an upstream that stopped answering shows as serve down with its error; closing the sidecar ends open event streams cleanly", async () => {
    const r2 = await rig({}, {}, { dataDir: tmpDir("clawloop-dashboard-down-") });
    try {
      const empty = await r2.api("/clawloop/v1/timeline");
      expect(((await empty.json()) as { turns: unknown[] }).turns).toEqual([]);
      await r2.up.close();
      const res = await r2.api("/clawloop/v1/loops");
      const v = (await res.json()) as { serve: { health: { ok: boolean } }; judge: { state: string }; errors: { loop: string }[] };
      expect(v.serve.health.ok).toBe(false);
      expect(v.judge.state).toBe("never ran");
      expect(v.errors.map((e) => e.loop)).toEqual(["serve"]);
      const stream = await r2.api("/clawloop/v1/updates");
      expect(stream.status).toBe(200);
      const reader = stream.body!.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain("event: hello");
      const closing = r2.sc.close();
      // The stream ends (not cut) once the sidecar closes.
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
      await closing;
    } finally {
      await r2.sc.close();
    }
  });
});
