// bench:proxy — what the sidecar costs a client, measured side by side in one run.
//
// A scripted vLLM-dialect upstream streams answers at a fixed token rate (its own process); the real
// `clawloop sidecar` runs in front of it (its own process, so its CPU and RSS are its own); this
// process is the client. Every scenario alternates direct, bare-relay, through-the-sidecar and
// TCP-relay slices (and native-relay ones where nginx is installed: bench/native-relay.ts) so drift
// hits all alike, and reports time to first byte and total time (p50/p99), throughput, and the
// sidecar's CPU and RSS. Throughput at 16 and 64 streams is measured two ways, side by side:
// lockstep rounds (c calls start in the same instant, the next round when all have ended) measure
// how a path copes with a burst, as the round lasts as long as its slowest call; a closed loop (c
// workers, each starting its next call as soon as its previous one ends, for a fixed window, as
// vLLM's benchmark_serving --max-concurrency or wrk do) measures the steady rate. Then 10,000 calls
// are recorded through a fresh sidecar per store host (child process, the default, and worker
// thread) and the memory of each is read: RSS of every process (what the target names), and PSS
// (shared pages, e.g. Node's own binary, counted once).
//
// Two request profiles: a plain chat call (~0.5 KB) and an OpenClaw-sized one (a ~40 KB system
// prompt and a dozen tool schemas), both tagged with the plugin's headers. The upstream kind is
// vLLM, so the sidecar takes its most expensive path: capture fields added to every request, and
// every streamed event parsed and rewritten.
//
//   npm run build && npm run bench:proxy            (full run, ~12 minutes on 2 cores)
//   node dist/bench/proxy.js --quick                (fewer rounds, for a smoke run)
//   node dist/bench/proxy.js --hosts process        (the memory section for one store host only)
//   node dist/bench/proxy.js --no-inference         (without the session-inference section)
//   node dist/bench/proxy.js --only memory          (one section: latency, memory or inference)
//   node dist/bench/proxy.js --profile DIR          (CPU profiles of the sidecars' processes)
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startScriptedUpstream } from "../fixtures/upstream/index.js";
import { inferenceSection } from "./proxy-inference.js";
import { NATIVE_RELAY_PREFIX, findNginx, startNativeRelay, type NativeRelay } from "./native-relay.js";
import { family } from "./processes.js";
import { listeningUrl, spawnSidecar, waitForJsonLine } from "./sidecar-process.js";
import { benchTempDir, removeBenchTempDir, sweepStaleBenchDirs, writesInto } from "./temp-dirs.js";

const { values: args } = parseArgs({
  options: {
    role: { type: "string", default: "main" },
    quick: { type: "boolean", default: false },
    tokens: { type: "string", default: "32" },
    tps: { type: "string", default: "200" },
    turns: { type: "string", default: "10000" },
    hosts: { type: "string", default: "process,worker" },
    target: { type: "string" },
    inference: { type: "boolean", default: true },
    only: { type: "string" },
    /** Keep each memory-section sidecar running this many seconds after measuring (to inspect it). */
    hold: { type: "string", default: "0" },
    /** Write a CPU profile of every sidecar process (proxy and store) to this directory (node --cpu-prof). */
    profile: { type: "string" },
    /** The nginx binary for the native reference relay (default: nginx on PATH or in /usr/sbin, if any). */
    nginx: { type: "string" },
    /** Without the native reference relay even where nginx is installed. */
    native: { type: "boolean", default: true },
    help: { type: "boolean", short: "h", default: false },
  },
  allowNegative: true,
});
if (args.help) {
  process.stdout.write(`npm run bench:proxy [-- options]   (node dist/bench/proxy.js)
  --quick              fewer rounds, for a smoke run (~1 minute)
  --only SECTIONS      latency, memory and/or inference (comma-separated)
  --hosts HOSTS        store hosts for the memory section: process,worker
  --turns N            calls recorded in the memory section (10000)
  --no-inference       without the session-inference section
  --tokens N, --tps N  the upstream's answer length and token rate per stream (32, 200)
  --hold S             keep each memory-section sidecar running S seconds after measuring
  --profile DIR        CPU profiles of the sidecars' processes (node --cpu-prof)
  --nginx PATH         nginx for the native reference relay (default: found on PATH or in /usr/sbin)
  --no-native          without the native reference relay
`);
  process.exit(0);
}

const TOKENS = Number(args.tokens);
const TPS = Number(args.tps);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** The `clawloop` executable, as a user runs it. */
const BIN = path.join(ROOT, "bin", "clawloop.js");
/**
 * The sidecars' data directories (this file's, then proxy-inference.ts's) and the native relay's, in the OS temp dir: made
 * with benchTempDir, so they go however the run ends (bench/temp-dirs.ts).
 */
export const TEMP_PREFIXES = ["clawloop-bench-proxy-", "clawloop-bench-inference-", NATIVE_RELAY_PREFIX] as const;

// ---------------------------------------------------------------------------------------------
// The upstream process

async function runUpstream(): Promise<void> {
  const words = Array.from({ length: TOKENS }, (_, i) => `tok${i}`).join(" ");
  const up = await startScriptedUpstream({
    kind: "vllm",
    logLimit: 1,
    reply: (q) => (q.headers["x-bench-unpaced"] ? { text: words, tokenDelayMs: 0 } : { text: words }),
    tokensPerSecond: TPS,
  });
  process.stdout.write(JSON.stringify({ url: up.url }) + "\n");
  process.on("SIGTERM", () => void up.close().then(() => process.exit(0)));
}

// ---------------------------------------------------------------------------------------------
// The bare relay process: the least any Node proxy does (pipe the request up, the response back),
// nothing parsed or recorded. Its ratio is what the extra hop itself costs on this machine, which
// the sidecar cannot go below; the sidecar's own work is the gap between the two.

async function runRelay(target: string): Promise<void> {
  const up = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256, scheduling: "lifo" });
  const server = http.createServer({ keepAlive: true, noDelay: true }, (req, res) => {
    const upReq = http.request({ hostname: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers, agent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    upReq.setNoDelay(true);
    upReq.on("error", () => res.destroy());
    req.pipe(upReq);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address() as { port: number };
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${addr.port}` }) + "\n");
  process.on("SIGTERM", () => process.exit(0));
}

// The TCP relay process: Node with no HTTP at all, each client connection spliced to an upstream
// connection of its own (sockets piped both ways). With the bare relay beside it, it splits the hop's
// cost: what moving the bytes through one more process costs, and what Node's HTTP server and client
// add on top (on this 2-core VM: ~0.3 ms and ~0.65 ms of time to first byte, README).

async function runTcpRelay(target: string): Promise<void> {
  const up = new URL(target);
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({ host: up.hostname, port: Number(up.port), noDelay: true });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address() as net.AddressInfo;
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${addr.port}` }) + "\n");
  process.on("SIGTERM", () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// Helpers

const TICK = 100; // USER_HZ on Linux
/**
 * Seconds a sidecar is left idle after the memory run before its memory is read again: V8 shrinks
 * an idle heap on its own schedule (seen from a few seconds to about a minute after the last call),
 * and the sidecar hands what that frees back to the system (sidecar/malloc-trim.ts).
 */
const SETTLE_S = 60;

function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

interface Mem {
  rss: number;
  peak: number;
  /** Anonymous pages (heaps, buffers) vs pages of mapped files (Node's binary, LanceDB's library). */
  anon: number;
  file: number;
  /** Proportional set size: shared pages split between the processes that map them. */
  pss: number;
}

function rssMb(pid: number): Mem {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  let pss = 0;
  try {
    pss = Number(/^Pss:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0) / 1024;
  } catch {
    // No smaps_rollup (old kernel): PSS unknown.
  }
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024, anon: kb("RssAnon") / 1024, file: kb("RssFile") / 1024, pss };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

type Profile = "chat" | "openclaw";

const BODIES: Record<Profile, [string, string]> = {
  // A plain chat call: a short system prompt and two messages (~0.5 KB).
  chat: template({
    model: "scripted-model",
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: 256,
    messages: [
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "@@Q@@" },
    ],
  }),
  // What OpenClaw sends: a ~40 KB system prompt, a dozen tool schemas, tool_choice, usage (~44 KB).
  openclaw: template({
    model: "scripted-model",
    stream: true,
    stream_options: { include_usage: true },
    tool_choice: "auto",
    max_completion_tokens: 1024,
    tools: Array.from({ length: 12 }, (_, t) => ({
      type: "function",
      function: {
        name: `tool_${t}`,
        description: "Does something useful with files, the shell or the web. ".repeat(6),
        parameters: { type: "object", properties: { path: { type: "string" }, limit: { type: "integer" } }, required: ["path"] },
      },
    })),
    messages: [
      { role: "system", content: "You are a personal assistant running inside OpenClaw. ".repeat(720) },
      { role: "user", content: "@@Q@@" },
    ],
  }),
};

/** The body as text around a placeholder, so each request costs the client a concatenation only. */
function template(body: unknown): [string, string] {
  const [a, b] = JSON.stringify(body).split("@@Q@@");
  return [a!, b!];
}

function makeRequest(profile: Profile, i: number): { body: Buffer; headers: Record<string, string> } {
  const [a, b] = BODIES[profile];
  const run = `run-${i}`;
  return {
    body: Buffer.from(`${a}[Sat 2026-11-21 10:23 UTC] request ${i}: what's in my workspace?${b}`),
    headers: {
      "content-type": "application/json",
      authorization: "Bearer sk-local-unused",
      "x-session-id": `bench-${i % 50}`,
      "x-openclaw-run-id": run,
      "x-openclaw-call-id": `${run}:model:1`,
      "x-turn-type": "main",
    },
  };
}

interface Sample {
  ttfb: number;
  total: number;
  bytes: number;
}

function stream(url: string, agent: http.Agent, req: { body: Buffer; headers: Record<string, string> }, unpaced: boolean): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let ttfb = -1;
    let bytes = 0;
    const headers: Record<string, string | number> = { ...req.headers, "content-length": req.body.length };
    if (unpaced) headers["x-bench-unpaced"] = "1";
    const r = http.request(`${url}/v1/chat/completions`, { method: "POST", agent, headers }, (res) => {
      res.on("data", (c: Buffer) => {
        if (ttfb < 0) ttfb = performance.now() - t0;
        bytes += c.length;
      });
      res.on("end", () => {
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
        else resolve({ ttfb, total: performance.now() - t0, bytes });
      });
      res.on("error", reject);
    });
    r.on("error", reject);
    r.end(req.body);
  });
}

/** Where a phase sends its calls, and the process whose CPU they cost. */
interface Route {
  url: string;
  agent: http.Agent;
  pid: number;
}

/**
 * How a phase keeps `c` calls going. Lockstep rounds: `c` calls start together and the next round
 * starts when all have ended. Closed loop: `c` workers each start their next call as soon as their
 * previous one ends, for `windowS` seconds, then stop issuing and wait for the calls in flight.
 */
type Drive = { rounds: number } | { windowS: number };

interface Phase {
  /** Calls whose latency and tokens count (closed loop: those that completed inside the window). */
  samples: Sample[];
  /** The time those calls' tokens are counted over: throughput = samples × TOKENS / countedS. */
  countedS: number;
  /** CPU of the proxy's processes over the whole phase (closed loop: the wait for calls in flight too). */
  cpuS: number;
  /** Wall time of the whole phase, and every call it made: CPU share and CPU per call use these. */
  wallS: number;
  calls: number;
}

type Call = (i: number) => Promise<Sample>;
type Driven = Pick<Phase, "samples" | "calls"> & { countedMs?: number };

async function phase(to: Route, profile: Profile, concurrency: number, drive: Drive, unpaced: boolean, offset: number): Promise<Phase> {
  const pids = family(to.pid);
  const cpu = () => pids.reduce((a, p) => a + cpuSeconds(p), 0);
  const call: Call = (i) => stream(to.url, to.agent, makeRequest(profile, offset + i), unpaced);
  const cpu0 = cpu();
  const t0 = performance.now();
  const run = "rounds" in drive ? await lockstepRounds(call, concurrency, drive.rounds) : await closedLoop(call, concurrency, drive.windowS * 1000);
  const wallMs = performance.now() - t0;
  return { samples: run.samples, countedS: (run.countedMs ?? wallMs) / 1000, cpuS: cpu() - cpu0, wallS: wallMs / 1000, calls: run.calls };
}

async function lockstepRounds(call: Call, concurrency: number, rounds: number): Promise<Driven> {
  const samples: Sample[] = [];
  for (let r = 0; r < rounds; r++) {
    const round = await Promise.all(Array.from({ length: concurrency }, (_, i) => call(r * concurrency + i)));
    samples.push(...round);
  }
  return { samples, calls: samples.length };
}

/**
 * Only calls that complete inside the window count: those still running when it ends (the ramp-down)
 * would measure how a path drains, not its steady rate. The ramp-up (every worker's first call starts
 * in one burst) is in the count, the same for every path. Each worker's clock stops at its last
 * completion inside the window rather than at the window's end: the paced upstream makes every call
 * take about the same time, so completions come in waves, and a fixed end would count a whole wave
 * or not depending on where it falls (±3% on the same path from the window length alone, measured).
 */
async function closedLoop(call: Call, concurrency: number, windowMs: number): Promise<Driven> {
  const samples: Sample[] = [];
  const t0 = performance.now();
  const end = t0 + windowMs;
  let next = 0;
  const busyMs = await Promise.all(
    Array.from({ length: concurrency }, async () => {
      // A worker that completes nothing inside the window was busy for all of it.
      let last = end;
      while (performance.now() < end) {
        const s = await call(next++);
        const now = performance.now();
        if (now <= end) {
          samples.push(s);
          last = now;
        }
      }
      return last - t0;
    }),
  );
  return { samples, calls: next, countedMs: busyMs.reduce((a, x) => a + x, 0) / concurrency };
}

function merge(phases: Phase[]): Phase {
  const sum = (k: "countedS" | "cpuS" | "wallS" | "calls") => phases.reduce((a, p) => a + p[k], 0);
  return { samples: phases.flatMap((p) => p.samples), countedS: sum("countedS"), cpuS: sum("cpuS"), wallS: sum("wallS"), calls: sum("calls") };
}

const f = (x: number, d = 2) => x.toFixed(d);

// ---------------------------------------------------------------------------------------------
// The run

type Host = "process" | "worker";

interface RunningSidecar {
  url: string;
  pid: number;
  token: string;
  child: ChildProcess;
  data: string;
}

/** `clawloop sidecar` as a user starts it, with its store on `host`, in a data directory of its own. */
async function startSidecar(upstreamUrl: string, host: Host): Promise<RunningSidecar> {
  const data = benchTempDir(TEMP_PREFIXES[0]);
  // A profile is asked for through NODE_OPTIONS, which the store process inherits: it is profiled
  // too (bench/cpu-profile.ts; the profiles are named by role and pid).
  const env: NodeJS.ProcessEnv = { CLAWLOOP_SIDECAR_STORE_HOST: host };
  if (args.profile) {
    env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --import ${new URL("./cpu-profile.js", import.meta.url).href}`.trim();
    env.CLAWLOOP_BENCH_PROFILE_DIR = path.resolve(args.profile);
  }
  const child = spawnSidecar(BIN, upstreamUrl, data, env);
  writesInto(data, child);
  const url = await waitForJsonLine(child, listeningUrl);
  // Keep reading its log so a full pipe never blocks it.
  child.stdout!.resume();
  return { url, pid: child.pid!, token: fs.readFileSync(path.join(data, "token"), "utf8").trim(), child, data };
}

async function stopSidecar(s: RunningSidecar): Promise<void> {
  if (s.child.exitCode === null && s.child.signalCode === null) {
    s.child.kill("SIGTERM");
    await new Promise((r) => s.child.once("exit", r));
  }
  removeBenchTempDir(s.data);
}

const load = () => os.loadavg().map((l) => l.toFixed(1)).join(" ");

type Method = "lockstep" | "closed";

interface Scenario {
  profile: Profile;
  name: string;
  c: number;
  unpaced: boolean;
  method: Method;
  /** What each path runs per alternation slice. */
  slices: Drive[];
}

/** Sidecar vs direct: added TTFB at one stream, throughput ratio at 64 paced streams by each method. */
type Verdicts = Record<Profile, { ttfb50: number; ttfb99: number; tput64: Record<Method, number> }>;

/** Direct, the relays and the sidecar side by side: time to first byte, total time, throughput, CPU. */
/** The reference paths beside the sidecar: Node's bare HTTP relay, Node's TCP relay, nginx (if any). */
interface Relays {
  bare: ChildProcess;
  bareUrl: string;
  tcp: ChildProcess;
  tcpUrl: string;
  native: NativeRelay | null;
}

async function latencySection(upstreamUrl: string, relays: Relays, sidecars: RunningSidecar[], q: boolean): Promise<Verdicts> {
  const agentDirect = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const first = await startSidecar(upstreamUrl, "process");
  sidecars.push(first);
  const pid = first.pid;
  // The direct route's CPU is read from the sidecar too, and not reported.
  const direct: Route = { url: upstreamUrl, agent: agentDirect, pid };
  const agent = () => new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const bare: Route = { url: relays.bareUrl, agent: agent(), pid: relays.bare.pid! };
  const tcp: Route = { url: relays.tcpUrl, agent: agent(), pid: relays.tcp.pid! };
  const via: Route = { url: first.url, agent: agent(), pid };
  const nat: Route | null = relays.native ? { url: relays.native.url, agent: agent(), pid: relays.native.child.pid! } : null;
  // Every path's calls alternate in this order; the native relay only where nginx is installed.
  const routes = [direct, bare, via, tcp, ...(nat ? [nat] : [])];
  console.log(`direct, bare relay, sidecar, TCP relay${nat ? " and native relay" : ""} requests alternate; the sidecar runs in its own process, its store in a child process`);
  console.log("bare relay: a minimal Node HTTP proxy in its own process (pipes both ways, parses and records nothing): what any Node proxy costs");
  console.log("TCP relay: Node without HTTP, each connection spliced to one of the upstream's: what one more process on the path costs");
  console.log(
    nat
      ? "native relay: nginx in front of the same upstream, nothing buffered (bench/native-relay.ts): about the least any proxy process adds on this machine"
      : "native relay: not measured (no nginx found; --nginx PATH names one)",
  );
  console.log("lockstep rounds (every row not marked closed loop): c calls start in the same instant and the next round starts when all have ended, so throughput is set by the slowest call of each start burst");
  console.log("closed loop: c workers each start their next call as soon as the previous one ends, for a fixed window (vLLM's benchmark_serving --max-concurrency, wrk), so throughput is the steady rate; latency is of the calls completed inside the window\n");

  // Warm the paths (connections, JIT).
  for (const to of routes) await phase(to, "openclaw", 8, { rounds: 3 }, true, 0);

  // Alternate request by request for one stream, else in slices of a few rounds or one window each.
  const lockstep = (profile: Profile, name: string, c: number, total: number, unpaced = false): Scenario => {
    const per = c === 1 ? 1 : Math.max(1, Math.floor(total / 5));
    const slices = Array.from({ length: Math.ceil(total / per) }, (_, k) => ({ rounds: Math.min(per, total - k * per) }));
    return { profile, name: `${profile}, ${name}`, c, unpaced, method: "lockstep", slices };
  };
  const closed = (profile: Profile, c: number, windowS: number): Scenario => ({
    profile,
    name: `${profile}, ${c} closed loop`,
    c,
    unpaced: false,
    method: "closed",
    slices: Array.from({ length: q ? 2 : 5 }, () => ({ windowS: q ? windowS / 3 : windowS })),
  });
  const scenarios: Scenario[] = [];
  for (const profile of ["chat", "openclaw"] as const) {
    scenarios.push(
      lockstep(profile, "1 stream", 1, q ? 20 : 200),
      lockstep(profile, "16 lockstep", 16, q ? 4 : 15),
      closed(profile, 16, 1.5),
      lockstep(profile, "64 lockstep", 64, q ? 2 : 8),
      closed(profile, 64, 2),
      lockstep(profile, "64 unpaced", 64, q ? 2 : 8, true),
    );
  }
  const rows: string[][] = [];
  const verdicts: Verdicts = {
    chat: { ttfb50: 0, ttfb99: 0, tput64: { lockstep: 1, closed: 1 } },
    openclaw: { ttfb50: 0, ttfb99: 0, tput64: { lockstep: 1, closed: 1 } },
  };
  let offset = 1000;
  for (const s of scenarios) {
    const phases: Phase[][] = routes.map(() => []);
    for (const drive of s.slices) {
      for (const [k, to] of routes.entries()) {
        const p = await phase(to, s.profile, s.c, drive, s.unpaced, offset);
        phases[k]!.push(p);
        offset += p.calls;
      }
    }
    const [d, b, v, t, n] = phases.map(merge) as [Phase, Phase, Phase, Phase, Phase | undefined];
    const tput = (p: Phase) => (p.samples.length * TOKENS) / p.countedS;
    const ttfbD = d.samples.map((x) => x.ttfb);
    const ttfbV = v.samples.map((x) => x.ttfb);
    const totD = d.samples.map((x) => x.total);
    const totV = v.samples.map((x) => x.total);
    const mem = family(pid).map(rssMb);
    const relayCell = (r: Phase) => `+${f(pct(r.samples.map((x) => x.ttfb), 50) - pct(ttfbD, 50))} ms, ${f(tput(r) / tput(d), 3)}, ${f((r.cpuS * 1000) / r.calls)} ms/call`;
    rows.push([
      s.name,
      `${f(pct(ttfbD, 50))} / ${f(pct(ttfbV, 50))} (+${f(pct(ttfbV, 50) - pct(ttfbD, 50))})`,
      `${f(pct(ttfbD, 99))} / ${f(pct(ttfbV, 99))} (+${f(pct(ttfbV, 99) - pct(ttfbD, 99))})`,
      `${f(pct(totD, 50), 1)} / ${f(pct(totV, 50), 1)}`,
      `${f(pct(totD, 99), 1)} / ${f(pct(totV, 99), 1)}`,
      `${f(tput(d), 0)} / ${f(tput(v), 0)} (${f(tput(v) / tput(d), 3)})`,
      relayCell(b),
      relayCell(t),
      n ? relayCell(n) : "not measured",
      `${f((v.cpuS / v.wallS) * 100, 0)}% (${f((v.cpuS * 1000) / v.calls)} ms/call)`,
      mem.map((m) => f(m.rss, 0)).join(" + "),
      load().split(" ")[0]!,
    ]);
    if (s.c === 1) {
      verdicts[s.profile].ttfb50 = pct(ttfbV, 50) - pct(ttfbD, 50);
      verdicts[s.profile].ttfb99 = pct(ttfbV, 99) - pct(ttfbD, 99);
    }
    if (s.c === 64 && !s.unpaced) verdicts[s.profile].tput64[s.method] = tput(v) / tput(d);
  }
  const header = [
    "scenario",
    "TTFB p50 ms direct / sidecar (+added)",
    "TTFB p99 ms",
    "total p50 ms",
    "total p99 ms",
    "throughput tok/s (ratio)",
    "bare relay: +TTFB p50, ratio, CPU",
    "TCP relay: +TTFB p50, ratio, CPU",
    "native relay: +TTFB p50, ratio, CPU",
    "sidecar CPU (per call)",
    "RSS MB proxy + store",
    "load",
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const r of rows) console.log(line(r));
  via.agent.destroy();
  bare.agent.destroy();
  tcp.agent.destroy();
  nat?.agent.destroy();
  // The memory section starts each sidecar fresh; this one's work is done.
  await stopSidecar(first);
  sidecars.splice(sidecars.indexOf(first), 1);
  agentDirect.destroy();
  return verdicts;
}

async function main(): Promise<void> {
  if (process.platform !== "linux") throw new Error("bench:proxy reads CPU and RSS from /proc (Linux only)");
  const self = fileURLToPath(import.meta.url);
  const children: ChildProcess[] = [];
  const sidecars: RunningSidecar[] = [];
  const hosts = args.hosts.split(",").map((h) => h.trim()) as Host[];
  const all = ["latency", "memory", "inference"];
  const sections = new Set(args.only ? args.only.split(",").map((x) => x.trim()) : all);
  if (!args.inference) sections.delete("inference");
  for (const x of sections) if (!all.includes(x)) throw new Error(`--only: "${x}" is not one of ${all.join(", ")}`);
  for (const h of hosts) if (h !== "process" && h !== "worker") throw new Error(`--hosts: "${h}" is not process or worker`);
  // What an earlier run killed with SIGKILL left behind.
  const stale = sweepStaleBenchDirs([...TEMP_PREFIXES]);
  if (stale.length) console.log(`removed ${stale.length} data director${stale.length === 1 ? "y" : "ies"} left by earlier runs: ${stale.join(" ")}`);
  try {
    const upstream = spawn(process.execPath, [self, "--role", "upstream", "--tokens", String(TOKENS), "--tps", String(TPS)], { stdio: ["ignore", "pipe", "inherit", "ipc"] });
    children.push(upstream);
    const upstreamUrl = await waitForJsonLine(upstream, (r) => (typeof r.url === "string" ? r.url : null));
    const relay = spawn(process.execPath, [self, "--role", "relay", "--target", upstreamUrl], { stdio: ["ignore", "pipe", "inherit", "ipc"] });
    children.push(relay);
    const relayUrl = await waitForJsonLine(relay, (r) => (typeof r.url === "string" ? r.url : null));
    const tcp = spawn(process.execPath, [self, "--role", "tcp-relay", "--target", upstreamUrl], { stdio: ["ignore", "pipe", "inherit", "ipc"] });
    children.push(tcp);
    const tcpUrl = await waitForJsonLine(tcp, (r) => (typeof r.url === "string" ? r.url : null));
    const nginx = args.native && sections.has("latency") ? findNginx(args.nginx) : null;
    if (args.native && args.nginx && !nginx) throw new Error(`--nginx: "${args.nginx}" does not run (nginx -v failed)`);
    const native = nginx ? await startNativeRelay(nginx, upstreamUrl) : null;
    if (native) children.push(native.child);
    const kb = (p: Profile) => makeRequest(p, 0).body.length / 1024;
    const q = args.quick;
    console.log(`clawloop bench:proxy — ${os.cpus().length} CPUs, Node ${process.version}, load average ${load()}`);
    console.log(`upstream: scripted vLLM, ${TOKENS} tokens per answer at ${TPS} tokens/s per stream (unpaced: as fast as it can)`);
    console.log(`requests: streamed, tagged like the plugin's; "chat" ${f(kb("chat"), 1)} KB, "openclaw" ${f(kb("openclaw"), 1)} KB`);
    const verdicts = sections.has("latency") ? await latencySection(upstreamUrl, { bare: relay, bareUrl: relayUrl, tcp, tcpUrl, native }, sidecars, q) : null;

    // 10,000 recorded calls through a fresh sidecar per store host: memory afterwards.
    const N = q ? 1000 : Number(args.turns);
    const memory: { host: Host; procs: Mem[]; settled: Mem[]; turns: number; callsPerS: number; cpuMsPerCall: number }[] = [];
    if (sections.has("memory")) console.log(`\n${N} calls recorded per store host (32 at a time, unpaced, ${f(kb("openclaw"), 0)} KB OpenClaw-sized requests, a fresh sidecar each):`);
    for (const host of sections.has("memory") ? hosts : []) {
      const sc = await startSidecar(upstreamUrl, host);
      sidecars.push(sc);
      const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
      const t0 = performance.now();
      const pids = family(sc.pid);
      const cpu0 = pids.map(cpuSeconds);
      let sent = 0;
      // RSS along the way (every fifth of the calls): what grows with the number of turns shows here.
      const along: string[] = [];
      let done = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          for (;;) {
            const i = sent++;
            if (i >= N) return;
            await stream(sc.url, agent, makeRequest("openclaw", 100_000 + i), true);
            if (++done % Math.ceil(N / 5) === 0) along.push(`${done}: ${family(sc.pid).map((p) => f(rssMb(p).rss, 0)).join(" + ")}`);
          }
        }),
      );
      const wall = (performance.now() - t0) / 1000;
      const cpuEach = pids.map((p, i) => cpuSeconds(p) - cpu0[i]!);
      const cpu = cpuEach.reduce((a, x) => a + x, 0);
      // Let the store's flusher catch up, then read memory.
      let after = await status(sc.url, sc.token);
      for (let i = 0; i < 600 && after.waitingInLog > 0; i++) {
        await new Promise((r) => setTimeout(r, 500));
        after = await status(sc.url, sc.token);
      }
      const procs = family(sc.pid).map(rssMb);
      // And once idle for a while: V8 gives back heap it no longer needs when allocation stops.
      await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
      const settled = family(sc.pid).map(rssMb);
      memory.push({ host, procs, settled, turns: after.turns, callsPerS: N / wall, cpuMsPerCall: (cpu * 1000) / N });
      const names = host === "process" ? ["proxy", "store"] : ["proxy + store thread"];
      console.log(
        `  store host ${host.padEnd(7)}: ${f(wall, 1)} s, ${f(N / wall, 0)} calls/s, sidecar CPU ${f((cpu * 1000) / N)} ms/call (${cpuEach.map((x) => f((x * 1000) / N)).join(" + ")}), load ${load()}; turns in the store ${after.turns}, waiting in the log ${after.waitingInLog}`,
      );
      procs.forEach((m, i) =>
        console.log(
          `    ${(names[i] ?? "child").padEnd(20)} RSS ${f(m.rss, 0)} MB (peak ${f(m.peak, 0)}; anon ${f(m.anon, 0)}, files ${f(m.file, 0)}), PSS ${f(m.pss, 0)} MB; after ${SETTLE_S} s idle RSS ${f(settled[i]?.rss ?? NaN, 0)} MB`,
        ),
      );
      console.log(`    RSS MB along the way: ${along.join(", ")}`);
      const h = after.memory;
      console.log(`    V8 heaps: proxy ${h.heapUsedMb} MB used of ${h.heapTotalMb} (external ${h.externalMb}); store ${h.storeHeapUsedMb} MB used of ${h.storeHeapTotalMb}`);
      if (after.turns !== N) console.log(`    WARNING: expected ${N} turns, the store has ${after.turns}`);
      if (Number(args.hold) > 0) {
        console.log(`    holding for ${args.hold} s: pids ${family(sc.pid).join(" ")}, data ${sc.data}`);
        await new Promise((r) => setTimeout(r, Number(args.hold) * 1000));
      }
      agent.destroy();
      await stopSidecar(sc);
      sidecars.splice(sidecars.indexOf(sc), 1);
    }

    const ok = (b: boolean) => (b ? "met" : "NOT met");
    console.log("\ntargets:");
    for (const p of verdicts ? (["chat", "openclaw"] as const) : []) {
      const v = verdicts![p];
      console.log(`  ${p.padEnd(8)} added TTFB p50 < 1 ms (1 stream): ${f(v.ttfb50, 3)} ms — ${ok(v.ttfb50 < 1)}`);
      console.log(`  ${p.padEnd(8)} added TTFB p99 < 5 ms (1 stream): ${f(v.ttfb99, 3)} ms — ${ok(v.ttfb99 < 5)}`);
      console.log(`  ${p.padEnd(8)} throughput at 64 streams ≥ 0.95× (lockstep rounds): ${f(v.tput64.lockstep, 3)} — ${ok(v.tput64.lockstep >= 0.95)}`);
      console.log(`  ${p.padEnd(8)} throughput at 64 streams ≥ 0.95× (closed loop):     ${f(v.tput64.closed, 3)} — ${ok(v.tput64.closed >= 0.95)}`);
    }
    for (const m of memory) {
      const rss = m.procs.reduce((a, x) => a + x.rss, 0);
      const pss = m.procs.reduce((a, x) => a + x.pss, 0);
      const idle = m.settled.reduce((a, x) => a + x.rss, 0);
      console.log(
        `  RSS < 200 MB after ${N} recorded turns, store host ${m.host}: ${f(rss, 0)} MB (all processes) — ${ok(rss < 200)}; PSS ${f(pss, 0)} MB; after ${SETTLE_S} s idle ${f(idle, 0)} MB — ${ok(idle < 200)}`,
      );
    }

    // Session inference: the latency it adds at 10,000 stored turns, on vs off (bench/proxy-inference.ts).
    if (sections.has("inference")) await inferenceSection({ upstreamUrl, cli: BIN, turns: N, quick: q });
  } finally {
    for (const s of sidecars) await stopSidecar(s);
    for (const c of children.reverse()) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      c.kill("SIGTERM");
      await new Promise((r) => c.once("exit", r));
    }
  }
}

async function status(url: string, token: string): Promise<{ turns: number; waitingInLog: number; memory: Record<string, number | null> }> {
  const res = await fetch(`${url}/clawloop/v1/status`, { headers: { authorization: `Bearer ${token}` } });
  const s = (await res.json()) as { counts: { turns: number }; store: { waitingInLog: number }; memory: Record<string, number | null> };
  return { turns: s.counts.turns, waitingInLog: s.store.waitingInLog, memory: s.memory };
}

// The upstream and the relay end with this run, however it ended (their IPC channel closes).
if (args.role !== "main") process.on("disconnect", () => process.exit(0));
if (args.role === "upstream") {
  await runUpstream();
} else if (args.role === "relay") {
  await runRelay(args.target!);
} else if (args.role === "tcp-relay") {
  await runTcpRelay(args.target!);
} else {
  await main();
}
