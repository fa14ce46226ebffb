import { describe, expect, it } from "vitest";
import { DEFAULT_SAMPLING, StopMatcher, samplerConfig } from "./generate.js";

describe("StopMatcher", () => {
  it("finds a stop string split across pieces and holds back what could start one", () => {
    const m = new StopMatcher(["END", "\n\n"], false);
    expect(m.push("hello E")).toEqual({ text: "hello ", stop: null });
    expect(m.push("N")).toEqual({ text: "", stop: null });
    expect(m.push("Dless")).toEqual({ text: "", stop: "END" });
  });

  it("releases held text when it does not become a stop string, and flushes the rest", () => {
    const m = new StopMatcher(["END"], false);
    expect(m.push("E")).toEqual({ text: "", stop: null });
    expect(m.push("X")).toEqual({ text: "EX", stop: null });
    expect(m.push("EN")).toEqual({ text: "", stop: null });
    expect(m.flush()).toBe("EN");
  });

  it("picks the earliest stop, and can keep it in the output", () => {
    expect(new StopMatcher(["b", "a"], false).push("xab")).toEqual({ text: "x", stop: "a" });
    expect(new StopMatcher(["ab"], true).push("xaby")).toEqual({ text: "xab", stop: "ab" });
    expect(new StopMatcher([], false).push("anything")).toEqual({ text: "anything", stop: null });
  });
});

describe("samplerConfig", () => {
  it("leaves out filters that would not filter, and maps greedy and penalties", () => {
    const raw = samplerConfig({ ...DEFAULT_SAMPLING, seed: 5 });
    expect(raw).toEqual({ temperature: 1, seed: 5 });
    const greedy = samplerConfig({ ...DEFAULT_SAMPLING, temperature: 0, topK: 40, seed: 1 });
    expect(greedy).toEqual({ temperature: 0, seed: 1 });
    const full = samplerConfig({ ...DEFAULT_SAMPLING, temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, seed: 2, frequencyPenalty: 0.5, penaltyLastN: 32, logitBias: new Map([[7, -100]]) });
    expect(full).toMatchObject({ temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repeatPenalty: 1, repeatPenaltyMaxTokens: 32, repeatPenaltyFrequencyPenalty: 0.5 });
    expect(Array.from(full.tokenBiasKeys!)).toEqual([7]);
    expect(Array.from(full.tokenBiasValues!)).toEqual([-100]);
  });

  it("draws a fresh seed when none is given", () => {
    const seeds = new Set(Array.from({ length: 20 }, () => samplerConfig(DEFAULT_SAMPLING).seed));
    expect(seeds.size).toBeGreaterThan(15);
  });
});
