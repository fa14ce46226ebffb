import { describe, expect, it } from "vitest";
import { defaultEngineThreads } from "./threads.js";

describe("defaultEngineThreads", () => {
  it("gives the engine one thread beside the trainer on a machine of two cores or fewer", () => {
    expect(defaultEngineThreads(2, true, 0)).toBe(1);
    expect(defaultEngineThreads(1, true, 0)).toBe(1);
  });

  it("leaves the engine its own default on bigger machines or without the trainer", () => {
    expect(defaultEngineThreads(3, true, 0)).toBe(0);
    expect(defaultEngineThreads(16, true, 0)).toBe(0);
    expect(defaultEngineThreads(2, false, 0)).toBe(0);
    expect(defaultEngineThreads(1, false, 0)).toBe(0);
  });

  it("keeps what the user set (serve.threads)", () => {
    expect(defaultEngineThreads(2, true, 2)).toBe(2);
    expect(defaultEngineThreads(2, true, 1)).toBe(1);
    expect(defaultEngineThreads(16, true, 4)).toBe(4);
    expect(defaultEngineThreads(2, false, 3)).toBe(3);
  });
});
