// What bin/clawloop.js's shell line leaves in the environment of `clawloop sidecar` and `clawloop up`:
// glibc malloc settings (fewer arenas, a fixed 64 KB mmap threshold, trimming past 128 KB), good for
// a proxy whose garbage is many small request buffers, and the names of those it set itself (not
// the user's) in CLAWLOOP_MALLOC_SET_BY_LAUNCHER.

/** Comma-separated names of the malloc variables the launcher set (it always writes it, "" if none). */
export const MALLOC_SET_BY_LAUNCHER_ENV = "CLAWLOOP_MALLOC_SET_BY_LAUNCHER";
/** The variables the launcher may set; only these are ever removed. */
export const LAUNCHER_MALLOC_VARS = ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"] as const;

/**
 * `env` without the malloc settings the launcher added (and without its list of them), for a child
 * that should start with glibc's own: the trainer, whose large training buffers would otherwise be
 * mapped and unmapped on every step. The user's own settings, and everything else, pass through.
 */
export function withoutLauncherMalloc(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const set = new Set((env[MALLOC_SET_BY_LAUNCHER_ENV] ?? "").split(",").map((s) => s.trim()));
  const out: NodeJS.ProcessEnv = { ...env };
  delete out[MALLOC_SET_BY_LAUNCHER_ENV];
  for (const name of LAUNCHER_MALLOC_VARS) if (set.has(name)) delete out[name];
  return out;
}
