import { describe, expect, it } from "vitest";
import { decideBatch, ReadyClock } from "./batching.js";

const policy = { batchSize: 3, maxWaitMs: 1000 };

describe("decideBatch", () => {
  it("steps as soon as B samples are ready, taking the first B in order", () => {
    const d = decideBatch(["a", "b", "c", "d"], () => 0, 10, policy);
    expect(d.batch).toEqual(["a", "b", "c"]);
  });

  it("holds a partial batch until the oldest has waited T, then runs it", () => {
    const seen: Record<string, number> = { a: 100, b: 500 };
    const early = decideBatch(["a", "b"], (x) => seen[x]!, 600, policy);
    expect(early).toEqual({ batch: null, dueInMs: 500 });
    expect(decideBatch(["a", "b"], (x) => seen[x]!, 1100, policy).batch).toEqual(["a", "b"]);
  });

  it("with T = 0 a single sample steps at once; nothing ready is nothing due", () => {
    expect(decideBatch(["a"], () => 5, 5, { batchSize: 4, maxWaitMs: 0 }).batch).toEqual(["a"]);
    expect(decideBatch([], () => 0, 5, policy)).toEqual({ batch: null, dueInMs: null });
  });
});

describe("ReadyClock", () => {
  it("keeps the first time an id was seen and forgets ids no longer ready", () => {
    const c = new ReadyClock();
    c.observe(["a"], 1);
    c.observe(["a", "b"], 2);
    expect([c.firstSeen("a"), c.firstSeen("b")]).toEqual([1, 2]);
    c.observe(["b"], 3);
    c.observe(["a", "b"], 4);
    expect([c.firstSeen("a"), c.firstSeen("b")]).toEqual([4, 2]);
  });
});
