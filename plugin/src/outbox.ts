// Delivery of next-state events to the sidecar without ever making the agent wait.
//
// Every event is first written to the spool (one small file per event, written atomically), then
// sent in the background in batches. A file is deleted only after the sidecar accepted it, so events
// survive a sidecar that is down, a network error and the OpenClaw process exiting (`--local` runs
// exit right after their turn): whichever OpenClaw process runs next delivers what is left. Sending
// a file twice (two processes flushing at once) is harmless: the sidecar is idempotent by event id.
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import type { ClawloopEvent } from "./events.js";
import type { PluginLogger } from "./openclaw-api.js";

export interface OutboxOptions {
  /** Where events wait until the sidecar has them. */
  spoolDir: string;
  /** Full URL of the events endpoint, or null while unknown (events then only spool). */
  endpoint: () => string | null;
  /** Bearer token of the sidecar's control API, or null. */
  token: () => string | null;
  /** Called after a 401/403 so a changed token file is read again. */
  onAuthFailure?: () => void;
  logger?: PluginLogger;
  batchSize?: number;
  /** Wait this long after an enqueue before sending, so a burst of events goes as one batch. */
  flushDelayMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  requestTimeoutMs?: number;
}

/** `status` 0 means the request failed before an answer (`error` says why). */
export interface PostResult {
  status: number;
  body: string;
  error: string | null;
}

export class Outbox {
  readonly pendingDir: string;
  readonly rejectedDir: string;
  private readonly batchSize: number;
  private readonly flushDelayMs: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly requestTimeoutMs: number;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  private flushing: Promise<void> | null = null;
  private failures = 0;
  private lastWarning = "";
  private closed = false;
  /** Delivered or rejected in this process: a late duplicate from another module instance is not re-sent. */
  private readonly done = new Set<string>();

  constructor(private readonly opts: OutboxOptions) {
    this.pendingDir = path.join(opts.spoolDir, "pending");
    this.rejectedDir = path.join(opts.spoolDir, "rejected");
    this.batchSize = opts.batchSize ?? 200;
    this.flushDelayMs = opts.flushDelayMs ?? 50;
    this.retryBaseMs = opts.retryBaseMs ?? 500;
    this.retryMaxMs = opts.retryMaxMs ?? 15_000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5_000;
    try {
      fs.mkdirSync(this.pendingDir, { recursive: true });
    } catch (err) {
      this.warn(`clawloop: cannot create the event spool ${this.pendingDir}: ${(err as Error).message}`);
    }
  }

  /** Spools the events (synchronously: a few hundred microseconds) and schedules a send. */
  enqueue(events: ClawloopEvent[]): void {
    for (const ev of events) {
      if (this.done.has(ev.id)) continue;
      const file = path.join(this.pendingDir, fileNameFor(ev.id));
      if (fs.existsSync(file)) continue;
      const tmp = path.join(this.pendingDir, `.${randomBytes(6).toString("hex")}.tmp`);
      try {
        fs.writeFileSync(tmp, JSON.stringify(ev));
        fs.renameSync(tmp, file);
      } catch (err) {
        // A full or read-only disk must not break the agent; the event is lost and we say so.
        this.warn(`clawloop: could not spool event ${ev.id}: ${(err as Error).message}`);
        try {
          fs.rmSync(tmp, { force: true });
        } catch {
          // the spool directory itself is unusable
        }
      }
    }
    this.schedule(this.flushDelayMs);
  }

  /** Events waiting in the spool (of any process). */
  pendingCount(): number {
    return this.listPending().length;
  }

  /** Sends everything spooled now; resolves when the spool is empty or a send failed. Never rejects. */
  flush(): Promise<void> {
    // A drain already under way may have listed the spool before the newest events: run again after it.
    if (this.flushing) return this.flushing.then(() => this.flush());
    this.clearTimer();
    this.flushing = this.drain()
      .catch((err: unknown) => this.warn(`clawloop: event delivery failed: ${String(err)}`))
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing;
  }

  /** Tries to deliver what is pending for at most `timeoutMs`; what is left stays spooled. */
  async drainFor(timeoutMs: number): Promise<void> {
    this.failures = 0;
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([
      this.flush(),
      new Promise<void>((resolve) => {
        timeout = setTimeout(resolve, timeoutMs);
        timeout.unref();
      }),
    ]);
    clearTimeout(timeout);
  }

  close(): void {
    this.closed = true;
    this.clearTimer();
  }

  private async drain(): Promise<void> {
    for (;;) {
      const endpoint = this.opts.endpoint();
      if (!endpoint) return;
      const files = this.listPending().slice(0, this.batchSize);
      if (files.length === 0) {
        this.failures = 0;
        return;
      }
      const batch = this.readBatch(files);
      if (batch.length === 0) continue;
      const ok = await this.send(endpoint, batch);
      if (!ok) {
        this.failures += 1;
        this.schedule(this.backoffMs());
        return;
      }
      this.failures = 0;
    }
  }

  /** Sends one batch; a batch the sidecar refuses as invalid is split to find the bad events. */
  private async send(endpoint: string, batch: { file: string; event: ClawloopEvent }[]): Promise<boolean> {
    const res = await postJson(endpoint, batch.map((b) => b.event), this.opts.token(), this.requestTimeoutMs);
    if (res.status >= 200 && res.status < 300) {
      // The sidecar stores the valid events of a batch and lists the others; keep those for diagnosis.
      const invalid = invalidIds(res.body);
      for (const b of batch) {
        const why = invalid.get(b.event.id);
        if (why) this.reject(b.file, b.event.id, why);
        else this.finish(b.file, b.event.id);
      }
      if (this.lastWarning) this.opts.logger?.info(`clawloop: sidecar reachable again, events delivered`);
      this.lastWarning = "";
      return true;
    }
    if (res.status === 400 || res.status === 413 || res.status === 422) {
      if (batch.length === 1) {
        const only = batch[0]!;
        this.reject(only.file, only.event.id, `${res.status} ${res.body.slice(0, 500)}`);
        return true;
      }
      const half = Math.ceil(batch.length / 2);
      const first = await this.send(endpoint, batch.slice(0, half));
      return first && (await this.send(endpoint, batch.slice(half)));
    }
    if (res.status === 401 || res.status === 403) this.opts.onAuthFailure?.();
    const why = res.status === 0 ? (res.error ?? "no answer") : `HTTP ${res.status} ${res.body.slice(0, 200)}`;
    this.warn(`clawloop: sidecar did not take events (${why}); they stay spooled in ${this.pendingDir} and are retried`);
    return false;
  }

  private readBatch(files: string[]): { file: string; event: ClawloopEvent }[] {
    const out: { file: string; event: ClawloopEvent }[] = [];
    for (const file of files) {
      let text: string;
      try {
        text = fs.readFileSync(file, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // another process delivered it
        throw err;
      }
      try {
        out.push({ file, event: JSON.parse(text) as ClawloopEvent });
      } catch {
        this.reject(file, path.basename(file), "not valid JSON");
      }
    }
    return out;
  }

  private finish(file: string, id: string): void {
    this.done.add(id);
    fs.rmSync(file, { force: true });
  }

  private reject(file: string, id: string, why: string): void {
    this.done.add(id);
    this.warn(`clawloop: sidecar rejected event ${id} (${why}); kept in ${this.rejectedDir}`);
    try {
      fs.mkdirSync(this.rejectedDir, { recursive: true });
      fs.renameSync(file, path.join(this.rejectedDir, path.basename(file)));
      fs.writeFileSync(path.join(this.rejectedDir, `${path.basename(file)}.error`), why + "\n");
    } catch {
      fs.rmSync(file, { force: true });
    }
  }

  private listPending(): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.pendingDir);
    } catch {
      return [];
    }
    return names
      .filter((n) => n.endsWith(".json"))
      .map((n) => {
        const file = path.join(this.pendingDir, n);
        let mtime = 0;
        try {
          mtime = fs.statSync(file).mtimeMs;
        } catch {
          // gone already
        }
        return { file, mtime };
      })
      .sort((a, b) => a.mtime - b.mtime || a.file.localeCompare(b.file))
      .map((f) => f.file);
  }

  private backoffMs(): number {
    const exp = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(this.failures - 1, 20));
    return Math.round(exp * (0.75 + Math.random() * 0.5));
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    const at = Date.now() + delayMs;
    if (this.timer && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    // Unref'd: pending events never keep an OpenClaw process alive; they wait in the spool instead.
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private warn(msg: string): void {
    // One line per kind of trouble, not one per retry.
    if (msg === this.lastWarning) return;
    this.lastWarning = msg;
    this.opts.logger?.warn(msg);
  }
}

/** `{invalid: [{id, error}]}` of the sidecar's answer, by event id. */
function invalidIds(body: string): Map<string, string> {
  const out = new Map<string, string>();
  try {
    const parsed = JSON.parse(body) as { invalid?: { id?: unknown; error?: unknown }[] };
    for (const i of parsed.invalid ?? []) if (typeof i.id === "string") out.set(i.id, String(i.error ?? "invalid"));
  } catch {
    // not JSON: nothing listed
  }
  return out;
}

export function fileNameFor(eventId: string): string {
  return `${createHash("sha256").update(eventId).digest("hex").slice(0, 32)}.json`;
}

/**
 * POSTs JSON with node:http rather than global fetch, which hosts may wrap with their own network
 * policy. Resolves with status 0 on network errors; never rejects.
 */
export function postJson(url: string, body: unknown, token: string | null, timeoutMs: number): Promise<PostResult> {
  return new Promise((resolve) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve({ status: 0, body: "", error: `invalid URL ${url}` });
      return;
    }
    const payload = Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = {
      "content-type": "application/json",
      "content-length": payload.length,
    };
    if (token) headers.authorization = `Bearer ${token}`;
    const req = (u.protocol === "https:" ? https : http).request(
      u,
      { method: "POST", headers, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), error: null }));
        res.on("error", (err) => resolve({ status: 0, body: "", error: err.message }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on("error", (err) => resolve({ status: 0, body: "", error: err.message }));
    req.end(payload);
  });
}
