// The dashboard: a page on the sidecar (`/clawloop/`) to watch the agent learn, and the bounded
// read endpoints it uses. The sidecar mounts it; `clawloop dashboard` and `clawloop up` print
// `dashboardLink(url, token)`.
export { mountDashboard, type Dashboard, type DashboardDeps } from "./mount.js";
export { dashboardLink, DASHBOARD_PATH } from "./signin.js";
export { latestRows, type ReadStore, type LatestQuery, type LatestResult } from "./recent.js";
export type { TimelineTurn, SessionSummary, RewardTrend } from "./queries.js";
export type { LoopsView, LoopFile, LoopState } from "./loops.js";
export { runSummarySchema, type RunSummary, type RunEntry } from "./runs.js";
