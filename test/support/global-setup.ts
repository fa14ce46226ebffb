// Runs once before the suite: fetches the real test model so no test races to download it.
import { ensureSmolLM2 } from "./model-fixture.js";

export default async function setup(): Promise<void> {
  const file = await ensureSmolLM2();
  process.env.CLAWLOOP_TEST_MODEL = file;
}
