// The simulated user: asks the persona's questions, reads each reply, and reacts the way people
// do — a correction in its own words when the reply misses the preference, thanks or the next
// question when it meets it. Deterministic for a seed, so runs can be compared.
import { checkReply, type CheckResult } from "./check.js";
import type { Persona } from "./personas.js";

/** A small seeded generator (mulberry32): the same seed gives the same user. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type ReactionKind = "correction" | "thanks" | "move_on";

export interface Reaction {
  kind: ReactionKind;
  /** What the user says next (the next state of the reply). */
  text: string;
  /** Whether the reply met the preference. */
  satisfied: boolean;
  check: CheckResult;
  /** The session goes on with `text` as the next user message; false: the session ends after it. */
  continues: boolean;
}

export class SimulatedUser {
  private readonly random: () => number;
  private asked = 0;
  private last = new Map<ReactionKind, string>();

  constructor(
    readonly persona: Persona,
    seed = 1,
  ) {
    this.random = seededRandom(seed);
  }

  /** The next question, in the persona's order, cycling when the run is longer than the list. */
  nextQuestion(): string {
    const q = this.persona.prompts[this.asked % this.persona.prompts.length]!;
    this.asked++;
    return q;
  }

  /** Questions asked so far. */
  get questionsAsked(): number {
    return this.asked;
  }

  /** A phrase from the list, not the one used last time for this kind (people vary their words). */
  private pick(kind: ReactionKind, list: readonly string[]): string {
    const previous = this.last.get(kind);
    const choices = list.length > 1 ? list.filter((s) => s !== previous) : list;
    const s = choices[Math.floor(this.random() * choices.length)]!;
    this.last.set(kind, s);
    return s;
  }

  /**
   * The reaction to `reply`, the `turn`-th model call of its session (0-based): a correction when
   * it misses the preference; when it meets it, thanks (ending the session) or the next question.
   */
  react(reply: string, turn: number): Reaction {
    const u = this.persona.user;
    const check = checkReply(this.persona.check, reply);
    const lastTurn = turn + 1 >= u.turnsPerSession;
    if (!check.ok) return { kind: "correction", text: this.pick("correction", u.corrections), satisfied: false, check, continues: !lastTurn };
    if (lastTurn || this.random() < u.thanksRate) return { kind: "thanks", text: this.pick("thanks", u.thanks), satisfied: true, check, continues: false };
    const text = this.pick("move_on", u.moveOn).replaceAll("{question}", this.nextQuestion());
    return { kind: "move_on", text, satisfied: true, check, continues: true };
  }
}
