// Execution providers: asking for a GPU provider on a machine without one falls back to CPU with
// a clear message, and the engine still computes.
import { describe, expect, it } from "vitest";
import { Engine } from "./engine.js";
import { Runtime } from "./runtime.js";
import { syntheticWeights, tinyConfig } from "./testing/synthetic.js";

describe("execution providers", () => {
  // This machine has no CUDA provider installed and no GPU adapter for WebGPU; DirectML exists on
  // Windows only. Each request must end up on CPU, saying why.
  for (const ep of ["cuda", "webgpu", "dml"] as const) {
    it(`falls back from ${ep} to CPU with a message`, async () => {
      const messages: string[] = [];
      const engine = await Engine.create({
        model: { weights: syntheticWeights(tinyConfig(), 1) },
        lora: { rank: 2, alpha: 4, targets: ["q", "v"] },
        executionProvider: ep,
        threads: 1,
        onFallback: (m) => messages.push(m),
      });
      try {
        const [lp] = await engine.score([{ promptIds: [1, 2, 3], responseIds: [4, 5] }], engine.newAdapter(0));
        expect(lp).toHaveLength(2);
        expect(lp!.every(Number.isFinite)).toBe(true);
        expect(engine.executionProvider).toBe("cpu");
        expect(engine.runtime.requested).toBe(ep);
        expect(engine.runtime.fallbackReason).toBeTruthy();
        expect(messages).toHaveLength(1);
        expect(messages[0]).toMatch(new RegExp(`execution provider "${ep}" is unavailable \\(.+\\); falling back to CPU`));
      } finally {
        engine.close();
      }
    });
  }

  it("uses CPU without a message when CPU is asked for", async () => {
    const messages: string[] = [];
    const rt = new Runtime({ executionProvider: "cpu", onFallback: (m) => messages.push(m) });
    expect(rt.provider).toBe("cpu");
    expect(messages).toEqual([]);
  });

  it("rejects an unknown provider name", () => {
    // @ts-expect-error a provider name the type does not allow, as from an untyped config file
    expect(() => new Runtime({ executionProvider: "tpu" })).toThrow(/unknown execution provider "tpu"/);
  });
});
