// Gives the memory glibc keeps back to the system once a process goes quiet.
//
// A burst of agent calls leaves a sidecar process's malloc heap full of freed request buffers that
// glibc cannot hand back: it returns only the free memory at the top of its heap, and a long-lived
// allocation above them pins the rest. bench:proxy measured ~70 MB of the proxy's ~150 MB RSS as
// such free memory after 10,000 OpenClaw-sized calls, even with a fixed mmap threshold (the
// launcher's settings, bin/clawloop.js); `malloc_trim(0)` returned all of it in well under a
// millisecond. Node has no binding for it, so it is called through koffi (a prebuilt FFI). Trimming
// while calls flow would only make the next ones fault the pages back in, so it waits for a quiet
// moment: no activity for a whole `quietMs`, and some since the last trim, or a full V8 collection
// (which frees the buffers the last calls left behind).
//
// Where glibc or koffi is missing (macOS, musl), the trimmer does nothing and says why once.
import perf, { PerformanceObserver } from "node:perf_hooks";
import { loadMallocTrim, type Logger } from "../core/index.js";

export interface MallocTrimmer {
  /** Marks activity (a request, a message): a trim waits for a quiet period after the last one. */
  touch(): void;
  /** Trims now; what RSS was before and after, or null when trimming is unavailable. */
  trimNow(): { rssBefore: number; rssAfter: number } | null;
  /** Why trimming is unavailable, or null when it works. */
  readonly unavailable: string | null;
  /** How many quiet-period trims ran. */
  readonly trims: number;
  stop(): void;
}

export interface MallocTrimmerOptions {
  /** How long a process must be quiet before it trims (ms). */
  quietMs?: number;
  logger?: Logger;
  /** The C library to call (tests name a missing one). */
  library?: string;
}

const DEFAULT_QUIET_MS = 1_000;
const FULL_GC = perf.constants.NODE_PERFORMANCE_GC_MAJOR | perf.constants.NODE_PERFORMANCE_GC_INCREMENTAL;

export function startMallocTrimmer(opts: MallocTrimmerOptions = {}): MallocTrimmer {
  const quietMs = opts.quietMs ?? DEFAULT_QUIET_MS;
  const loaded = loadMallocTrim(opts.library ?? "libc.so.6");
  const trim = typeof loaded === "string" ? null : loaded;
  const unavailable = typeof loaded === "string" ? loaded : null;
  if (unavailable) opts.logger?.debug({ reason: unavailable }, "malloc_trim is unavailable; memory freed by glibc stays with the process");

  // Activity is counted, not timed: touch() is on every request's path.
  let activity = 0;
  let seen = 0;
  let trimmedAt = 0;
  let trims = 0;
  // Buffers the last requests left are freed only when V8 collects them, which may be well after
  // the quiet trim (V8 collects an idle heap a few seconds on, to shrink it): a full collection
  // since the last trim is a reason to trim again.
  let fullGcs = 0;
  let trimmedGcs = 0;
  const gcs = trim
    ? new PerformanceObserver((list) => {
        for (const e of list.getEntries() as { detail?: { kind?: number } }[]) if ((e.detail?.kind ?? 0) & FULL_GC) fullGcs++;
      })
    : null;
  gcs?.observe({ entryTypes: ["gc"] });
  const trimNow = () => {
    if (!trim) return null;
    const rssBefore = process.memoryUsage.rss();
    trim(0);
    return { rssBefore, rssAfter: process.memoryUsage.rss() };
  };
  // A tick with no new activity since the last one is a quiet period.
  const timer = trim
    ? setInterval(() => {
        if (activity !== seen) {
          seen = activity;
          return;
        }
        if (activity === trimmedAt && fullGcs === trimmedGcs) return;
        trimmedAt = activity;
        trimmedGcs = fullGcs;
        trims++;
        const r = trimNow()!;
        opts.logger?.debug({ rssBeforeMb: Math.round(r.rssBefore / 2 ** 20), rssAfterMb: Math.round(r.rssAfter / 2 ** 20) }, "quiet: freed memory given back");
      }, quietMs).unref()
    : null;

  return {
    touch: () => void activity++,
    trimNow,
    unavailable,
    get trims() {
      return trims;
    },
    stop: () => {
      if (timer) clearInterval(timer);
      gcs?.disconnect();
    },
  };
}

let shared: MallocTrimmer | null = null;

/**
 * The process's one trimmer (malloc_trim is process-wide: every sidecar in it, and a store thread,
 * share it); the first caller's options apply.
 */
export function processMallocTrimmer(opts: Omit<MallocTrimmerOptions, "library"> = {}): MallocTrimmer {
  shared ??= startMallocTrimmer(opts);
  return shared;
}
