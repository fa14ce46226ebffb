// The store host: owns the sidecar's store (the append-only log and LanceDB) and builds turn rows,
// answering the proxy over messages (sidecar/record-store.ts). It runs as a child process (the
// default) or a worker thread. A write is answered once the row is in the log.
import { parentPort, workerData } from "node:worker_threads";
import { createLogger, Store, type StoreHealth, type TableName, type Tables } from "../core/index.js";
import { decodeJob, lastTurn, recordTables, STORE_DATA_ENV, TurnWriter, type StoreMessage, type StoreRequest, type StoreWorkerData } from "./record-store.js";
import { CachedMasker } from "./turns.js";

const asProcess = !parentPort;
const data = (asProcess ? JSON.parse(process.env[STORE_DATA_ENV] ?? "null") : workerData) as StoreWorkerData | null;
if (!data) throw new Error(`sidecar/store-worker: started without its data (${STORE_DATA_ENV})`);
const post = (m: StoreMessage) => {
  if (parentPort) parentPort.postMessage(m);
  else if (process.connected) process.send!(m);
};
const logger = createLogger("sidecar-store", data.logLevel);

/** A store host left behind by a sidecar that was killed may still hold the table locks briefly. */
async function openStore(): Promise<Store> {
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

let store: Store;
try {
  store = await openStore();
} catch (err) {
  post({ type: "failed", error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
const turns = new TurnWriter(store, new CachedMasker(data.maskSecrets, data.secretPatterns));
let closed = false;

async function close(): Promise<void> {
  if (closed) return;
  closed = true;
  clearInterval(timer);
  await store.close();
}

async function handle(m: StoreRequest): Promise<unknown> {
  switch (m.op) {
    case "putTurn":
      return turns.put(decodeJob(m.bytes), m.resent === true);
    case "put":
      store.put(m.table, m.row as Tables[TableName]);
      return undefined;
    case "list":
      return store.list(m.table, m.q);
    case "listFields":
      return store.listFields(m.table, m.fields as never[], m.q);
    case "get":
      return store.get(m.table, m.key);
    case "count":
      return store.count(m.table, m.where);
    case "lastTurn":
      return lastTurn(store, m.where);
    case "health":
      return store.health();
    case "memory":
      return process.memoryUsage();
    case "flush":
      return store.flush();
    case "close":
      await close();
      return undefined;
  }
}

const onMessage = (m: StoreRequest) => {
  handle(m).then(
    (value) => post({ type: "reply", id: m.id, ok: true, value }),
    (err: unknown) => post({ type: "reply", id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
};
if (parentPort) parentPort.on("message", onMessage);
else {
  process.on("message", onMessage);
  // The sidecar went away (even by kill -9): everything acknowledged is in the log already; move
  // what can be moved into LanceDB, release the locks, and go.
  process.on("disconnect", () => {
    void close().finally(() => process.exit(0));
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => undefined);
}

// The proxy reads health without asking (metrics, status).
let last = "";
const timer = setInterval(() => {
  const health: StoreHealth = store.health();
  const text = JSON.stringify(health);
  if (text !== last) {
    last = text;
    post({ type: "health", health });
  }
}, 200);
post({ type: "ready", health: store.health() });
