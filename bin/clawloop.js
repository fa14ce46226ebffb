#!/bin/sh
":" //; if [ "$1" = sidecar ]; then export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX-2}" MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_-65536}" MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_-131072}"; fi; exec node "$0" "$@"
// The line above is for the shell, which runs this file when it is executed (`clawloop …`); to
// JavaScript it is a string and a comment. glibc reads its malloc settings only from the
// environment, at start-up, so a long-running `clawloop sidecar` gets them here, in the process
// that then becomes Node (exec: no extra process); settings the user gave are kept. Measured with
// bench:proxy (10,000 OpenClaw-sized calls): without them, request buffers freed under load stay in
// glibc's fragmented main heap (~60 MB of the proxy's RSS) and LanceDB's threads each get arenas of
// their own. The store child process gets the same (sidecar/record-store.ts).
// The CLI is compiled to dist/ by `npm install` (the `prepare` script).
import { run } from "../dist/cli/entry.js";

run(process.argv).catch((err) => {
  process.stderr.write(`clawloop: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
