// A CPU profile of any process that loads this module (`NODE_OPTIONS=--import <this file>`), written
// as `<CLAWLOOP_BENCH_PROFILE_DIR>/<name>-<pid>.cpuprofile` when the process exits. Node 20 refuses
// `--cpu-prof` in NODE_OPTIONS, and the sidecar is started through its shell launcher and forks its
// store process with its own flags, so an inherited `--import` is the way to reach both.
import fs from "node:fs";
import { Session } from "node:inspector";
import path from "node:path";

const dir = process.env.CLAWLOOP_BENCH_PROFILE_DIR;
// The store process is forked with its data in this variable (sidecar/record-store.ts STORE_DATA_ENV;
// not imported, so that profiling does not load the sidecar's modules ahead of the process itself).
const role = process.env.CLAWLOOP_SIDECAR_STORE_DATA ? "store" : "sidecar";
if (dir) {
  const session = new Session();
  session.connect();
  // Same-thread inspector sessions answer synchronously, so the profile can be taken in "exit".
  session.post("Profiler.enable");
  session.post("Profiler.start");
  process.once("exit", () => {
    session.post("Profiler.stop", (err, res) => {
      if (err || !res) return;
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `${role}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
