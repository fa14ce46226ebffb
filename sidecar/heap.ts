// The proxy's V8 heap. A sidecar's live data is small (~20 MB after 10,000 recorded calls), but an
// agent's ~40 KB prompt crosses it several times per call (body, parsed request, body for the
// upstream, message to the store), and V8 by default lets the old generation grow up to 4× between
// full collections: bench:proxy measured a ~90 MB heap and ~50 MB of freed-but-kept request buffers
// after 10,000 OpenClaw-sized calls. Growing it by 2× at most kept the proxy at ~150 MB instead of
// ~205 MB RSS, for a CPU cost per call within the measurement's noise (a few percent at most).
//
// Node passes V8 flags on its command line (or NODE_OPTIONS), which a user-started `clawloop
// sidecar` does not control; this flag is read at every full collection, so setting it once the
// process runs takes effect from the next one. (Node keeps V8's flags writable after start-up for
// `v8.setFlagsFromString`.) A growth factor the user gave explicitly is left alone.
import v8 from "node:v8";
import type { Logger } from "../core/index.js";

export const HEAP_GROWING_PERCENT = 100;

let tuned = false;

/** Sets the proxy process's heap growth once (it is process-wide: a store thread shares it). */
export function tuneHeap(logger?: Logger): void {
  if (tuned) return;
  tuned = true;
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ""].some((a) => /heap[-_]growing[-_]percent/.test(a));
  if (given) return;
  try {
    v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  } catch (err) {
    logger?.debug({ err: String(err) }, "could not set the heap growth factor; V8's default applies");
  }
}
