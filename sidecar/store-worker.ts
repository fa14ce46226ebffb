// The store host: owns the sidecar's store (the append-only log and LanceDB) and builds turn rows,
// answering the proxy over messages (sidecar/record-store.ts). It runs as a child process (the
// default) or a worker thread. A write is answered once the row is in the log.
import { parentPort, workerData } from "node:worker_threads";
import { createLogger, Store, TABLE_COLUMNS, type StoreHealth, type TableName, type Tables } from "../core/index.js";
import { decodeJob, lastTurn, recordTables, STORE_DATA_ENV, TurnWriter, type StoreMessage, type StoreRequest, type StoreWorkerData } from "./record-store.js";
import { processMallocTrimmer } from "./malloc-trim.js";
import { CachedMasker } from "./turns.js";

const asProcess = !parentPort;
const data = (asProcess ? JSON.parse(process.env[STORE_DATA_ENV] ?? "null") : workerData) as StoreWorkerData | null;
if (!data) throw new Error(`sidecar/store-worker: started without its data (${STORE_DATA_ENV})`);
const post = (m: StoreMessage) => {
  if (parentPort) parentPort.postMessage(m);
  else if (process.connected) process.send!(m);
};
const logger = createLogger("sidecar-store", data.logLevel);

/**
 * Test hook, never set in production: `CLAWLOOP_TEST_STORE_HANG=open|close` makes this host hang at
 * that point, as LanceDB was once seen to (it cannot be made to hang on demand). The hang holds the
 * event loop open, as a native operation in flight does, so only the lifecycle's deadlines end it.
 */
const TEST_HANG = process.env.CLAWLOOP_TEST_STORE_HANG;
const hangHere = (at: "open" | "close"): Promise<never> | null =>
  TEST_HANG === at
    ? new Promise<never>(() => {
        logger.warn(`test hook CLAWLOOP_TEST_STORE_HANG: hanging in ${at}`);
        setInterval(() => undefined, 1 << 30);
      })
    : null;

/** A store host left behind by a sidecar that was killed may still hold the table locks briefly. */
async function openStore(): Promise<Store> {
  await hangHere("open");
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await Store.open({ ...data!.store, dataDir: data!.dataDir, writes: recordTables(data!.adapters), logger });
    } catch (err) {
      if (!/already written by process/.test(String(err)) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

let store: Store | null = null;
let timer: NodeJS.Timeout | undefined;
let closing: Promise<void> | null = null;

function close(): Promise<void> {
  closing ??= (async () => {
    clearInterval(timer);
    await hangHere("close");
    await store?.close();
  })();
  return closing;
}

const opening = openStore();

// A child process whose sidecar went away (even by kill -9) must go too, or it keeps the table
// locks and the next sidecar cannot start. Registered before the store opens, so that a sidecar
// gone while this host starts is noticed as well.
if (asProcess) {
  let leaving = false;
  const leave = () => {
    if (leaving) return;
    leaving = true;
    // Ref'd on purpose: it can only make this process end sooner.
    setTimeout(() => {
      logger.warn({ ms: data.exitDeadlineMs }, "the store did not close in time after the sidecar went away; exiting anyway (nothing is lost: the next sidecar start replays its journal and this log)");
      process.exit(0);
    }, data.exitDeadlineMs);
    // Everything acknowledged is in the log already; move what can be moved into LanceDB and
    // release the locks.
    void opening
      .then(() => close())
      .catch(() => undefined)
      .finally(() => process.exit(0));
  };
  process.on("disconnect", leave);
  // The channel may have closed before this module ran (it loads asynchronously).
  if (!process.connected) leave();
  // Ctrl-C reaches the whole process group: the sidecar closes this host itself.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => undefined);
}

try {
  store = await opening;
} catch (err) {
  post({ type: "failed", error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
const opened: Store = store;
const turns = new TurnWriter(opened, new CachedMasker(data.maskSecrets, data.secretPatterns));

/**
 * The fields a `listFields` request names, as the table's own (they crossed over as strings). One
 * the table does not have is refused by name rather than handed to LanceDB.
 */
function fieldsOf<T extends TableName>(table: T, fields: readonly string[]): (keyof Tables[T] & string)[] {
  const isField = (f: string): f is keyof Tables[T] & string => Object.hasOwn(TABLE_COLUMNS[table], f);
  const unknown = fields.filter((f) => !isField(f));
  if (unknown.length) throw new Error(`listFields: the ${table} table has no field ${unknown.join(", ")}`);
  return fields.filter(isField);
}

async function handle(m: StoreRequest): Promise<unknown> {
  switch (m.op) {
    case "putTurn":
      return turns.put(decodeJob(m.bytes), m.resent === true);
    case "put":
      opened.put(m.table, m.row as Tables[TableName]);
      return undefined;
    case "list":
      return opened.list(m.table, m.q);
    case "listFields":
      return opened.listFields(m.table, fieldsOf(m.table, m.fields), m.q);
    case "get":
      return opened.get(m.table, m.key);
    case "count":
      return opened.count(m.table, m.where);
    case "lastTurn":
      return lastTurn(opened, m.where);
    case "health":
      return opened.health();
    case "memory":
      return process.memoryUsage();
    case "flush":
      return opened.flush();
    case "close":
      await close();
      return undefined;
  }
}

// A store process gives freed memory back once the proxy has been quiet for a while; the wait
// outlasts the write-behind flush into LanceDB (1 s after the last write), which allocates the most.
// (A store thread shares the proxy process's trimmer.)
const trimmer = asProcess ? processMallocTrimmer({ logger, quietMs: 2_500 }) : null;
const onMessage = (m: StoreRequest) => {
  trimmer?.touch();
  handle(m).then(
    (value) => post({ type: "reply", id: m.id, ok: true, value }),
    (err: unknown) => post({ type: "reply", id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
};
if (parentPort) parentPort.on("message", onMessage);
else process.on("message", onMessage);

// The proxy reads health without asking (metrics, status); not once a sidecar that went away while
// this host opened has it closing.
let last = "";
if (!closing) {
  timer = setInterval(() => {
    const health: StoreHealth = opened.health();
    const text = JSON.stringify(health);
    if (text !== last) {
      last = text;
      post({ type: "health", health });
    }
  }, 200);
}
post({ type: "ready", health: opened.health() });
