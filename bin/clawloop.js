#!/bin/sh
":" //; case "$1" in sidecar|up) s=; [ "${MALLOC_ARENA_MAX+x}" ] || { export MALLOC_ARENA_MAX=2; s=$s,MALLOC_ARENA_MAX; }; [ "${MALLOC_MMAP_THRESHOLD_+x}" ] || { export MALLOC_MMAP_THRESHOLD_=65536; s=$s,MALLOC_MMAP_THRESHOLD_; }; [ "${MALLOC_TRIM_THRESHOLD_+x}" ] || { export MALLOC_TRIM_THRESHOLD_=131072; s=$s,MALLOC_TRIM_THRESHOLD_; }; export CLAWLOOP_MALLOC_SET_BY_LAUNCHER="${s#,}";; esac; exec node "$0" "$@"
// The line above is for the shell, which runs this file when it is executed (`clawloop …`); to
// JavaScript it is a string and a comment. glibc reads its malloc settings only from the
// environment, at start-up, so the long-running `clawloop sidecar` and `clawloop up` get them here,
// in the process that then becomes Node (exec: no extra process); settings the user gave are kept.
// Measured with bench:proxy (10,000 OpenClaw-sized calls): without them, request buffers freed
// under load stay in glibc's fragmented main heap (~60 MB of the proxy's RSS) and LanceDB's threads
// each get arenas of their own; `up` (engine + sidecar) measured 25–60 MB less (README). The store
// child process gets the same (sidecar/record-store.ts). CLAWLOOP_MALLOC_SET_BY_LAUNCHER names the
// ones set here (not the user's), so that `up` can leave them out of its trainer child's
// environment, where a fixed 64 KB mmap threshold would map and unmap its large training buffers on
// every step (cli/launcher-env.ts).
// The CLI is compiled to dist/ by `npm install` (the `prepare` script).
import { run } from "../dist/cli/entry.js";

run(process.argv).catch((err) => {
  process.stderr.write(`clawloop: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
