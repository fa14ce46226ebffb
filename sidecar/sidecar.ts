// Starts a sidecar: the store (turns, next_states), the upstream, the proxy, the control API and
// `/metrics`, all on one port. Used by `clawloop sidecar`, by `clawloop up` in-process, and by tests.
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger, dataPaths, readOrCreateToken, type Config, type Logger, type StoreOptions } from "../core/index.js";
import { mountControlApi } from "./control.js";
import { mountDashboard } from "./dashboard/index.js";
import { tuneHeap } from "./heap.js";
import { processMallocTrimmer } from "./malloc-trim.js";
import { EventLinker } from "./linker.js";
import { SidecarMetrics } from "./metrics.js";
import { SessionInference, SideRules } from "./inference/index.js";
import type { Placer } from "./placement.js";
import { SecretMasker } from "./privacy.js";
import { Proxy } from "./proxy.js";
import { openRecordStore, type RecordStore, type StoreHost } from "./record-store.js";
import { Recorder } from "./recorder.js";
import { CONTROL_PREFIX, ControlRouter } from "./router.js";
import { SessionBook } from "./sessions.js";
import { PassThroughSwitchboard, type Switchboard } from "./switchboard.js";
import { Upstream } from "./upstream.js";

export interface SidecarOptions {
  logger?: Logger;
  /** Where calls go (sessions, main/side); default: by tags, session inference and side rules. */
  placer?: Placer;
  /** Which model/adapter serves each call; default: the requested model, no adapter. */
  switchboard?: Switchboard;
  /**
   * Extra store options (`flushIntervalMs`, `fsync`, and the test seams `beforeLanceWrite` and `io`,
   * which run the store on the proxy's thread: functions cannot cross to another thread or process).
   */
  store?: Partial<Omit<StoreOptions, "dataDir" | "writes" | "logger">>;
  /** Where the store runs: a child process, a worker thread, or the proxy's own thread (default: `sidecar.storeHost`). */
  storeHost?: StoreHost;
  /** @deprecated the earlier name of `storeHost` ("worker" | "main"). */
  storeThread?: "worker" | "main";
  /** A store opened by the caller (`openRecordStore`); the sidecar closes it when it stops. */
  recordStore?: RecordStore;
  /** How long start-up waits for upstream kind detection before serving anyway. */
  detectTimeoutMs?: number;
  /** How long `close()` waits for requests in flight before cutting them. */
  shutdownTimeoutMs?: number;
}

/**
 * The sidecar's record store as its config and options say (`adapters`: it also writes the adapters
 * table, for the hot-load switchboard). One place, so every caller opens it alike.
 */
export function openSidecarStore(config: Config, opts: SidecarOptions, logger: Logger, adapters = false): Promise<RecordStore> {
  const cfg = config.sidecar;
  return openRecordStore({
    dataDir: dataPaths(config.dataDir).root,
    maskSecrets: cfg.maskSecrets,
    secretPatterns: cfg.secretPatterns,
    logger,
    logLevel: config.logLevel,
    store: opts.store,
    host: opts.storeHost ?? opts.storeThread ?? cfg.storeHost,
    hostNice: cfg.storeNice,
    ...(adapters ? { adapters: true } : {}),
    startTimeoutMs: cfg.storeStartTimeoutMs,
  });
}

export interface SidecarHandle {
  /** `http://host:port` */
  url: string;
  host: string;
  port: number;
  /** The control API's bearer token. */
  token: string;
  /** The sidecar's store (turns, next_states), in a process of its own unless told otherwise. */
  store: RecordStore;
  upstream: Upstream;
  /** Mount more control endpoints here (dashboard, adapters). */
  control: ControlRouter;
  metrics: SidecarMetrics;
  server: http.Server;
  /** Stops accepting, finishes requests in flight, flushes the store. */
  close(): Promise<void>;
}

function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, "utf8")) as { version?: string }).version ?? "0.0.0";
    const up = path.dirname(dir);
    if (up === dir) return "0.0.0";
    dir = up;
  }
}

export async function startSidecar(config: Config, opts: SidecarOptions = {}): Promise<SidecarHandle> {
  const cfg = config.sidecar;
  if (!cfg.upstream) {
    throw new Error("no upstream: pass --upstream URL (or set sidecar.upstream / CLAWLOOP_SIDECAR_UPSTREAM)");
  }
  const logger = opts.logger ?? createLogger("sidecar", config.logLevel);
  tuneHeap(logger);
  const trimmer = processMallocTrimmer({ logger });
  const paths = dataPaths(config.dataDir);
  fs.mkdirSync(paths.root, { recursive: true });
  const token = readOrCreateToken(paths.root);
  // Checked here so a bad pattern fails the start, not the store thread.
  const masker = new SecretMasker(cfg.maskSecrets, cfg.secretPatterns);
  new SideRules(cfg.sideRules, cfg.builtinSideRules);
  const upstream = new Upstream(cfg.upstream, { kind: cfg.upstreamKind, apiKey: cfg.upstreamApiKey, logger });
  const store = opts.recordStore ?? (await openSidecarStore(config, opts, logger));
  const stopOnError = async (err: unknown): Promise<never> => {
    upstream.close();
    await store.close();
    throw err;
  };

  const metrics = new SidecarMetrics(store, () => upstream.healthy);
  const book = new SessionBook(store, logger, { seqRewritesPerSession: cfg.seqRewritesPerSession, seqRewritesMax: cfg.seqRewritesMax });
  const linker = new EventLinker(store, book, masker, logger);
  // Untagged calls are placed by session inference unless the caller brings its own placer.
  let inference: SessionInference | null = null;
  if (!opts.placer) {
    try {
      inference = await SessionInference.open({ config: cfg, dataDir: paths.root, sink: linker, logger, registry: metrics.registry });
    } catch (err) {
      return stopOnError(err);
    }
  }
  const placer: Placer = opts.placer ?? inference!;
  const recorder = new Recorder(store, book, linker, metrics, logger, inference);
  const switchboard = opts.switchboard ?? new PassThroughSwitchboard();
  const proxy = new Proxy({ config: cfg, upstream, recorder, placer, book, switchboard, metrics, logger });
  const control = new ControlRouter(token, logger);
  let initial = { turns: 0, nextStates: 0 };
  try {
    await linker.init();
    initial = { turns: await store.count("turns"), nextStates: await store.count("next_states") };
  } catch (err) {
    // A failing LanceDB must not keep traffic from flowing; counts start from what is known.
    logger.warn({ err: String(err) }, "could not read the store at start-up");
  }
  const detection = upstream.detect();
  await Promise.race([detection, new Promise((r) => setTimeout(r, opts.detectTimeoutMs ?? 3_000).unref())]);

  const server = http.createServer({ keepAlive: true, noDelay: true }, (req, res) => {
    const url = req.url ?? "/";
    if (url.startsWith(CONTROL_PREFIX)) {
      void control.handle(req, res);
    } else if (req.method === "GET" && (url === "/metrics" || url.startsWith("/metrics?"))) {
      metrics.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(text);
        })
        .catch((err: unknown) => {
          res.writeHead(500).end(String(err));
        });
    } else {
      // Model calls are what fill the malloc heap (from their start to their answer's end); the
      // control API's reads (a dashboard polls them) must not keep it from ever being quiet.
      trimmer.touch();
      res.once("close", trimmer.touch);
      proxy.handle(req, res);
    }
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // Uploads may be slow; the upstream's own limits apply. 0 disables Node's 5-minute request timeout.
  server.requestTimeout = 0;
  server.on("clientError", (err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    logger.debug({ err: err.message }, "client error");
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(cfg.port, cfg.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    return stopOnError(err);
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  const startedAt = new Date();
  mountControlApi(control, {
    store,
    linker,
    book,
    recorder,
    upstream,
    proxy,
    switchboard,
    metrics,
    initialCounts: () => initial,
    startedAt,
    url: () => url,
    version: packageVersion(),
    dataDir: paths.root,
  });
  const dashboard = mountDashboard(control, {
    store,
    dataDir: paths.root,
    adaptersDir: config.adapters.dir,
    upstream,
    metrics,
    startedAt,
    switchboardStatus: () => switchboard.status(),
    logger,
  });
  logger.info({ url, upstream: upstream.url, kind: upstream.kind, token: paths.token, data: paths.root }, "sidecar listening");

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      logger.info({ inflight: proxy.inflight }, "sidecar stopping");
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      dashboard.close();
      const grace = opts.shutdownTimeoutMs ?? 30_000;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([proxy.whenIdle(), new Promise<void>((r) => (timer = setTimeout(r, grace)))]);
      clearTimeout(timer);
      server.closeAllConnections();
      await closed;
      upstream.close();
      await inference?.close();
      book.close();
      await store.close();
      logger.info("sidecar stopped");
    })();
    return closing;
  };

  return { url, host: addr.address, port: addr.port, token, store, upstream, control, metrics, server, close };
}
