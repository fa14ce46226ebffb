// The OpenClaw installer: wires an OpenClaw installation to clawloop (`clawloop openclaw …`).
export {
  installOpenClaw,
  uninstallOpenClaw,
  openclawStatus,
  readInstallRecord,
  InstallerError,
  type InstallerOptions,
  type InstallRecord,
  type InstallResult,
  type UninstallResult,
  type OpenClawStatus,
} from "./installer.js";
export { planInstall, applyInstall, revertInstall, modelRefsOf, InstallRefusal, PLUGIN_ID, PROVIDER_ID, type InstallPlan } from "./plan.js";
export { openclawPaths, readConfigFile, formatConfig, OpenClawConfigError, type OpenClawPaths } from "./openclaw-config.js";
export { findOpenClawCli, type OpenClawCli, type CliResult } from "./openclaw-cli.js";
