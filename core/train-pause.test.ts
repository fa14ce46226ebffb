import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dataPaths } from "./paths.js";
import { pauseTraining, readTrainPause, resumeTraining } from "./train-pause.js";

let dataDir: string;
beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-pause-"));
});
afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

describe("the training pause flag", () => {
  it("is set once, read back, and cleared; pausing again keeps the first pause", () => {
    expect(readTrainPause(dataDir)).toBe(null);
    const first = pauseTraining(dataDir, "cli", "lunch");
    expect(first).toEqual({ since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), by: "cli", reason: "lunch" });
    expect(fs.existsSync(dataPaths(dataDir).trainPaused)).toBe(true);
    expect(pauseTraining(dataDir, "api", "other")).toEqual(first);
    expect(readTrainPause(dataDir)).toEqual(first);
    // No temporary files left next to it.
    expect(fs.readdirSync(dataDir)).toEqual(["train.paused"]);
    expect(resumeTraining(dataDir)).toEqual(first);
    expect(readTrainPause(dataDir)).toBe(null);
    expect(resumeTraining(dataDir)).toBe(null);
  });

  it("a flag file that is not JSON still means paused (when in doubt, do not train)", () => {
    fs.writeFileSync(dataPaths(dataDir).trainPaused, "");
    expect(readTrainPause(dataDir)).toEqual({ since: "", by: "unknown", reason: null });
    expect(resumeTraining(dataDir)).not.toBe(null);
    expect(readTrainPause(dataDir)).toBe(null);
  });

  it("creates the data directory when it does not exist yet", () => {
    const fresh = path.join(dataDir, "new", "home");
    expect(pauseTraining(fresh, "cli").by).toBe("cli");
    expect(readTrainPause(fresh)?.reason).toBe(null);
  });
});
