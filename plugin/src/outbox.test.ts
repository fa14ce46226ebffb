import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, receiver, removeTmpDirs, tmpDir, until, type Receiver } from "../test-support/receiver.js";
import { sessionEndEvent, userMessageEvent, type ClawloopEvent } from "./events.js";
import { Outbox, type OutboxOptions } from "./outbox.js";

const open: (Receiver | Outbox)[] = [];
afterEach(async () => {
  for (const x of open.splice(0)) {
    if (x instanceof Outbox) x.close();
    else await x.close();
  }
  removeTmpDirs();
});

function events(n: number, session = "s1"): ClawloopEvent[] {
  return Array.from({ length: n }, (_, i) => userMessageEvent({ sessionId: session, forRunId: `run-${i}`, byRunId: `run-${i + 1}`, text: `reply ${i}` }));
}

function outbox(spoolDir: string, url: string | null, over: Partial<OutboxOptions> = {}): Outbox {
  const warnings: string[] = [];
  const o = new Outbox({
    spoolDir,
    endpoint: () => (url ? `${url}/clawloop/v1/events` : null),
    token: () => "tok",
    logger: { info: () => {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
    retryBaseMs: 20,
    retryMaxMs: 100,
    flushDelayMs: 5,
    ...over,
  });
  open.push(o);
  return o;
}

const pending = (spool: string) => fs.readdirSync(path.join(spool, "pending")).filter((f) => f.endsWith(".json")).length;

describe("Outbox", () => {
  it("sends spooled events in one batch with the bearer token and empties the spool", async () => {
    const r = await receiver();
    open.push(r);
    const spool = tmpDir();
    const o = outbox(spool, r.url);
    o.enqueue(events(5));
    expect(pending(spool)).toBe(5); // on disk before any network I/O
    await until(() => r.events().length === 5, 5000, "delivery");
    await o.flush();
    expect(r.batches).toHaveLength(1);
    expect(r.auth[0]).toBe("Bearer tok");
    expect(pending(spool)).toBe(0);
  });

  it("keeps events on disk while the sidecar is down and delivers each exactly once when it is back", async () => {
    const port = await freePort();
    const spool = tmpDir();
    const o = outbox(spool, `http://127.0.0.1:${port}`);
    const evs = events(7);
    o.enqueue(evs.slice(0, 4));
    await o.flush(); // refused: nothing listens
    o.enqueue(evs.slice(4));
    await o.flush();
    expect(pending(spool)).toBe(7);

    const r = await receiver(port);
    open.push(r);
    await until(() => pending(spool) === 0, 10_000, "retry after the sidecar came back");
    const got = r.batches.flat().map((e) => e.id);
    expect(new Set(got).size).toBe(got.length); // nothing sent twice
    expect(got.sort()).toEqual(evs.map((e) => e.id).sort());
  });

  it("leaves what it could not send for the next process, which delivers it", async () => {
    const port = await freePort();
    const spool = tmpDir();
    const first = outbox(spool, `http://127.0.0.1:${port}`);
    first.enqueue(events(3));
    await first.flush();
    first.close(); // the `openclaw agent --local` process exits

    const r = await receiver(port);
    open.push(r);
    const next = outbox(spool, r.url);
    await next.flush();
    expect(r.events().map((e) => e.id).sort()).toEqual(events(3).map((e) => e.id).sort());
    expect(pending(spool)).toBe(0);
  });

  it("spools an event with the same id once, and does not re-send one it already delivered", async () => {
    const r = await receiver();
    open.push(r);
    const spool = tmpDir();
    const o = outbox(spool, r.url, { flushDelayMs: 10_000 });
    const [ev] = events(1);
    o.enqueue([ev!, ev!]);
    o.enqueue([ev!]);
    expect(pending(spool)).toBe(1);
    await o.flush();
    o.enqueue([ev!]); // e.g. the other module instance saw the same hook
    await o.flush();
    expect(r.batches.flat()).toHaveLength(1);
  });

  it("isolates an event the sidecar rejects, keeps it for diagnosis, and delivers the rest", async () => {
    const r = await receiver();
    open.push(r);
    const spool = tmpDir();
    const o = outbox(spool, r.url, { flushDelayMs: 10_000 });
    const evs = events(4);
    r.invalidIds.add(evs[2]!.id);
    o.enqueue(evs);
    await o.flush();
    expect(r.events().map((e) => e.id).sort()).toEqual([evs[0]!.id, evs[1]!.id, evs[3]!.id].sort());
    expect(pending(spool)).toBe(0);
    const rejected = fs.readdirSync(path.join(spool, "rejected"));
    expect(rejected.filter((f) => f.endsWith(".json"))).toHaveLength(1);
    expect(rejected.some((f) => f.endsWith(".error"))).toBe(true);
  });

  it("bisects a batch the sidecar refuses with 400 down to the bad event", async () => {
    const r = await receiver();
    open.push(r);
    const spool = tmpDir();
    const o = outbox(spool, r.url, { flushDelayMs: 10_000 });
    const evs = [...events(3), sessionEndEvent("s1")];
    // The receiver answers 400 only for a batch made of nothing but invalid events.
    r.invalidIds.add(evs[1]!.id);
    o.enqueue(evs);
    await o.flush();
    expect(r.events()).toHaveLength(3);
    expect(pending(spool)).toBe(0);
  });

  it("keeps events and re-reads the token after a 401", async () => {
    const r = await receiver();
    open.push(r);
    r.status = 401;
    const spool = tmpDir();
    let authFailures = 0;
    const o = outbox(spool, r.url, { onAuthFailure: () => authFailures++, flushDelayMs: 10_000 });
    o.enqueue(events(2));
    await o.flush();
    expect(authFailures).toBe(1);
    expect(pending(spool)).toBe(2);
    r.status = 200;
    await until(() => pending(spool) === 0, 5000, "retry with a good token");
    expect(r.events()).toHaveLength(2);
  });

  it("only spools while no sidecar URL is known", async () => {
    const spool = tmpDir();
    const o = outbox(spool, null);
    o.enqueue(events(2));
    await o.flush();
    expect(pending(spool)).toBe(2);
  });

  it("never throws into the agent when the spool cannot be written", () => {
    const spool = tmpDir();
    const warnings: string[] = [];
    const o = outbox(spool, null, { logger: { info: () => {}, warn: (m) => warnings.push(m), error: () => {} } });
    fs.chmodSync(path.join(spool, "pending"), 0o500);
    try {
      if (process.getuid?.() === 0) {
        // root ignores directory permissions: make the target unwritable another way
        fs.rmSync(path.join(spool, "pending"), { recursive: true });
        fs.writeFileSync(path.join(spool, "pending"), "not a directory");
      }
      expect(() => o.enqueue(events(1))).not.toThrow();
      expect(warnings.join("\n")).toMatch(/could not spool/);
    } finally {
      fs.rmSync(path.join(spool, "pending"), { recursive: true, force: true });
    }
  });
});
