// Reading tool results without a model: test-runner summaries, compiler and shell errors, exit
// codes. Output of commands that *show* data (cat, grep, tail, logs, web pages, e-mail lists) may
// contain error words that are the data itself, so for those only the program's own diagnostics count.
import type { Reward } from "../core/index.js";
import type { ActionCall, Evidence } from "./input.js";

export interface ToolFinding {
  score: Reward;
  rule: string;
  detail: string;
  hint: string | null;
}

export interface TestSummary {
  failed: number;
  passed: number;
  framework: string;
}

const WORDS: Record<string, number> = { no: 0, one: 1, two: 2, three: 3 };
const num = (s: string | undefined) => (s === undefined ? 0 : (WORDS[s.toLowerCase()] ?? Number(s)));

/** Pass/fail counts from the summary lines of common test runners, or null when there is none. */
export function parseTestSummary(text: string): TestSummary | null {
  let m: RegExpMatchArray | null;
  // cargo test
  if ((m = text.match(/test result: (ok|FAILED)\. (\d+) passed; (\d+) failed/))) {
    return { framework: "cargo", passed: num(m[2]), failed: num(m[3]) };
  }
  // jest / vitest: "Tests:       1 failed, 7 passed, 8 total" / "Tests  1 failed | 3 passed (4)"
  if ((m = text.match(/^\s*Tests:?\s+(?:(\d+) failed)?[,|\s]*(?:(\d+) passed)?/m)) && (m[1] || m[2])) {
    const files = text.match(/^\s*Test (?:Files|Suites):?\s+(\d+) failed/m);
    return { framework: "jest/vitest", passed: num(m[2]), failed: Math.max(num(m[1]), files ? num(files[1]) : 0) };
  }
  // rspec: "3 examples, 1 failure"
  if ((m = text.match(/(\d+) examples?, (\d+) failures?/))) {
    return { framework: "rspec", passed: num(m[1]) - num(m[2]), failed: num(m[2]) };
  }
  // mocha: "1 passing (48ms)" / "1 failing"
  if ((m = text.match(/^\s*(\d+) passing\b/m))) {
    const f = text.match(/^\s*(\d+) failing\b/m);
    return { framework: "mocha", passed: num(m[1]), failed: f ? num(f[1]) : 0 };
  }
  // unittest: "Ran 3 tests" … "OK" / "FAILED (failures=1, errors=2)"
  if ((m = text.match(/^Ran (\d+) tests? in/m))) {
    const f = text.match(/^FAILED \((?:failures=(\d+))?(?:, )?(?:errors=(\d+))?/m);
    const failed = f ? num(f[1]) + num(f[2]) : 0;
    return { framework: "unittest", passed: num(m[1]) - failed, failed: f && failed === 0 ? 1 : failed };
  }
  // pytest: "1 failed, 5 passed in 0.04s", "6 passed in 0.03s", "1 error in 0.12s"
  if ((m = text.match(/^[=\s]*((?:\d+ (?:failed|passed|errors?|skipped|warnings?|xfailed|xpassed|deselected)(?:, )?)+) in [\d.]+s/m))) {
    const part = (k: RegExp) => num(m![1]!.match(k)?.[1]);
    return { framework: "pytest", passed: part(/(\d+) passed/), failed: part(/(\d+) failed/) + part(/(\d+) errors?/) };
  }
  // go test
  if (/^--- FAIL: /m.test(text) || /^FAIL\s+\S+\s+[\d.]+s/m.test(text)) {
    return { framework: "go", passed: (text.match(/^--- PASS: /gm) ?? []).length, failed: Math.max(1, (text.match(/^--- FAIL: /gm) ?? []).length) };
  }
  if (/^ok\s+\S+\s+[\d.]+s/m.test(text)) return { framework: "go", passed: 1, failed: 0 };
  // eslint-style checkers: "✖ 1 problem (1 error, 0 warnings)"
  if ((m = text.match(/✖ \d+ problems? \((\d+) errors?/))) return { framework: "lint", passed: 0, failed: num(m[1]) };
  return null;
}

/** "The test `x` fails: <why>." from the first failure a runner reports, or null. */
export function failingTestHint(text: string): string | null {
  const pick = (re: RegExp) => text.match(re);
  let name: string | undefined;
  let why: string | undefined;
  let m: RegExpMatchArray | null;
  if ((m = pick(/^FAILED (\S+::\S+?)(?: - (.+))?$/m))) [name, why] = [m[1]!.split("::").pop(), m[2]];
  else if ((m = pick(/^(?:FAIL|ERROR): (\w+)/m))) name = m[1];
  else if ((m = pick(/^\s*● (.+)$/m))) name = m[1]!.split(" › ").pop();
  else if ((m = pick(/^\s*× (.+?)(?: \d+ms)?$/m))) name = m[1]!.split(" > ").pop();
  else if ((m = pick(/^--- FAIL: (\S+)/m))) name = m[1];
  else if ((m = pick(/^---- (\S+) stdout ----/m))) name = m[1];
  else if ((m = pick(/^\s+\d+\) (.+?):?$/m))) name = m[1];
  else if ((m = pick(/^\s+\d+\) (.+)$/m))) name = m[1];
  if (!why) {
    const expected = text.match(/Expected:\s*(.+)\n\s*Received:\s*(.+)/);
    const rspec = text.match(/expected:\s*(.+)\n\s*got:\s*(.+)/);
    const panic = text.match(/panicked at [^\n]*\n(.+)/);
    const line = text.match(/^\s*(?:E\s+|→\s*)?((?:AssertionError|assert\b|expected\b)[^\n]*|\S+\.go:\d+: [^\n]+)$/m);
    if (expected) why = `expected ${expected[1]!.trim()}, received ${expected[2]!.trim()}`;
    else if (rspec) why = `expected ${rspec[1]!.trim()}, got ${rspec[2]!.trim()}`;
    else if (panic) why = panic[1]!.trim();
    else if (line) why = line[1]!.trim();
  }
  if (!name && !why) return null;
  const subject = name ? `The test \`${name.trim()}\` fails` : "A test fails";
  return clip(why ? `${subject}: ${why.trim()}` : subject, 240) + ".";
}

// Transient failures say nothing about how the action should have been different.
const TRANSIENT = /rate.?limit|\b429\b|timed? ?out|timeout|unauthori[sz]ed|token (has )?expired|re-?authenticate|\b50[234]\b|ECONNRESET|temporarily|try again later|service unavailable/i;

function clip(s: string, max: number): string {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length <= max ? t : `${t.slice(0, max - 1).trimEnd()}…`;
}

/**
 * A short, concrete lesson from an error message, or null when the error does not name one.
 * Without a recognised error, the first error line (or `line`) is quoted, unless `generic` is
 * false or the failure is transient (a timeout or rate limit says nothing about the action).
 */
export function errorHint(text: string, opts: { line?: string | null; generic?: boolean } = {}): string | null {
  let m: RegExpMatchArray | null;
  const parts: string[] = [];
  const suggestion = suggestedFix(text);
  if ((m = text.match(/(?:^|\n)(?:[\w/.-]+: )*([\w.+-]+): command not found/) ?? text.match(/Command '([\w.+-]+)' not found/))) {
    parts.push(`\`${m[1]}\` is not installed here; use a command that is available`);
  } else if ((m = text.match(/No module named '([^']+)'/) ?? text.match(/Cannot find module '([^']+)'/))) {
    parts.push(`The module \`${m[1]}\` cannot be imported; install it or fix the import`);
  } else if ((m = text.match(/Missing script:\s*"?([\w:.-]+)"?/))) {
    parts.push(`There is no \`${m[1]}\` script in package.json; list the scripts with \`npm run\` first`);
  } else if ((m = text.match(/No matching distribution found for ([\w.\[\]-]+)/))) {
    parts.push(`No package named \`${m[1]}\` exists; check the package name`);
  } else if ((m = text.match(/EADDRINUSE[^\n]*?:(\d+)\b/))) {
    parts.push(`Port ${m[1]} is already in use; stop the other process or use another port`);
  } else if (
    (m =
      text.match(/ENOENT: no such file or directory, \w+ '([^']+)'/) ??
      text.match(/cannot (?:access|open|stat) ['‘"]?([^'’":\n]+)['’"]?: No such file or directory/) ??
      text.match(/['‘"]?([^\s'’":]+)['’"]?: No such file or directory/) ??
      text.match(/(?:File not found|No such file):\s+['‘"]?([^\s'’"(]+)/i))
  ) {
    parts.push(`\`${m[1]}\` does not exist; check the path before using it`);
  } else if ((m = text.match(/(?:^|\n)(?:[\w-]+: )?([^\s:'"]+): Permission denied/))) {
    parts.push(`\`${m[1]}\` cannot be used: permission denied`);
  } else if (/\b404\b[^\n]*Not Found/i.test(text)) {
    parts.push("The address returned 404 Not Found; check the URL");
  }
  if (suggestion) parts.push(`Use \`${suggestion}\` (the tool suggested it)`);
  if (parts.length) return parts.map((p) => `${p}.`).join(" ");
  if (opts.generic === false) return null;
  const line = firstErrorLine(text) ?? opts.line ?? null;
  if (!line || TRANSIENT.test(text)) return null;
  return `The previous step failed with: ${clip(line, 200)}`;
}

/** What an error message proposes instead: "did you mean X", "perhaps you meant the table X", "closest match: X". */
function suggestedFix(text: string): string | null {
  const lead = /(?:did you mean|perhaps you meant(?: to reference the (?:table|column|function|relation))?|closest match(?:es)?)[:\s]*(?:command\s+)?/i;
  const at = text.search(lead);
  if (at < 0) return null;
  const rest = text.slice(at).replace(lead, "");
  const quoted = rest.match(/^['"`‘“]([^'"`’”\n]{1,80})['"`’”]/);
  const bare = rest.match(/^([^\s?)'"`,]{1,80})/);
  const s = (quoted?.[1] ?? bare?.[1] ?? "").trim();
  return s || null;
}

const ERROR_LINE = [
  /command not found/i,
  /No such (file or directory|process)/i,
  /Permission denied/i,
  /Operation not permitted/i,
  /^fatal:/m,
  /^error(\[E\d+\])?:/im,
  /\berror TS\d+:/,
  /: error:/,
  /^make: \*\*\*/m,
  /npm ERR!/,
  /^Traceback \(most recent call last\)/m,
  /^\s*[\w.]*(Error|Exception): /m,
  /^panic: /m,
  /Segmentation fault|core dumped/,
  /\bERROR\b/,
  /\bCould not (find|resolve|connect|read|open|load)\b/i,
  /\bcannot (access|open|create|remove|stat|find|read|write)\b/i,
  /\bnot found\b/i,
  /\bE[A-Z]{3,}\b: /,
  /(?<!\b0 )\bfailed\b(?!\s*[:=]?\s*0\b)/i,
  /\btimed out\b/i,
  /\bexit(?:ed)?(?: with)?(?: code| status)[: ]+[1-9]\d*/i,
  /\bInvalid\b/,
];

function firstErrorLine(text: string): string | null {
  for (const line of text.split("\n")) {
    if (ERROR_LINE.some((re) => re.test(line))) return line.trim();
  }
  return null;
}

/** The command an `exec`-style call ran, from its JSON arguments. */
export function commandOf(call: ActionCall | undefined): string | null {
  if (!call) return null;
  try {
    const args = JSON.parse(call.arguments) as Record<string, unknown>;
    for (const key of ["command", "cmd", "script", "commandLine", "shell"]) {
      const v = args[key];
      if (typeof v === "string") return v;
      if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.join(" ");
    }
  } catch {
    // Arguments that are not JSON: not a command we can read.
  }
  return null;
}

const SHELL_TOOLS = /^(exec|bash|shell|sh|terminal|run|run_command|execute|process|cmd)$/i;
const READ_PROGRAMS = new Set(
  "cat tac less more head tail grep egrep fgrep rg ag ack zgrep journalctl dmesg jq yq awk nl strings curl xxd od".split(" "),
);

/** The first program of the first pipeline stage, skipping `sudo`, `env` and VAR=value prefixes. */
export function programOf(command: string): { program: string; rest: string } {
  const words = command.trim().split(/\s+/);
  let i = 0;
  while (i < words.length && (/^\w+=/.test(words[i]!) || words[i] === "sudo" || words[i] === "env" || words[i] === "time")) i++;
  const program = (words[i] ?? "").replace(/^.*\//, "");
  return { program, rest: words.slice(i + 1).join(" ") };
}

/** True when the call's output is data to show (a file, a log, a page), not a report on the call itself. */
export function showsData(call: ActionCall | undefined): boolean {
  if (!call) return false;
  if (!SHELL_TOOLS.test(call.name)) return true;
  const cmd = commandOf(call);
  if (!cmd) return false;
  const { program, rest } = programOf(cmd.split(/\|/)[0] ?? "");
  if (READ_PROGRAMS.has(program)) return true;
  if (program === "systemctl" && /^(status|show|list-\S+)\b/.test(rest)) return true;
  if ((program === "docker" || program === "kubectl" || program === "podman") && /^(logs|describe|get|inspect)\b/.test(rest)) return true;
  if (program === "git" && /^(log|show|diff|blame|status)\b/.test(rest)) return true;
  return false;
}

/** Diagnostics a data-showing program prints about itself ("grep: x: No such file…"). */
function ownDiagnostic(text: string, call: ActionCall | undefined): string | null {
  const lines = text.split("\n").slice(0, 3);
  const cmd = commandOf(call);
  const program = cmd ? programOf(cmd).program : (call?.name ?? "");
  for (const line of lines) {
    const t = line.trim();
    if (program && t.startsWith(`${program}: `)) return t;
    if (/^(error|fatal|exception)\b[: ]/i.test(t) || /command not found|No such file or directory/i.test(t)) return t;
  }
  return null;
}

/** The call a tool result belongs to: the one with the same tool name, else the only/first call. */
export function callFor(ev: Evidence, calls: ActionCall[]): ActionCall | undefined {
  return calls.find((c) => ev.toolName && c.name === ev.toolName) ?? calls[0];
}

const EMPTY = /^\s*(\(no output\)|\[\]|\{\}|null|none|0 results?|no results?( found)?\.?|no matches( found)?\.?)?\s*$/i;

/** The verdict a tool result or tool error carries on its own. */
export function judgeToolOutput(ev: Evidence, calls: ActionCall[]): ToolFinding {
  const text = ev.text ?? "";
  const call = callFor(ev, calls);
  if (ev.kind === "tool_error") {
    return { score: -1, rule: "tool_error", detail: clip(text, 160), hint: errorHint(text) };
  }
  if (ev.exitCode !== null && ev.exitCode !== 0) {
    return { score: -1, rule: "exit_code", detail: `exit code ${ev.exitCode}`, hint: errorHint(text) };
  }
  const tests = parseTestSummary(text);
  if (tests && tests.failed > 0) {
    return { score: -1, rule: "failing_tests", detail: `${tests.framework}: ${tests.failed} failed`, hint: failingTestHint(text) ?? errorHint(text, { generic: false }) };
  }
  if (tests && tests.passed > 0) {
    return { score: 1, rule: "tests_pass", detail: `${tests.framework}: ${tests.passed} passed`, hint: null };
  }
  if (showsData(call)) {
    const own = ownDiagnostic(text, call);
    if (own) return { score: -1, rule: "tool_diagnostic", detail: clip(own, 160), hint: errorHint(text, { line: own }) };
  } else {
    const line = firstErrorLine(text) ?? programDiagnostic(text, call);
    if (line) return { score: -1, rule: "error_output", detail: clip(line, 160), hint: errorHint(text, { line }) };
  }
  if (ev.exitCode === 0 || /\bexit(?:ed)?(?: with)?(?: code| status)[: ]+0\b/i.test(text)) {
    return { score: 1, rule: "exit_zero", detail: "exit code 0", hint: null };
  }
  if (EMPTY.test(text)) return { score: 0, rule: "empty_output", detail: "no output", hint: null };
  return { score: 1, rule: "tool_ok", detail: "output without errors", hint: null };
}

/** Unix programs prefix their own errors with their name: "convert: no decode delegate…". */
function programDiagnostic(text: string, call: ActionCall | undefined): string | null {
  const cmd = commandOf(call);
  if (!cmd) return null;
  const { program } = programOf(cmd);
  if (!program) return null;
  const prefix = new RegExp(`^(?:${escapeRegex(program)}|sudo|bash|sh|zsh): `, "m");
  const m = text.match(new RegExp(`${prefix.source}.*$`, "m"));
  return m ? m[0] : null;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
