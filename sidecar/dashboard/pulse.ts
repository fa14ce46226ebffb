// Live updates: one Server-Sent Events stream per open page. Other loops write from other processes,
// so something has to look; the pulse looks once a second (only while a page is open) at cheap
// fingerprints — counters, row counts, status-file times, folder listings — and tells every page
// which topics changed. Pages then re-fetch just those, with their bounded queries.
import fs from "node:fs";
import type { ServerResponse } from "node:http";
import path from "node:path";
import type { Logger } from "../../core/index.js";
import type { SidecarMetrics } from "../metrics.js";
import type { ReadStore } from "./recent.js";

export const TOPICS = ["turns", "judgments", "train", "adapters", "loops", "runs"] as const;
export type Topic = (typeof TOPICS)[number];

export interface PulseDeps {
  store: ReadStore;
  metrics: SidecarMetrics;
  loopsDir: string;
  adaptersDir: string;
  runsDir: string;
  /** `<data>/train.paused`: pausing or resuming training is news to the health view. */
  trainPausedFile?: string;
  /** The switchboard's state (live version etc.); `inflight` counts in it are ignored. */
  switchboardStatus?: () => unknown;
  logger: Logger;
  intervalMs?: number;
  /** Health (upstream, loops) is refreshed this often even when nothing else moved. */
  healthEveryMs?: number;
  keepAliveMs?: number;
}

function mtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** Names in a folder (the last `max`), each with the time of `file` inside it when given. */
function listing(dir: string, max: number, file: string | null): string {
  try {
    const names = fs.readdirSync(dir).sort();
    return names
      .slice(-max)
      .map((n) => (file ? `${n}@${mtime(path.join(dir, n, file))}` : n))
      .join(",");
  } catch {
    return "";
  }
}

async function total(metric: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await metric.get()).values.reduce((n, v) => n + v.value, 0);
}

export class Pulse {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private keepAlive: NodeJS.Timeout | null = null;
  private last: Partial<Record<Topic, string>> = {};
  private ticking = false;
  private lastHealthAt = 0;

  constructor(private readonly d: PulseDeps) {}

  get clientCount(): number {
    return this.clients.size;
  }

  /** Turns the response into an event stream until the page goes away. */
  attach(res: ServerResponse): void {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
      connection: "keep-alive",
    });
    res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ topics: TOPICS })}\n\n`);
    this.clients.add(res);
    res.on("close", () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stop();
    });
    this.start();
  }

  private start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.d.intervalMs ?? 1_000);
    this.timer.unref();
    this.keepAlive = setInterval(() => this.send(": keep-alive\n\n"), this.d.keepAliveMs ?? 15_000);
    this.keepAlive.unref();
    void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.timer = this.keepAlive = null;
    this.last = {};
  }

  /** Ends every stream (the sidecar is closing). */
  close(): void {
    for (const res of this.clients) res.end();
    this.clients.clear();
    this.stop();
  }

  private send(text: string): void {
    for (const res of this.clients) res.write(text);
  }

  private async fingerprints(): Promise<Record<Topic, string>> {
    const d = this.d;
    const judgeFile = mtime(path.join(d.loopsDir, "judge.json"));
    const trainFile = mtime(path.join(d.loopsDir, "train.json"));
    const pauseFile = d.trainPausedFile ? mtime(d.trainPausedFile) : 0;
    const [turns, events, judgments, steps] = await Promise.all([
      total(d.metrics.turns),
      total(d.metrics.events),
      d.store.count("judgments").catch(() => -1),
      d.store.count("train_steps").catch(() => -1),
    ]);
    let board = "";
    try {
      // Calls in flight come and go with traffic; they are not a change of the adapters.
      board = JSON.stringify(d.switchboardStatus?.() ?? null, (key, value: unknown) => (key === "inflight" ? undefined : value));
    } catch {
      board = "?";
    }
    const health = d.store.health();
    const now = Date.now();
    const healthBeat = now - this.lastHealthAt >= (d.healthEveryMs ?? 10_000) ? now : this.lastHealthAt;
    this.lastHealthAt = healthBeat;
    return {
      turns: `${turns}/${events}`,
      judgments: `${judgments}/${judgeFile}`,
      train: `${steps}/${trainFile}`,
      adapters: `${listing(d.adaptersDir, 1_000, null)}/${board}`,
      loops: `${judgeFile}/${trainFile}/${pauseFile}/${health.ok}/${health.lastError}/${healthBeat}`,
      runs: listing(d.runsDir, 200, "summary.json"),
    };
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.clients.size === 0) return;
    this.ticking = true;
    try {
      const now = await this.fingerprints();
      const first = Object.keys(this.last).length === 0;
      const changed = TOPICS.filter((t) => this.last[t] !== now[t]);
      this.last = now;
      // The first look is the baseline: pages fetched everything on "hello".
      if (!first && changed.length) this.send(`event: change\ndata: ${JSON.stringify({ topics: changed })}\n\n`);
    } catch (err) {
      this.d.logger.debug({ err: String(err) }, "dashboard pulse failed");
    } finally {
      this.ticking = false;
    }
  }
}
