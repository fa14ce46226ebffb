// Whether a process still runs, for the files that name the process holding something (the store's
// write lock, the trainer's and judge's status files, `up.json`, a build lock).

/**
 * Whether a process with this pid exists. EPERM counts as alive: it does, but belongs to another
 * user. Anything but a positive integer is not a process (kill(0) or kill(-n) would signal a whole
 * process group instead).
 */
export function processAlive(pid: unknown): boolean {
  if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
