// Personas are data (`fixtures/personas/<name>.json`): the preference and its check, how the user
// phrases corrections, thanks and moving on, the questions it asks, the held-out questions it never
// asks (for measuring), the sampling settings and the run's training settings. Validated with zod;
// a bad file is refused with every problem listed.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { configSchema } from "../core/index.js";
import { checkSchema, validateRegexes } from "./check.js";

const nonEmpty = z.string().trim().min(1);

export const personaSchema = z.strictObject({
  /** The file's name without `.json`. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "lowercase letters, digits and dashes"),
  kind: z.enum(["length", "format", "tone", "content"]),
  /** One line for people: who this user is. */
  description: nonEmpty,
  /** The preference in words ("at most two sentences"). */
  preference: nonEmpty,
  check: checkSchema,
  /** The system prompt the user's agent sends (a plain assistant). */
  system: nonEmpty.default("You are a helpful assistant."),
  user: z.strictObject({
    /** What the user says when a reply misses the preference; one is picked at random each time. */
    corrections: z.array(nonEmpty).min(1),
    /** What the user says when a reply meets it and they have nothing more to ask. */
    thanks: z.array(nonEmpty).min(1),
    /** How the user moves on to the next question after a good reply; `{question}` is replaced. */
    moveOn: z.array(nonEmpty.refine((s) => s.includes("{question}"), "must contain {question}")).min(1),
    /** Share of good replies answered with thanks (the rest move on to the next question). */
    thanksRate: z.number().min(0).max(1).default(0.3),
    /** Model calls per session at most; a session also ends after thanks. */
    turnsPerSession: z.number().int().min(1).max(12).default(3),
  }),
  /** The questions the user asks, in order (cycled when the run is longer). */
  prompts: z.array(nonEmpty).min(4),
  /** Questions the user never asks: satisfaction is measured on these. */
  heldOut: z.array(nonEmpty).min(2),
  sampling: z
    .strictObject({
      temperature: z.number().min(0).max(2).default(0.7),
      topP: z.number().gt(0).max(1).default(1),
      maxTokens: z.number().int().min(8).max(2048).default(160),
    })
    .prefault({}),
  eval: z
    .strictObject({
      /** Samples per held-out question and version. */
      samplesPerPrompt: z.number().int().min(1).max(64).default(4),
      /** Seed of the first sample; every version sees the same seeds (common random numbers). */
      seed: z.number().int().default(1234),
    })
    .prefault({}),
  /** clawloop settings for this persona's runs, on top of the demo's defaults (`train.lr`, `judge.method`, …). */
  settings: z.record(z.string(), z.unknown()).default({}),
});

export type Persona = z.infer<typeof personaSchema>;
export type PersonaInput = z.input<typeof personaSchema>;

export class PersonaError extends Error {}

/** `fixtures/personas/` of this package (source tree or installed package). */
export function personasDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, "package.json"))) return path.join(dir, "fixtures", "personas");
    const up = path.dirname(dir);
    if (up === dir) throw new PersonaError("cannot find clawloop's package root (for fixtures/personas)");
    dir = up;
  }
}

/** The shipped personas' names. */
export function listPersonas(dir = personasDir()): string[] {
  try {
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .sort();
  } catch {
    return [];
  }
}

/** Validates a parsed persona; `where` names it in errors. */
export function parsePersona(value: unknown, where = "persona"): Persona {
  const parsed = personaSchema.safeParse(value);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new PersonaError(`${where} is not a valid persona:\n${lines.join("\n")}`);
  }
  const p = parsed.data;
  const problems = validateRegexes(p.check);
  const asked = new Set(p.prompts.map((q) => q.trim().toLowerCase()));
  for (const [i, q] of p.heldOut.entries()) if (asked.has(q.trim().toLowerCase())) problems.push(`heldOut[${i}]: also in prompts (held-out questions are never asked)`);
  const settings = configSchema.safeParse(p.settings);
  if (!settings.success) for (const i of settings.error.issues) problems.push(`settings.${i.path.join(".")}: ${i.message}`);
  if (problems.length) throw new PersonaError(`${where} is not a valid persona:\n${problems.map((l) => `  ${l}`).join("\n")}`);
  return p;
}

/** A shipped persona by name, or a persona file by path. */
export function loadPersona(nameOrFile: string, dir = personasDir()): Persona {
  const isFile = nameOrFile.endsWith(".json") || nameOrFile.includes("/") || nameOrFile.includes(path.sep);
  const file = isFile ? path.resolve(nameOrFile) : path.join(dir, `${nameOrFile}.json`);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      const known = listPersonas(dir);
      throw new PersonaError(isFile ? `no persona file ${file}` : `no persona ${JSON.stringify(nameOrFile)}; shipped: ${known.join(", ") || "(none)"}`);
    }
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new PersonaError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  const persona = parsePersona(value, file);
  if (!isFile && persona.name !== nameOrFile) throw new PersonaError(`${file}: name ${JSON.stringify(persona.name)} does not match the file name`);
  return persona;
}

