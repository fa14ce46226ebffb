// A rollback whose target cannot be read (a file missing or corrupt) is not obeyed yet: the train
// loop tries it again, and grows nothing meanwhile, rather than recording it as obeyed and going on
// from the version the rollback abandoned. On the code before the fix, the loop's first try wrote
// `<data>/trainer/head.json`, failed on the read, and the next iteration stepped on v000002 (v000003
// with parent v000002). Real store and adapter directories; the stand-in engine
// (trainer/testing/fake-backend.ts), whose readAdapter reads the version's safetensors file.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, expect, it } from "vitest";
import { writeHead } from "../adapters/index.js";
import { loadConfig, Store } from "../core/index.js";
import { putJudgedTurns } from "../test/support/rows.js";
import { until } from "../test/support/until.js";
import { newHead, obeyedHeadFile } from "./lineage.js";
import { startTrainLoop, type TrainLoop } from "./loop.js";
import { fakeBackend } from "./testing/fake-backend.js";
import { listVersions } from "./versions.js";

let dataDir: string;
let writer: Store;
let loop: TrainLoop | null = null;

beforeEach(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-rollback-read-"));
  writer = await Store.open({ dataDir, writes: ["turns", "judgments"], flushIntervalMs: 50 });
});
afterEach(async () => {
  await loop?.stop();
  loop = null;
  await writer.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const addJudged = (from: number, to: number): Promise<void> => putJudgedTurns(writer, from, to);

it("a rollback whose version cannot be read is tried again, not recorded as obeyed, and nothing grows from the abandoned version", async () => {
  const failures: string[] = [];
  const logger = pino({ level: "error" }, { write: (line: string) => void failures.push((JSON.parse(line) as { err?: string }).err ?? "") });
  const config = loadConfig({ env: {}, flags: { dataDir, train: { batchSize: 2, maxWaitSec: 0, pollMs: 30, lr: 0.1 } } });
  const adapters = path.join(dataDir, "adapters");
  await addJudged(1, 4);
  loop = await startTrainLoop(config, { backend: fakeBackend(), model: "/models/fake.gguf", logger });
  await until("v000002", () => listVersions(adapters).length === 2);

  // Roll back to v000001 while its weights file is away (a disk fault, a hand-edited directory).
  const weights = path.join(adapters, "v000001", "adapter_model.safetensors");
  fs.renameSync(weights, `${weights}.away`);
  const head = writeHead(adapters, "v000001", "rollback to v000001");
  await addJudged(5, 6);
  // Two failed tries (the loop backs off between them): the rollback stayed new after the first.
  // The code before the fix tried once and stepped on v000002 instead (v000003 appeared).
  await until("two failed reads of v000001, or a v000003", () => failures.filter((e) => e.includes("adapter_model.safetensors")).length >= 2 || listVersions(adapters).length > 2);
  expect(listVersions(adapters).map((v) => v.name)).toEqual(["v000001", "v000002"]);
  expect(fs.existsSync(obeyedHeadFile(path.join(dataDir, "trainer")))).toBe(false);
  expect(newHead(adapters, path.join(dataDir, "trainer"))).toEqual(head);

  // The file is back: the next try reads it, records the rollback, and the step grows v000001.
  fs.renameSync(`${weights}.away`, weights);
  await until("v000003", () => listVersions(adapters).length === 3);
  expect(listVersions(adapters)[2]!.manifest).toMatchObject({ parent: "v000001", sampleIds: ["call-5", "call-6"] });
  expect(newHead(adapters, path.join(dataDir, "trainer"))).toBe(null);
});
