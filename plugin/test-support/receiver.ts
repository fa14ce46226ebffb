// Helpers for the plugin's unit tests (outside src/: OpenClaw never loads them).
// `receiver()` is a real HTTP server standing in for the sidecar's events endpoint: it answers the
// way the sidecar does (`{stored, duplicates, invalid}`), or with a status a test chooses.
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import type { ClawloopEvent } from "../src/events.js";

export interface Receiver {
  url: string;
  port: number;
  /** Every batch received, in order. */
  batches: ClawloopEvent[][];
  auth: (string | undefined)[];
  /** Events received, each id once. */
  events(): ClawloopEvent[];
  /** Answer the next requests with this status (default 200). */
  status: number;
  /** Ids answered as invalid in a 200 response, as the sidecar does for a mixed batch. */
  invalidIds: Set<string>;
  close(): Promise<void>;
}

export async function receiver(port = 0): Promise<Receiver> {
  const r: Receiver = {
    url: "",
    port: 0,
    batches: [],
    auth: [],
    events: () => {
      const seen = new Map<string, ClawloopEvent>();
      for (const b of r.batches) for (const e of b) if (!seen.has(e.id)) seen.set(e.id, e);
      return [...seen.values()];
    },
    status: 200,
    invalidIds: new Set(),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as ClawloopEvent[];
      r.auth.push(req.headers.authorization);
      if (r.status !== 200) {
        res.writeHead(r.status, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "scripted failure" }));
        return;
      }
      const bad = body.some((e) => r.invalidIds.has(e.id));
      if (bad && body.length === 1 && body.every((e) => r.invalidIds.has(e.id))) {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "no valid event in the batch" }));
        return;
      }
      const good = body.filter((e) => !r.invalidIds.has(e.id));
      r.batches.push(good);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          stored: good.length,
          duplicates: 0,
          invalid: body.filter((e) => r.invalidIds.has(e.id)).map((e, index) => ({ index, id: e.id, error: "kind: invalid" })),
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => resolve()));
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}`;
  return r;
}

/** A port nothing listens on (taken from the OS, then released). */
export async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", () => resolve()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

const dirs: string[] = [];
export function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-plugin-"));
  dirs.push(d);
  return d;
}
export function removeTmpDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
