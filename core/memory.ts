// Handing freed memory back to the system, for long-lived processes that free a lot at once: the
// sidecar after a burst of calls (sidecar/malloc-trim.ts), the trainer when it lets its base model
// go while idle (trainer/loop.ts).
//
// glibc returns only the free memory at the top of its heap; `malloc_trim(0)` returns the rest.
// Node has no binding for it, so it is called through koffi (a prebuilt FFI). Where glibc or koffi
// is missing (macOS, musl) there is nothing to call, and the reason says why.
import { createRequire } from "node:module";
import v8 from "node:v8";
import vm from "node:vm";

/** `malloc_trim` from the C library, or why it cannot be had. */
export function loadMallocTrim(library = "libc.so.6"): ((pad: number) => number) | string {
  if (process.platform !== "linux") return `not on Linux (${process.platform})`;
  try {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
    return koffi.load(library).func("int malloc_trim(size_t pad)") as (pad: number) => number;
  } catch (err) {
    return `${library}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

let fullGc: (() => void) | null = null;

/**
 * A full V8 collection now. Large typed arrays dropped by their owner (a model's weights) are
 * freed only when V8 collects them, and an idle process may not collect for hours. Without
 * `--expose-gc` on the command line the flag is set at run time and `gc` taken from a fresh
 * context (the flag applies to contexts created after it is set).
 */
function collectGarbage(): void {
  if (!fullGc) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) fullGc = exposed;
    else {
      v8.setFlagsFromString("--expose-gc");
      fullGc = vm.runInNewContext("gc") as () => void;
    }
  }
  fullGc();
}

let trim: ((pad: number) => number) | string | null = null;

export interface MemoryReturned {
  rssBefore: number;
  rssAfter: number;
  /** Why malloc_trim could not run (the collection still did), or null. */
  trimUnavailable: string | null;
}

/**
 * After dropping the last references to something big: a full collection (its buffers freed),
 * then malloc_trim (the freed memory handed back). For rare moments (a model let go), not per
 * request: the collection costs milliseconds on a small heap.
 */
export function giveMemoryBack(): MemoryReturned {
  const rssBefore = process.memoryUsage.rss();
  collectGarbage();
  trim ??= loadMallocTrim();
  if (typeof trim !== "string") trim(0);
  return { rssBefore, rssAfter: process.memoryUsage.rss(), trimUnavailable: typeof trim === "string" ? trim : null };
}

/**
 * `giveMemoryBack`, then again after the objects' finalizers have had their turn: native wrappers
 * (ONNX Runtime's sessions and tensors) let go of the JavaScript buffers they hold only in a
 * finalizer that runs after the collection that found them unreachable, so those buffers are
 * freed by a later one. (Seen: a trainer letting its model go kept its ~600 MB of weights in
 * some runs after one collection.)
 */
export async function giveMemoryBackSettled(rounds = 3, pauseMs = 100): Promise<MemoryReturned> {
  const first = giveMemoryBack();
  let last = first;
  for (let i = 1; i < rounds; i++) {
    await new Promise((r) => setTimeout(r, pauseMs));
    last = giveMemoryBack();
  }
  return { ...last, rssBefore: first.rssBefore };
}
