// Mounts the dashboard on the sidecar's control router: the page (`/clawloop/`), its files, and the
// read endpoints it uses (all JSON, all bounded, all behind the control token or the page's cookie):
//   GET /clawloop/v1/timeline            turns with next states, judgment and adapter, newest first
//                                        (?session, ?q text search, ?turns=id,id, ?since, ?before, ?limit)
//   GET /clawloop/v1/timeline/sessions   sessions of the recent turns (?limit)
//   GET /clawloop/v1/judgments           newest first (?since, ?before, ?limit)
//   GET /clawloop/v1/rewards             reward points and their rolling mean (?limit, ?window)
//   GET /clawloop/v1/train-steps         newest first (?since, ?before, ?limit)
//   GET /clawloop/v1/loops               serve, collect, judge, train: health, queues, last errors
//   GET /clawloop/v1/runs                demo runs' satisfaction summaries (?limit)
//   GET /clawloop/v1/updates             Server-Sent Events: which topics changed
import path from "node:path";
import { dataPaths, type Logger } from "../../core/index.js";
import type { SidecarMetrics } from "../metrics.js";
import { HttpError, type ControlRequest, type ControlRouter } from "../router.js";
import { Assets } from "./assets.js";
import { loopsView, type UpstreamView } from "./loops.js";
import { Pulse } from "./pulse.js";
import { recentJudgments, recentSessions, recentTrainSteps, rewardTrend, timeline } from "./queries.js";
import type { ReadStore } from "./recent.js";
import { listRuns } from "./runs.js";
import { DASHBOARD_PATH, redirectSignedIn, refuse } from "./signin.js";

export interface DashboardDeps {
  store: ReadStore;
  dataDir: string;
  /** Where adapter versions live (default `<data>/adapters`). */
  adaptersDir?: string | null;
  upstream: UpstreamView;
  metrics: SidecarMetrics;
  startedAt: Date;
  /** The switchboard's state, watched for changes of the live version. */
  switchboardStatus?: () => unknown;
  logger: Logger;
  /** Test seams. */
  assetsDir?: string;
  pulseIntervalMs?: number;
}

export interface Dashboard {
  pulse: Pulse;
  /** Ends the open event streams. */
  close(): void;
}

function intParam(c: ControlRequest, name: string, dflt: number, max: number): number {
  const raw = c.url.searchParams.get(name);
  if (raw === null || raw === "") return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new HttpError(400, `${name} must be a positive integer`);
  return Math.min(n, max);
}

function timeParam(c: ControlRequest, name: string): string | null {
  const raw = c.url.searchParams.get(name);
  if (raw === null || raw === "") return null;
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new HttpError(400, `${name} must be an ISO-8601 time`);
  return new Date(t).toISOString();
}

function textParam(c: ControlRequest, name: string, max: number): string | null {
  const raw = c.url.searchParams.get(name);
  if (raw === null || raw.trim() === "") return null;
  if (raw.length > max) throw new HttpError(400, `${name} is longer than ${max} characters`);
  return raw;
}

function idsParam(c: ControlRequest, name: string, max: number): string[] | null {
  const raw = c.url.searchParams.get(name);
  if (raw === null) return null;
  const ids = [...new Set(raw.split(",").map((s) => s.trim()).filter(Boolean))];
  if (ids.length > max) throw new HttpError(400, `at most ${max} ids in ${name}`);
  if (ids.some((id) => id.length > 512)) throw new HttpError(400, `an id in ${name} is longer than 512 characters`);
  return ids;
}

export function mountDashboard(router: ControlRouter, d: DashboardDeps): Dashboard {
  const paths = dataPaths(d.dataDir, d.adaptersDir);
  const assets = new Assets(d.assetsDir);
  const pulse = new Pulse({
    store: d.store,
    metrics: d.metrics,
    loopsDir: paths.loops,
    adaptersDir: paths.adapters,
    runsDir: paths.runs,
    trainPausedFile: paths.trainPaused,
    switchboardStatus: d.switchboardStatus,
    logger: d.logger,
    intervalMs: d.pulseIntervalMs,
  });

  // Counting a table the sidecar writes is cheap only when nothing waits to be flushed: count once
  // now, and add the turns recorded since (the metrics count those).
  let initialTurns: number | null = null;
  void d.store
    .count("turns")
    .then((n) => (initialTurns = n))
    .catch((err: unknown) => d.logger.warn({ err: String(err) }, "dashboard: could not count the turns"));

  router.add(
    "GET",
    DASHBOARD_PATH,
    (c) => {
      const token = c.url.searchParams.get("token");
      if (token !== null) {
        if (!router.isToken(token)) return refuse(c.res, "wrong");
        return redirectSignedIn(c.res, token);
      }
      if (!router.authorized(c.req)) return refuse(c.res, "missing");
      assets.send(c.req, c.res, "index.html", { "cache-control": "no-store" });
    },
    { auth: false },
  );

  router.add("GET", "/clawloop/assets/:file", (c) => {
    const name = c.params.file!;
    if (name === "index.html" || path.basename(name) !== name || !assets.send(c.req, c.res, name)) {
      throw new HttpError(404, `no dashboard asset ${name}`);
    }
  });

  router.add("GET", "/clawloop/v1/timeline", (c) =>
    timeline(d.store, {
      session: textParam(c, "session", 512),
      q: textParam(c, "q", 200),
      ids: idsParam(c, "turns", 200),
      since: timeParam(c, "since"),
      before: timeParam(c, "before"),
      limit: intParam(c, "limit", 50, 200),
    }),
  );

  router.add("GET", "/clawloop/v1/timeline/sessions", async (c) => ({
    sessions: await recentSessions(d.store, intParam(c, "limit", 30, 200)),
  }));

  router.add("GET", "/clawloop/v1/judgments", (c) =>
    recentJudgments(d.store, { since: timeParam(c, "since"), before: timeParam(c, "before"), limit: intParam(c, "limit", 100, 500) }),
  );

  router.add("GET", "/clawloop/v1/rewards", (c) => rewardTrend(d.store, intParam(c, "limit", 1000, 5000), intParam(c, "window", 20, 500)));

  router.add("GET", "/clawloop/v1/train-steps", (c) =>
    recentTrainSteps(d.store, { since: timeParam(c, "since"), before: timeParam(c, "before"), limit: intParam(c, "limit", 200, 1000) }),
  );

  router.add("GET", "/clawloop/v1/loops", () =>
    loopsView({ upstream: d.upstream, store: d.store, metrics: d.metrics, loopsDir: paths.loops, dataDir: d.dataDir, startedAt: d.startedAt, initialTurns: () => initialTurns }),
  );

  router.add("GET", "/clawloop/v1/runs", (c) => ({ runs: listRuns(paths.runs, intParam(c, "limit", 20, 200)) }));

  router.add("GET", "/clawloop/v1/updates", (c) => {
    pulse.attach(c.res);
  });

  return { pulse, close: () => pulse.close() };
}
