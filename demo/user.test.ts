import { describe, expect, it } from "vitest";
import { RulesJudge } from "../judges/index.js";
import { listPersonas, loadPersona, parsePersona } from "./personas.js";
import { seededRandom, SimulatedUser } from "./user.js";

const persona = parsePersona({
  name: "terse",
  kind: "length",
  description: "wants it short",
  preference: "at most two sentences",
  check: { maxSentences: 2 },
  user: {
    corrections: ["Too long — two sentences at most, please.", "Way too long. Two sentences max."],
    thanks: ["Thanks!", "Perfect, thanks."],
    moveOn: ["Got it. {question}"],
    thanksRate: 0.5,
    turnsPerSession: 3,
  },
  prompts: ["q1?", "q2?", "q3?", "q4?"],
  heldOut: ["h1?", "h2?"],
});
const SHORT = "It is hot. It rises.";
const LONG = "It is hot. It rises. It erupts.";

describe("SimulatedUser", () => {
  it("corrects a reply that misses the preference, in words from the persona, varying them", () => {
    const user = new SimulatedUser(persona, 7);
    const a = user.react(LONG, 0);
    const b = user.react(LONG, 1);
    expect(a).toMatchObject({ kind: "correction", satisfied: false, continues: true });
    expect(persona.user.corrections).toContain(a.text);
    expect(b.text).not.toBe(a.text); // never the same correction twice in a row
    expect(a.check.failures).toEqual(["3 sentences (at most 2)"]);
  });

  it("thanks or moves on to the next question after a reply that meets it", () => {
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 20; seed++) {
      const user = new SimulatedUser(persona, seed);
      user.nextQuestion();
      const r = user.react(SHORT, 0);
      expect(r.satisfied).toBe(true);
      kinds.add(r.kind);
      if (r.kind === "move_on") expect(r).toMatchObject({ text: "Got it. q2?", continues: true });
      else expect(r).toMatchObject({ kind: "thanks", continues: false });
    }
    expect(kinds).toEqual(new Set(["thanks", "move_on"]));
  });

  it("ends the session at turnsPerSession, whatever the reply", () => {
    const user = new SimulatedUser(persona, 1);
    expect(user.react(SHORT, 2)).toMatchObject({ kind: "thanks", continues: false });
    expect(user.react(LONG, 2)).toMatchObject({ kind: "correction", continues: false });
  });

  it("asks the questions in order and cycles; the same seed is the same user", () => {
    const user = new SimulatedUser(persona, 3);
    expect(Array.from({ length: 6 }, () => user.nextQuestion())).toEqual(["q1?", "q2?", "q3?", "q4?", "q1?", "q2?"]);
    const run = (seed: number) => {
      const u = new SimulatedUser(persona, seed);
      return [LONG, SHORT, LONG, SHORT, SHORT].map((r, i) => u.react(r, i % 3).text);
    };
    expect(run(5)).toEqual(run(5));
    const r = seededRandom(9);
    const xs = Array.from({ length: 1000 }, r);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(Math.abs(xs.reduce((a, b) => a + b, 0) / xs.length - 0.5)).toBeLessThan(0.05);
  });

  it("every shipped persona's reactions are read by the rules judge as a real user's would be: corrections −1 with a hint, thanks and moving on +1", () => {
    const rules = new RulesJudge();
    for (const name of listPersonas()) {
      const p = loadPersona(name);
      for (const c of p.user.corrections) {
        const v = rules.userMessage(c, p.prompts[0]!);
        expect(v?.score, `${name}: ${c}`).toBe(-1);
        expect(v?.hint, `${name}: ${c}`).toBeTruthy();
      }
      for (const t of p.user.thanks) expect(rules.userMessage(t, p.prompts[0]!)?.score, `${name}: ${t}`).toBe(1);
      for (const m of p.user.moveOn) {
        const text = m.replace("{question}", p.prompts[1]!);
        expect(rules.userMessage(text, p.prompts[0]!)?.score, `${name}: ${text}`).toBe(1);
      }
    }
  });
});
