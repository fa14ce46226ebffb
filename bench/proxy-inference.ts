// bench:proxy, session inference section: what inferring sessions from untagged traffic costs a
// client once the sidecar has 10,000 turns stored, measured side by side in one run against the
// same sidecar with inference off and against the upstream directly.
//
// Two sidecars run in front of bench:proxy's upstream (each its own process and data directory):
// one with inference on (the default), one with `sidecar.inferSessions: false`. Both are seeded with
// the same untagged traffic: conversations of four turns, each request resending the history with
// the previous answer, so the inference sidecar's index holds 10,000 turns (the other records them
// as side traffic). Then rounds alternate direct / inference on / inference off, each continuing
// conversations with an OpenClaw-sized history (a ~40 KB system prompt, tool schemas, earlier
// turns), the most hashing inference ever does per request. Reported: added TTFB and total time
// (p50/p99), sidecar CPU per call, RSS, and how the inference sidecar placed the calls.
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { listeningUrl, spawnSidecar, waitForJsonLine } from "./sidecar-process.js";
import { family } from "./processes.js";
import { benchTempDir, removeBenchTempDir, writesInto } from "./temp-dirs.js";

export interface InferenceSectionOptions {
  /** The bench upstream (`http://host:port`). */
  upstreamUrl: string;
  /** `bin/clawloop.js`. */
  cli: string;
  /** Turns stored before measuring. */
  turns: number;
  quick: boolean;
}

interface Sidecar {
  name: string;
  url: string;
  token: string;
  child: ChildProcess;
  data: string;
}

const TICK = 100; // USER_HZ

function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0;
  }
}

function rssMb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function startSidecar(name: string, opts: InferenceSectionOptions, env: NodeJS.ProcessEnv): Promise<Sidecar> {
  // Removed however the run ends (bench/temp-dirs.ts; the prefix is one of proxy.ts's TEMP_PREFIXES).
  const data = benchTempDir(`clawloop-bench-inference-${name}-`);
  const child = spawnSidecar(opts.cli, opts.upstreamUrl, data, env);
  writesInto(data, child);
  const url = await waitForJsonLine(child, listeningUrl).catch((err: Error) => {
    throw new Error(`sidecar ${name}: ${err.message}`);
  });
  return { name, url, token: fs.readFileSync(path.join(data, "token"), "utf8").trim(), child, data };
}

type Msg = { role: string; content: string };

const SYSTEM_SMALL = "You are a helpful assistant running inside a chat app. Answer briefly. ".repeat(24);
const SYSTEM_OPENCLAW = "You are a personal assistant running inside OpenClaw. ".repeat(720);
const TOOLS = Array.from({ length: 12 }, (_, t) => ({
  type: "function",
  function: {
    name: `tool_${t}`,
    description: "Does something useful with files, the shell or the web. ".repeat(6),
    parameters: { type: "object", properties: { path: { type: "string" } }, required: ["path"] },
  },
}));

interface Result {
  ttfb: number;
  total: number;
  /** The answer's text, assembled from the stream as a client does. */
  content: string;
}

function chat(url: string, agent: http.Agent, body: unknown, unpaced: boolean): Promise<Result> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const t0 = performance.now();
    let ttfb = -1;
    let raw = "";
    const headers: Record<string, string | number> = { "content-type": "application/json", "content-length": data.length };
    if (unpaced) headers["x-bench-unpaced"] = "1";
    const req = http.request(`${url}/v1/chat/completions`, { method: "POST", agent, headers }, (res) => {
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        if (ttfb < 0) ttfb = performance.now() - t0;
        raw += c;
      });
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${raw.slice(0, 200)}`));
        let content = "";
        for (const line of raw.split("\n")) {
          if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
          const ev = JSON.parse(line.slice(6)) as { choices?: { delta?: { content?: string | null } }[] };
          content += ev.choices?.[0]?.delta?.content ?? "";
        }
        resolve({ ttfb, total: performance.now() - t0, content });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(data);
  });
}

/** A conversation as a client keeps it: the history grows by each question and its answer. */
class Conversation {
  readonly messages: Msg[];
  constructor(
    readonly id: string,
    system: string,
    readonly tools: boolean,
  ) {
    this.messages = [{ role: "system", content: system }];
  }
  body(question: string): unknown {
    return {
      model: "scripted-model",
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 256,
      ...(this.tools ? { tools: TOOLS, tool_choice: "auto" } : {}),
      messages: [...this.messages, { role: "user", content: question }],
    };
  }
  answered(question: string, answer: string): void {
    this.messages.push({ role: "user", content: question }, { role: "assistant", content: answer });
  }
}

async function metric(sc: Sidecar, name: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${sc.url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(new RegExp(`^${name}\\{outcome="([a-z_]+)"\\} (\\d+)`, "gm"))) out[m[1]!] = Number(m[2]);
  return out;
}

async function storedTurns(sc: Sidecar): Promise<{ turns: number; waiting: number }> {
  const res = await fetch(`${sc.url}/clawloop/v1/status`, { headers: { authorization: `Bearer ${sc.token}` } });
  const s = (await res.json()) as { counts: { turns: number }; store: { waitingInLog: number } };
  return { turns: s.counts.turns, waiting: s.store.waitingInLog };
}

const f = (x: number, d = 2) => x.toFixed(d);

export async function inferenceSection(opts: InferenceSectionOptions): Promise<void> {
  const on = await startSidecar("on", opts, {});
  const off = await startSidecar("off", opts, { CLAWLOOP_SIDECAR_INFER_SESSIONS: "false" });
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  try {
    console.log(`\nsession inference: seeding both sidecars with ${opts.turns} untagged turns (conversations of 4 turns, 32 at a time, unpaced)`);
    const t0 = performance.now();
    const perConversation = 4;
    let next = 0;
    const conversations = Math.ceil(opts.turns / perConversation);
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (;;) {
          const c = next++;
          if (c >= conversations) return;
          // The same conversation goes to both sidecars, so they store the same traffic.
          for (const sc of [on, off]) {
            const conv = new Conversation(`seed-${c}`, SYSTEM_SMALL, false);
            for (let turn = 0; turn < perConversation; turn++) {
              const q = `conversation ${c}, question ${turn}: what about item ${c * 7 + turn}?`;
              const r = await chat(sc.url, agent, conv.body(q), true);
              conv.answered(q, r.content);
            }
          }
        }
      }),
    );
    for (const sc of [on, off]) {
      for (let i = 0; i < 600; i++) {
        const s = await storedTurns(sc);
        if (s.waiting === 0 && s.turns >= opts.turns) break;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const seeded = await metric(on, "clawloop_sidecar_inferred_calls_total");
    console.log(
      `seeded in ${f((performance.now() - t0) / 1000, 1)} s; stored turns: inference on ${(await storedTurns(on)).turns}, off ${(await storedTurns(off)).turns}; ` +
        `inference placed: ${Object.entries(seeded).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    );

    // Measured: OpenClaw-sized conversations continued through each target in turn.
    const rows: string[][] = [];
    const verdict: { c: number; ttfb50: number; ttfb99: number; proxyCpu: number }[] = [];
    for (const c of [1, 16]) {
      const rounds = opts.quick ? (c === 1 ? 10 : 2) : c === 1 ? 60 : 8;
      const targets = [
        { name: "direct", url: opts.upstreamUrl, sc: null as Sidecar | null },
        { name: "inference on", url: on.url, sc: on },
        { name: "inference off", url: off.url, sc: off },
      ];
      const samples = new Map(targets.map((t) => [t.name, [] as Result[]]));
      // CPU of the proxy process (where inference runs) and of its store process, apart.
      const cpu = new Map(targets.map((t) => [t.name, { proxy: 0, store: 0 }]));
      // Each stream is one conversation with a few earlier turns, continued once per round.
      const convs = new Map(targets.map((t) => [t.name, Array.from({ length: c }, (_, k) => new Conversation(`m-${c}-${k}`, SYSTEM_OPENCLAW, true))]));
      for (let round = -2; round < rounds; round++) {
        for (const t of targets) {
          const pids = t.sc ? family(t.sc.child.pid!) : [];
          const proxy0 = pids.length ? cpuSeconds(pids[0]!) : 0;
          const store0 = pids.slice(1).reduce((a, p) => a + cpuSeconds(p), 0);
          const batch = await Promise.all(
            convs.get(t.name)!.map(async (conv, k) => {
              const q = `[Sat 2026-11-21 10:23 UTC] ${c} streams, stream ${k}, round ${round}: what's in my workspace?`;
              const r = await chat(t.url, agent, conv.body(q), false);
              conv.answered(q, r.content);
              return r;
            }),
          );
          // Two warm-up rounds give every conversation a history before measuring.
          if (round < 0) continue;
          samples.get(t.name)!.push(...batch);
          const used = cpu.get(t.name)!;
          used.proxy += (pids.length ? cpuSeconds(pids[0]!) : 0) - proxy0;
          used.store += pids.slice(1).reduce((a, p) => a + cpuSeconds(p), 0) - store0;
        }
      }
      const d = samples.get("direct")!;
      const calls = rounds * c;
      for (const t of targets) {
        const s = samples.get(t.name)!;
        const ttfb = s.map((x) => x.ttfb);
        const tot = s.map((x) => x.total);
        const added = (p: number) => pct(ttfb, p) - pct(d.map((x) => x.ttfb), p);
        rows.push([
          `${c} stream${c > 1 ? "s" : ""}, ${t.name}`,
          `${f(pct(ttfb, 50))} (${t.sc ? `+${f(added(50))}` : "—"})`,
          `${f(pct(ttfb, 99))} (${t.sc ? `+${f(added(99))}` : "—"})`,
          f(pct(tot, 50), 1),
          f(pct(tot, 99), 1),
          t.sc ? `${f((cpu.get(t.name)!.proxy / calls) * 1000, 2)} + ${f((cpu.get(t.name)!.store / calls) * 1000, 2)}` : "—",
          t.sc ? family(t.sc.child.pid!).map(rssMb).map((m) => f(m, 0)).join(" + ") : "—",
        ]);
      }
      const ttfbOf = (n: string, p: number) => pct(samples.get(n)!.map((x) => x.ttfb), p);
      verdict.push({
        c,
        ttfb50: ttfbOf("inference on", 50) - ttfbOf("inference off", 50),
        ttfb99: ttfbOf("inference on", 99) - ttfbOf("inference off", 99),
        proxyCpu: ((cpu.get("inference on")!.proxy - cpu.get("inference off")!.proxy) / calls) * 1000,
      });
    }
    const header = ["scenario", "TTFB p50 ms (added)", "TTFB p99 ms (added)", "total p50 ms", "total p99 ms", "CPU ms/call proxy + store", "RSS MB proxy + store"];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((x, i) => x.padEnd(widths[i]!)).join(" | ");
    console.log(`\nsession inference at ${opts.turns} stored turns — OpenClaw-sized requests (~${f(JSON.stringify(new Conversation("x", SYSTEM_OPENCLAW, true).body("q")).length / 1024, 0)} KB + history), streamed at the upstream's token rate`);
    console.log(line(header));
    console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
    for (const r of rows) console.log(line(r));
    const placed = await metric(on, "clawloop_sidecar_inferred_calls_total");
    console.log(`inference placed (all calls): ${Object.entries(placed).map(([k, v]) => `${k} ${v}`).join(", ")}`);
    for (const v of verdict) {
      console.log(
        `  ${v.c} stream${v.c > 1 ? "s" : ""}: inference on vs off — TTFB p50 ${v.ttfb50 >= 0 ? "+" : ""}${f(v.ttfb50, 3)} ms, p99 ${v.ttfb99 >= 0 ? "+" : ""}${f(v.ttfb99, 3)} ms, proxy CPU ${v.proxyCpu >= 0 ? "+" : ""}${f(v.proxyCpu, 2)} ms per call (CPU is read in 10 ms ticks: compare over many calls)`,
      );
    }
  } finally {
    agent.destroy();
    for (const sc of [on, off]) {
      sc.child.kill("SIGTERM");
      await new Promise((r) => sc.child.once("exit", r));
      removeBenchTempDir(sc.data);
    }
  }
}
