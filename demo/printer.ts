// What the demo prints while it runs: each interaction, each judgment, each training step, each
// adapter swap. Colours and symbols on a terminal; plain lines otherwise (and always in logs).
import type { Judgment, TrainStep } from "../core/index.js";
import type { Reaction } from "./user.js";

export interface Printer {
  line(text: string): void;
  interaction(i: number, total: number, prompt: string, reply: string, served: string | null, reaction: Reaction): void;
  judgment(i: number | null, j: Judgment): void;
  step(s: TrainStep, afterInteractions: number): void;
  swap(version: string | null, previous: string | null): void;
}

/** One line, at most `max` characters, whitespace collapsed. */
export function shorten(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1).trimEnd()}…`;
}

const signed = (x: number, digits = 2) => `${x > 0 ? "+" : x < 0 ? "−" : ""}${Math.abs(x).toFixed(digits)}`;

export function createPrinter(stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }, opts: { color?: boolean } = {}): Printer {
  const color = opts.color ?? (stream.isTTY === true && !process.env.NO_COLOR);
  const width = Math.max(60, Math.min(stream.columns ?? 100, 140));
  const paint = (code: string, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const dim = (s: string) => paint("2", s);
  const green = (s: string) => paint("32", s);
  const red = (s: string) => paint("31", s);
  const cyan = (s: string) => paint("36", s);
  const yellow = (s: string) => paint("33", s);
  const bold = (s: string) => paint("1", s);
  const write = (s: string) => stream.write(s + "\n");
  return {
    line: write,
    interaction(i, total, prompt, reply, served, reaction) {
      const n = String(total).length;
      const tag = `#${String(i).padStart(n)}`;
      const indent = " ".repeat(tag.length + 2);
      write(`${bold(tag)}  ${dim("user")}  ${shorten(prompt, width - tag.length - 8)}`);
      const facts = `${reaction.check.words} words, ${reaction.check.sentences} sentence${reaction.check.sentences === 1 ? "" : "s"}${served ? `, ${served}` : ", base"}`;
      write(`${indent}${dim("model")} ${shorten(reply, Math.max(20, width - indent.length - facts.length - 10))} ${dim(`(${facts})`)}`);
      const mark = reaction.satisfied ? green(color ? "✓" : "ok") : red(color ? "✗" : "missed");
      const why = reaction.satisfied ? "" : dim(`  [${reaction.check.failures.join("; ")}]`);
      write(`${indent}${dim("user")}  ${mark} ${shorten(reaction.text, width - indent.length - 30)}${why}`);
    },
    judgment(i, j) {
      const score = j.score > 0 ? green("+1") : j.score < 0 ? red("−1") : dim(" 0");
      const hint = j.hint ? `  hint: ${cyan(JSON.stringify(shorten(j.hint, 80)))}` : "";
      write(`      ${dim("judge")} ${i === null ? "" : `#${i} `}${score} ${dim(`(${j.method})`)}${hint}`);
    },
    step(s, after) {
      write(
        `      ${yellow("train")} step ${s.step} → ${bold(s.version)}  loss ${s.loss.toFixed(4)}  reward ${signed(s.meanReward)}  ` +
          `samples ${s.samples}  ${(s.durationMs / 1000).toFixed(1)} s  ${dim(`(after ${after} interactions)`)}`,
      );
    },
    swap(version, previous) {
      write(`      ${cyan("swap")}  ${version ? bold(version) : "base"} is live${previous ? dim(` (was ${previous})`) : ""}: it serves the next calls`);
    },
  };
}
