// What the plugin remembers about sessions across OpenClaw processes: each session's last main
// turn (for `/good`, `/bad` and reactions, which name no turn) and the runs that made no model
// call (a `/good` answered without the model), which must not be mistaken for the previous turn.
// Kept in memory and mirrored to one small JSON file per session, since `openclaw agent --local`
// runs are separate processes and the Gateway's command handler sits in another module instance.
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";

export interface SessionRecord {
  /** The session id the sidecar saw (`X-Session-Id`). */
  sessionId: string;
  sessionKey: string | null;
  lastMainRunId: string | null;
  lastMainCallId: string | null;
  /** Runs answered without a model call (feedback commands). */
  noModelRunIds: string[];
  updatedAt: string;
}

const MAX_NO_MODEL_RUNS = 50;

export class SessionIndex {
  private readonly mem = new Map<string, SessionRecord>();
  private readonly writes = new Map<string, { running: boolean; next: SessionRecord | null }>();
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly dir: string) {}

  /** Looks a session up by key, then by id (either may be missing in a given hook). */
  get(ref: { sessionKey?: string | null; sessionId?: string | null }): SessionRecord | null {
    for (const key of keysOf(ref)) {
      const rec = this.mem.get(key) ?? this.readDisk(key);
      if (rec) return rec;
    }
    return null;
  }

  noteMainCall(ref: { sessionKey?: string | null; sessionId: string }, runId: string, callId: string): void {
    const rec = this.get(ref) ?? blank(ref);
    if (rec.lastMainRunId === runId && rec.lastMainCallId === callId) return;
    this.save({ ...rec, sessionId: ref.sessionId, sessionKey: ref.sessionKey ?? rec.sessionKey, lastMainRunId: runId, lastMainCallId: callId });
  }

  noteNoModelRun(ref: { sessionKey?: string | null; sessionId: string }, runId: string): void {
    const rec = this.get(ref) ?? blank(ref);
    if (rec.noModelRunIds.includes(runId)) return;
    this.save({ ...rec, noModelRunIds: [...rec.noModelRunIds, runId].slice(-MAX_NO_MODEL_RUNS) });
  }

  private save(rec: SessionRecord): void {
    const next = { ...rec, updatedAt: new Date().toISOString() };
    for (const key of keysOf(next)) {
      this.mem.set(key, next);
      this.writeDisk(key, next);
    }
  }

  private file(key: string): string {
    return path.join(this.dir, `${createHash("sha256").update(key).digest("hex").slice(0, 32)}.json`);
  }

  private readDisk(key: string): SessionRecord | null {
    try {
      const rec = JSON.parse(fs.readFileSync(this.file(key), "utf8")) as SessionRecord;
      this.mem.set(key, rec);
      return rec;
    } catch {
      return null;
    }
  }

  /**
   * Written in the background (this runs as a model call starts), latest record last, atomically
   * (temp + rename). Best effort: losing it only loses a cross-process hint.
   */
  private writeDisk(key: string, rec: SessionRecord): void {
    const w = this.writes.get(key) ?? { running: false, next: null };
    w.next = rec;
    this.writes.set(key, w);
    if (!w.running) void this.pump(key, w);
  }

  private async pump(key: string, w: { running: boolean; next: SessionRecord | null }): Promise<void> {
    w.running = true;
    while (w.next) {
      const rec = w.next;
      w.next = null;
      const tmp = path.join(this.dir, `.${randomBytes(6).toString("hex")}.tmp`);
      try {
        await fsp.mkdir(this.dir, { recursive: true });
        await fsp.writeFile(tmp, JSON.stringify(rec));
        await fsp.rename(tmp, this.file(key));
      } catch {
        await fsp.rm(tmp, { force: true }).catch(() => undefined);
      }
    }
    w.running = false;
    this.writes.delete(key);
    if (this.writes.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Resolves when every record is on disk (tests; shutdown). */
  async settled(): Promise<void> {
    if (this.writes.size === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }
}

function keysOf(ref: { sessionKey?: string | null; sessionId?: string | null }): string[] {
  const keys: string[] = [];
  if (ref.sessionKey) keys.push(`key:${ref.sessionKey}`);
  if (ref.sessionId) keys.push(`id:${ref.sessionId}`);
  return keys;
}

function blank(ref: { sessionKey?: string | null; sessionId: string }): SessionRecord {
  return {
    sessionId: ref.sessionId,
    sessionKey: ref.sessionKey ?? null,
    lastMainRunId: null,
    lastMainCallId: null,
    noModelRunIds: [],
    updatedAt: new Date().toISOString(),
  };
}

/**
 * The run id of the transcript's last assistant message (OpenClaw stamps `__openclaw.runId` on
 * persisted assistant messages), skipping the current run and runs that made no model call.
 */
export function previousRunId(messages: unknown[], currentRunId: string | null, skip: readonly string[] = []): string | null {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; __openclaw?: { runId?: unknown } } | null;
    if (!m || m.role !== "assistant") continue;
    const runId = m.__openclaw?.runId;
    if (typeof runId !== "string" || !runId || runId === currentRunId || skip.includes(runId)) continue;
    return runId;
  }
  return null;
}
