// SessionBook's numbering when its session cache drops a session whose last-seq lookup has not
// answered yet. Before the fix, the next call of that session started a second lookup, which
// replaced the first one's list of calls journaled without their seq: the first lookup's answer then
// left out only its own calls and the second's counted the first's, so the session's numbers had a
// gap (the calls got 7 and 8 after turn 5 below, instead of 6 and 7).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger, Store } from "../core/index.js";
import { makeTurn } from "../test/support/rows.js";
import { lastTurn, type RecordStore } from "./record-store.js";
import { SessionBook } from "./sessions.js";

const logger = createLogger("test", "silent");
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A store (LanceDB) whose last-seq lookups of session "A" answer only once `answer()` is called. */
async function gatedStore(): Promise<{ store: Store; book: Pick<RecordStore, "lastTurn" | "listFields">; lookupsOfA: () => number; answer: () => void }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-sessions-"));
  cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const store = await Store.open({ dataDir, writes: ["turns"], logger });
  cleanups.push(() => store.close());
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let lookupsOfA = 0;
  return {
    store,
    book: {
      lastTurn: async (where) => {
        if (where.sessionId === "A") {
          lookupsOfA++;
          await gate;
        }
        return lastTurn(store, where);
      },
      listFields: (table, fields, q) => store.listFields(table, fields, q),
    },
    lookupsOfA: () => lookupsOfA,
    answer: open,
  };
}

describe("SessionBook", () => {
  it("numbers every call of a session the cache dropped while its lookup ran: one lookup, no gap", async () => {
    const { store, book: seam, lookupsOfA, answer } = await gatedStore();
    // The session so far, written by an earlier sidecar: its last turn has seq 5.
    store.put("turns", makeTurn(5, { id: "A-5", sessionId: "A", seq: 5 }));
    const book = new SessionBook(seam, logger, { sessions: 1 });

    // Call a1: the lookup does not answer, so the call is journaled without its seq.
    const a1 = book.reserveSeq("A");
    expect(book.journaledUnnumbered("A", "a1")).toBe(true);
    // Another session's call: the cache (one session) drops A.
    expect(await book.reserveSeq("B")).toBe(0);
    // Call a2 of A, also journaled without its seq.
    const a2 = book.reserveSeq("A");
    expect(book.journaledUnnumbered("A", "a2")).toBe(true);
    // The store host numbered both as it took them in (a2 finished first): 6 and 7.
    store.put("turns", makeTurn(6, { id: "a2", sessionId: "A", seq: 6 }));
    store.put("turns", makeTurn(7, { id: "a1", sessionId: "A", seq: 7 }));

    answer();
    // In the order the calls started, right after turn 5, as the host's rows are rewritten.
    expect(await Promise.all([a1, a2])).toEqual([6, 7]);
    expect(lookupsOfA()).toBe(1);

    // Once the lookup has answered, a session dropped from the cache is looked up again as always.
    store.put("turns", makeTurn(8, { id: "a1", sessionId: "A", seq: 6 }));
    store.put("turns", makeTurn(9, { id: "a2", sessionId: "A", seq: 7 }));
    expect(await book.reserveSeq("C")).toBe(0);
    expect(await book.reserveSeq("A")).toBe(8);
    expect(lookupsOfA()).toBe(2);
  });
});
