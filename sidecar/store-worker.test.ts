// The store host's `listFields`: the field names cross over as strings, so the host checks them
// against the table before LanceDB sees them.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../core/index.js";
import { makeTurnJob } from "../test/support/turn-jobs.js";
import { openRecordStore, type RecordStore } from "./record-store.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("store host listFields", () => {
  it("answers the fields asked for, and refuses a field the table does not have by name", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-store-worker-"));
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const store = await openRecordStore({ dataDir, maskSecrets: false, secretPatterns: [], logger: createLogger("test", "silent"), logLevel: "silent", host: "process" });
    cleanups.push(() => store.close());
    expect(store.host).toBe("process");
    await store.putTurn(makeTurnJob(0));
    await store.flush();
    expect(await store.listFields("turns", ["seq", "sessionId"])).toEqual([{ id: "t0", seq: 0, sessionId: "s" }]);
    // What an untyped caller could send over the wire (the typed API does not let one write it).
    const untyped = store as unknown as { listFields(table: string, fields: string[]): Promise<unknown> };
    await expect(untyped.listFields("turns", ["seq", "nosuch", "alsoNot"])).rejects.toThrow("listFields: the turns table has no field nosuch, alsoNot");
    // The host is still there for the next request.
    expect(await store.listFields("turns", ["seq"])).toEqual([{ id: "t0", seq: 0 }]);
  });
});
