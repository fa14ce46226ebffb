// A train loop in its own process on the stand-in backend, for the crash/resume tests
// (trainer/loop.test.ts). Configured by the usual CLAWLOOP_* environment; STEP_DELAY_MS slows
// each step so a test can kill the process mid-step. Stops cleanly on SIGTERM.
import { loadConfig, silentLogger } from "../../core/index.js";
import { startTrainLoop } from "../loop.js";
import { fakeBackend } from "./fake-backend.js";

const config = loadConfig();
const loop = await startTrainLoop(config, {
  backend: fakeBackend({ stepDelayMs: Number(process.env.STEP_DELAY_MS ?? 0) }),
  model: "/models/fake.gguf",
  logger: silentLogger,
});
process.on("SIGTERM", () => {
  void loop.stop().then(() => process.exit(0));
});
