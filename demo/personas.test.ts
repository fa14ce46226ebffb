import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkReply } from "./check.js";
import { listPersonas, loadPersona, parsePersona, PersonaError, type PersonaInput } from "./personas.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-personas-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const minimal = (): PersonaInput => ({
  name: "terse",
  kind: "length",
  description: "wants it short",
  preference: "at most ten words",
  check: { maxWords: 10 },
  user: { corrections: ["Too long — ten words at most, please."], thanks: ["Thanks!"], moveOn: ["Ok. {question}"] },
  prompts: ["a?", "b?", "c?", "d?"],
  heldOut: ["e?", "f?"],
});

describe("shipped personas", () => {
  it("at least three, of different kinds, each valid and named like its file", () => {
    const names = listPersonas();
    expect(names.length).toBeGreaterThanOrEqual(3);
    const personas = names.map((n) => loadPersona(n));
    expect(new Set(personas.map((p) => p.kind)).size).toBeGreaterThanOrEqual(3);
    for (const p of personas) {
      expect(p.name).toBe(names[personas.indexOf(p)]);
      // Enough questions for a 64-interaction run without repeating, and a real held-out set.
      expect(p.prompts.length).toBeGreaterThanOrEqual(40);
      expect(p.heldOut.length).toBeGreaterThanOrEqual(8);
    }
  });

  it("their checks tell a reply that meets the preference from one that misses it", () => {
    const concise = loadPersona("concise");
    expect(checkReply(concise.check, "Hot magma rises through cracks. It erupts at the surface.").ok).toBe(true);
    expect(checkReply(concise.check, "Magma rises. It collects. Then it erupts.").ok).toBe(false);
    const plain = loadPersona("plain-text");
    expect(checkReply(plain.check, "Sleep at the same time each night, and keep the room dark and cool.").ok).toBe(true);
    for (const md of ["Tips:\n- Sleep early", "1. Sleep early", "## Sleep", "Sleep **early**.", "Run `sleep`"]) expect(checkReply(plain.check, md).ok, md).toBe(false);
    const curious = loadPersona("curious");
    expect(checkReply(curious.check, "Start with short trails. What kind of scenery do you like?").ok).toBe(true);
    expect(checkReply(curious.check, 'Start small. Which trail sounds fun?"').ok).toBe(true);
    expect(checkReply(curious.check, "Start with short trails? Then go longer.").ok).toBe(false);
  });
});

describe("persona files", () => {
  it("defaults fill what a file leaves out", () => {
    const p = parsePersona(minimal());
    expect(p.system).toBe("You are a helpful assistant.");
    expect(p.user).toMatchObject({ thanksRate: 0.3, turnsPerSession: 3 });
    expect(p.sampling).toEqual({ temperature: 0.7, topP: 1, maxTokens: 160 });
    expect(p.eval).toEqual({ samplesPerPrompt: 4, seed: 1234 });
    expect(p.settings).toEqual({});
  });

  it("a bad persona is refused with every problem, by path", () => {
    const bad = { ...minimal(), name: "Bad Name", kind: "mood", check: {}, user: { corrections: [], thanks: ["x"], moveOn: ["no placeholder"] }, prompts: ["a"] };
    let err: unknown;
    try {
      parsePersona(bad, "bad.json");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PersonaError);
    const msg = (err as Error).message;
    expect(msg).toContain("bad.json is not a valid persona");
    for (const where of ["name:", "kind:", "check:", "user.corrections:", "user.moveOn.0: must contain {question}", "prompts:"]) expect(msg).toContain(where);
  });

  it("held-out questions must never be asked; regexes must compile; settings must be valid config", () => {
    expect(() => parsePersona({ ...minimal(), heldOut: ["A?", "f?"] })).toThrow(/heldOut\[0\]: also in prompts/);
    expect(() => parsePersona({ ...minimal(), check: { mustMatch: ["(unclosed"] } })).toThrow(/check\.mustMatch\[0\]:/);
    expect(() => parsePersona({ ...minimal(), settings: { train: { lr: -1 } } })).toThrow(/settings\.train\.lr/);
    expect(parsePersona({ ...minimal(), settings: { train: { lr: 1e-3 } } }).settings).toEqual({ train: { lr: 1e-3 } });
  });

  it("loads by name from a directory or by path; unknown names list the shipped ones; bad JSON says where", () => {
    fs.writeFileSync(path.join(tmp, "terse.json"), JSON.stringify(minimal()));
    expect(loadPersona("terse", tmp).name).toBe("terse");
    expect(loadPersona(path.join(tmp, "terse.json")).name).toBe("terse");
    expect(() => loadPersona("nobody", tmp)).toThrow(/no persona "nobody"; shipped: terse/);
    fs.writeFileSync(path.join(tmp, "other.json"), JSON.stringify(minimal()));
    expect(() => loadPersona("other", tmp)).toThrow(/name "terse" does not match the file name/);
    fs.writeFileSync(path.join(tmp, "broken.json"), "{ not json");
    expect(() => loadPersona("broken", tmp)).toThrow(/broken\.json is not valid JSON/);
    expect(() => loadPersona(path.join(tmp, "missing.json"))).toThrow(/no persona file/);
  });
});
