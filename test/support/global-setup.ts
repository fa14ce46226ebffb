// Runs once before the suite: fetches the real test model and builds the real llama-server (once
// per machine, cached in .cache/llama-server/), so no test races to do either, and the build does
// not run alongside other tests (where it would slow them past their timeouts).
import { BUILD_ERROR_ENV, ensureLlamaServer } from "./llama-server.js";
import { ensureSmolLM2 } from "./model-fixture.js";

export default async function setup(): Promise<void> {
  const file = await ensureSmolLM2();
  process.env.CLAWLOOP_TEST_MODEL = file;
  try {
    await ensureLlamaServer();
  } catch (err) {
    // The tests that need llama-server fail with this reason (never skip); the others still run.
    process.env[BUILD_ERROR_ENV] = (err as Error).message;
    console.error(`llama-server for the tests: ${(err as Error).message}`);
  }
}
