// Fault injection for the resume tests: `CLAWLOOP_TRAIN_CRASH_AT=<point>[:<n>]` makes the process
// SIGKILL itself the n-th time (default 1st) it reaches <point>, so a test can stop a real train
// loop at an exact place (mid-step, just before or just after a version's rename) and check that
// a restart reuses no sample and skips none. Unset, it costs one property read.

export type CrashPoint = "step-start" | "before-version" | "after-version" | "prune-recorded" | "prune-renamed";

const reached = new Map<string, number>();

export function crashPoint(point: CrashPoint): void {
  const spec = process.env.CLAWLOOP_TRAIN_CRASH_AT;
  if (!spec) return;
  const [name, nth] = spec.split(":");
  if (name !== point) return;
  const count = (reached.get(point) ?? 0) + 1;
  reached.set(point, count);
  if (count === Number(nth ?? 1)) process.kill(process.pid, "SIGKILL");
}
