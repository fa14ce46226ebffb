// Demo runs (`<data>/runs/<runId>/summary.json`): a simulated user's satisfaction, measured after
// every so many interactions, per adapter version. The page draws one curve per run.
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";

export const runSummarySchema = z.looseObject({
  persona: z.string(),
  mode: z.string(),
  interactions: z.number().int().nonnegative(),
  satisfaction: z.array(
    z.object({
      version: z.string().nullable(),
      afterInteractions: z.number().nonnegative(),
      rate: z.number().min(0).max(1),
    }),
  ),
  perplexityChange: z.number().nullable().optional(),
  startedAt: z.string(),
});

export type RunSummary = z.infer<typeof runSummarySchema>;

export interface RunEntry {
  id: string;
  summary: RunSummary | null;
  /** Why the summary could not be used; null with no summary means the run has not written one yet. */
  error: string | null;
  updatedAt: string;
}

/** The newest `limit` runs (by their summary's time, else the folder's), newest first. */
export function listRuns(runsDir: string, limit: number): RunEntry[] {
  let names: string[];
  try {
    names = fs.readdirSync(runsDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const dated = names.map((name) => {
    const dir = path.join(runsDir, name);
    let mtime = 0;
    try {
      mtime = fs.statSync(dir).mtimeMs;
    } catch {
      // Removed meanwhile.
    }
    return { name, dir, mtime };
  });
  dated.sort((a, b) => b.mtime - a.mtime);
  return dated.slice(0, limit).map(({ name, dir, mtime }) => readRun(name, dir, mtime));
}

function readRun(id: string, dir: string, dirMtime: number): RunEntry {
  const file = path.join(dir, "summary.json");
  let text: string;
  let updatedAt = new Date(dirMtime).toISOString();
  try {
    text = fs.readFileSync(file, "utf8");
    updatedAt = fs.statSync(file).mtime.toISOString();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { id, summary: null, error: null, updatedAt };
    return { id, summary: null, error: (err as Error).message, updatedAt };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { id, summary: null, error: `summary.json is not JSON: ${(err as Error).message}`, updatedAt };
  }
  const parsed = runSummarySchema.safeParse(raw);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join(".") || "(summary)"}: ${i.message}`).join("; ");
    return { id, summary: null, error: `summary.json: ${why}`, updatedAt };
  }
  return { id, summary: parsed.data, error: null, updatedAt };
}
