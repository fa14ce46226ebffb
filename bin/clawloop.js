#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm install` (the `prepare` script).
import { run } from "../dist/cli/entry.js";

run(process.argv).catch((err) => {
  process.stderr.write(`clawloop: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
