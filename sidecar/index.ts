// sidecar: the transparent proxy that records every model call, the next-state events API, and
// the switchboard seam. Other folders import only this file.
export { startSidecar, type SidecarHandle, type SidecarOptions } from "./sidecar.js";
export { ControlRouter, HttpError, sendJson, CONTROL_PREFIX, type ControlHandler, type ControlRequest } from "./router.js";
export { PassThroughSwitchboard, type Route, type Switchboard, type SwitchboardStatus } from "./switchboard.js";
export { TagPlacer, type Placer, type Placement, type PlacementInput } from "./placement.js";
export { readTags, runIdOfCall, OPENCLAW_RL_BODY_KEYS, type Tags } from "./tagging.js";
export { Upstream, type UpstreamHealth, type UpstreamOptions } from "./upstream.js";
export { SecretMasker } from "./privacy.js";
export { SidecarMetrics } from "./metrics.js";
export { openRecordStore, InlineRecordStore, RemoteRecordStore, type RecordStore, type RecordStoreOptions, type StoreHost } from "./record-store.js";
export { type TurnRef } from "./turns.js";
export { mountDashboard, dashboardLink, DASHBOARD_PATH, latestRows, type Dashboard, type DashboardDeps, type ReadStore } from "./dashboard/index.js";
export { latestFields, type FieldsStore } from "./latest-fields.js";
export {
  startHotloadingSidecar,
  HotloadSwitchboard,
  AdapterApiError,
  type HotloadSidecarHandle,
  type HotloadSidecarOptions,
  type HotloadStatus,
  type RollbackReport,
  type CheckReport,
} from "./hotload/index.js";
