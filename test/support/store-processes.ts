// The sidecar's store host processes, found through /proc (Linux, as in CI).
import fs from "node:fs";

/** The store-worker processes among `pid`'s children (none when `pid` is gone). */
export function storeChildren(pid = process.pid): number[] {
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tasks
    .flatMap((t) => {
      try {
        return fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
      } catch {
        return [];
      }
    })
    .map(Number)
    .filter((child) => {
      try {
        return fs.readFileSync(`/proc/${child}/cmdline`, "utf8").includes("store-worker");
      } catch {
        return false;
      }
    });
}
