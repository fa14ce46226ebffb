// Shared set-up for the sidecar's end-to-end tests: a scripted upstream, a sidecar in front of it
// (in this process, on its own data directory), and small clients.
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { loadConfig, silentLogger, type ConfigOverrides, type Turn } from "../../core/index.js";
import { startScriptedUpstream, type ScriptedUpstream, type ScriptedUpstreamOptions } from "../../fixtures/upstream/index.js";
import { afterEach } from "vitest";
import { startSidecar, type SidecarHandle, type SidecarOptions } from "../../sidecar/index.js";

export interface Rig {
  up: ScriptedUpstream;
  sc: SidecarHandle;
  dataDir: string;
  /** The control API with the token. */
  api(pathname: string, init?: RequestInit): Promise<Response>;
  turns(sessionId: string): Promise<Turn[]>;
  close(): Promise<void>;
}

const dirs: string[] = [];

export function tmpDir(prefix = "clawloop-sidecar-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function removeTmpDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export async function startSidecarFor(
  up: ScriptedUpstream,
  dataDir: string,
  sidecar: ConfigOverrides["sidecar"] = {},
  opts: SidecarOptions = {},
): Promise<SidecarHandle> {
  const config = loadConfig({ flags: { dataDir, sidecar: { upstream: `${up.url}/v1`, port: 0, ...sidecar } }, env: {} });
  // The store runs on the proxy's thread here unless a test asks for a process or a thread of its
  // own (a process is the default): starting it through tsx costs about a second each time.
  return startSidecar(config, { logger: silentLogger, storeHost: "main", ...opts });
}

export async function rig(
  upstream: ScriptedUpstreamOptions = {},
  sidecar: ConfigOverrides["sidecar"] = {},
  opts: SidecarOptions & { dataDir?: string } = {},
): Promise<Rig> {
  const up = await startScriptedUpstream(upstream);
  const dataDir = opts.dataDir ?? tmpDir();
  const sc = await startSidecarFor(up, dataDir, sidecar, opts);
  // Methods read `self.sc`, so a test may restart the sidecar by assigning a new one.
  const self: Rig = {
    up,
    sc,
    dataDir,
    api: (pathname, init = {}) =>
      fetch(self.sc.url + pathname, {
        ...init,
        headers: { authorization: `Bearer ${self.sc.token}`, "content-type": "application/json", ...(init.headers ?? {}) },
      }),
    turns: (sessionId) => self.sc.store.list("turns", { where: { sessionId }, orderBy: "seq" }),
    close: async () => {
      await self.sc.close();
      await up.close();
    },
  };
  return self;
}

export function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json", ...headers },
  });
}

export async function waitFor<T>(fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface OpenedStream {
  req: http.ClientRequest;
  res: http.IncomingMessage;
  /** Everything received, and how the response ended ("end" or "cut"); collection starts at once. */
  body: Promise<{ data: Buffer; outcome: "end" | "cut" }>;
  /** Resolves with the first body bytes. */
  first: Promise<Buffer>;
}

/** A raw HTTP request whose response is collected from its first byte (even if it is cut). */
export function openStream(url: string, body: unknown, headers: Record<string, string> = {}, paused = false): Promise<OpenedStream> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request(url, { method: "POST", headers: { "content-type": "application/json", "content-length": data.length, ...headers } });
    req.on("response", (res) => {
      const parts: Buffer[] = [];
      let first!: (b: Buffer) => void;
      const firstP = new Promise<Buffer>((r) => (first = r));
      const bodyP = new Promise<{ data: Buffer; outcome: "end" | "cut" }>((done) => {
        const finish = (outcome: "end" | "cut") => done({ data: Buffer.concat(parts), outcome });
        res.on("data", (c: Buffer) => {
          if (parts.length === 0) first(c);
          parts.push(c);
        });
        res.on("end", () => finish("end"));
        res.on("error", () => finish("cut"));
        res.on("aborted", () => finish("cut"));
      });
      if (paused) res.pause();
      resolve({ req, res, body: bodyP, first: firstP });
    });
    req.on("error", reject);
    req.end(data);
  });
}

export const chatBody = (content: string, extra: Record<string, unknown> = {}) => ({
  model: "scripted-model",
  messages: [
    { role: "system", content: "You are a test." },
    { role: "user", content },
  ],
  ...extra,
});

export const tagged = (session: string, run: string, n: number, type = "main") => ({
  "x-session-id": session,
  "x-openclaw-run-id": run,
  "x-openclaw-call-id": `${run}:model:${n}`,
  "x-turn-type": type,
});

/**
 * For a test file's top level: `open(...)` starts a rig (as `rig` does) that is closed, with the
 * temporary directories, after each test.
 */
export function rigsClosedAfterEach(): (...args: Parameters<typeof rig>) => Promise<Rig> {
  const rigs: Rig[] = [];
  afterEach(async () => {
    for (const r of rigs.splice(0)) await r.close();
    removeTmpDirs();
  });
  return async (...args) => {
    const r = await rig(...args);
    rigs.push(r);
    return r;
  };
}
