// The store thread: owns the sidecar's store (the append-only log and LanceDB) and builds turn rows,
// answering the proxy's thread over messages (sidecar/record-store.ts). A write is answered once the
// row is in the log.
import { parentPort, workerData } from "node:worker_threads";
import { createLogger, Store, type StoreHealth, type TableName, type Tables } from "../core/index.js";
import { SecretMasker } from "./privacy.js";
import type { StoreMessage, StoreRequest, StoreWorkerData } from "./record-store.js";
import { buildTurn, refOf } from "./turns.js";

const port = parentPort!;
const data = workerData as StoreWorkerData;
const logger = createLogger("sidecar-store", data.logLevel);
const post = (m: StoreMessage) => port.postMessage(m);

let store: Store;
try {
  store = await Store.open({ ...data.store, dataDir: data.dataDir, writes: ["turns", "next_states"], logger });
} catch (err) {
  post({ type: "failed", error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
const masker = new SecretMasker(data.maskSecrets, data.secretPatterns);

async function handle(m: StoreRequest): Promise<unknown> {
  switch (m.op) {
    case "putTurn": {
      const turn = buildTurn(m.job, masker);
      store.put("turns", turn, { insert: !m.resent });
      return refOf(turn);
    }
    case "put":
      store.put(m.table, m.row as Tables[TableName]);
      return undefined;
    case "list":
      return store.list(m.table, m.q);
    case "get":
      return store.get(m.table, m.key);
    case "count":
      return store.count(m.table, m.where);
    case "health":
      return store.health();
    case "flush":
      return store.flush();
    case "close":
      clearInterval(timer);
      await store.close();
      return undefined;
  }
}

port.on("message", (m: StoreRequest) => {
  handle(m).then(
    (value) => post({ type: "reply", id: m.id, ok: true, value }),
    (err: unknown) => post({ type: "reply", id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});

// The proxy's thread reads health without asking (metrics, status).
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
