// Hot-loading: the switchboard that routes calls to the live adapter version, the watcher that
// feeds it new versions, and the adapters control API, wrapped around a sidecar.
//
// The switchboard records versions through the sidecar's store host, which then writes the
// `adapters` table too (one writer per table), so the proxy's process never opens LanceDB itself.
import { createDriver, type AdapterDriver } from "../../adapters/index.js";
import { createLogger, dataPaths, type Config } from "../../core/index.js";
import { openSidecarStore, startSidecar, type SidecarHandle, type SidecarOptions } from "../sidecar.js";
import type { Upstream } from "../upstream.js";
import { mountAdapterApi } from "./api.js";
import { HotloadSwitchboard } from "./switchboard.js";
import { VersionWatcher } from "./watcher.js";

export { HotloadSwitchboard, AdapterApiError, type AdapterTable, type HotloadOptions, type HotloadStatus, type CheckReport, type RollbackReport } from "./switchboard.js";
export { VersionWatcher } from "./watcher.js";
export { mountAdapterApi } from "./api.js";

export interface HotloadSidecarOptions extends SidecarOptions {
  /** A driver to use instead of the one for the upstream's kind (tests). */
  adapterDriver?: AdapterDriver;
}

export interface HotloadSidecarHandle extends SidecarHandle {
  /** Null when adapters.hotload is off. */
  hotload: HotloadSwitchboard | null;
}

/** The driver for the upstream, once its kind is known (detection may still be under way). */
function lazyDriver(config: Config, upstream: () => Upstream | null): () => AdapterDriver | null {
  let driver: AdapterDriver | null = null;
  return () => {
    if (driver) return driver;
    const up = upstream();
    const kind = up?.kind;
    if (!up || !kind) return null;
    const a = config.adapters;
    driver = createDriver(kind, { url: up.url, apiKey: config.sidecar.upstreamApiKey, baseModel: a.baseModel, loadTimeoutMs: a.loadTimeoutSec * 1000 });
    return driver;
  };
}

/**
 * Starts a sidecar whose switchboard hot-loads adapter versions from `<data>/adapters` (unless
 * `adapters.hotload` is off or the caller brings its own switchboard). Used by `clawloop sidecar`
 * and `clawloop up`.
 */
export async function startHotloadingSidecar(config: Config, opts: HotloadSidecarOptions = {}): Promise<HotloadSidecarHandle> {
  if (!config.adapters.hotload || opts.switchboard) return { ...(await startSidecar(config, opts)), hotload: null };
  const logger = opts.logger ?? createLogger("sidecar", config.logLevel);
  const adaptersDir = dataPaths(config.dataDir, config.adapters.dir).adapters;
  const store = opts.recordStore ?? (await openSidecarStore(config, opts, logger, true));
  let handle: SidecarHandle | null = null;
  const board = new HotloadSwitchboard({
    adaptersDir,
    store,
    driver: opts.adapterDriver ?? lazyDriver(config, () => handle?.upstream ?? null),
    keepLoaded: config.adapters.keepLoaded,
    check: config.adapters.probe,
    retryMs: config.adapters.retrySec * 1000,
    logger,
  });
  const watcher = new VersionWatcher(adaptersDir, () => board.kick());
  try {
    // The sidecar closes the store when it stops.
    handle = await startSidecar(config, { ...opts, logger, switchboard: board, recordStore: store });
  } catch (err) {
    await store.close();
    throw err;
  }
  mountAdapterApi(handle.control, board);
  await board.start();
  await watcher.start();
  // A version that landed between the first scan and the watcher's start.
  board.kick();
  const closeSidecar = handle.close;
  let closing: Promise<void> | null = null;
  return {
    ...handle,
    hotload: board,
    close: () =>
      (closing ??= (async () => {
        // The switchboard first: it may still record a version while it stops; the store goes with the sidecar.
        await watcher.close();
        await board.close();
        await closeSidecar();
      })()),
  };
}
