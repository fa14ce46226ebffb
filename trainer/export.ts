// `clawloop export`: the judged main-line turns of the store as offline samples (jsonl.ts), so
// they can be inspected, edited, or trained on elsewhere with `clawloop train --samples`.
import fs from "node:fs";
import path from "node:path";
import { sqlString, Store, type Config, type Judgment, type Turn } from "../core/index.js";
import { sampleLine } from "./jsonl.js";
import { exchangeFromTurn } from "./samples.js";

export interface ExportResult {
  file: string;
  written: number;
  /** Judged turns that are not exported: side or failed calls, `/v1/completions` prompts. */
  skipped: { notTrainable: number; notChat: number; turnMissing: number };
}

const CHUNK = 200;

export async function exportSamples(config: Config, file: string): Promise<ExportResult> {
  const target = path.resolve(file);
  const store = await Store.open({ dataDir: config.dataDir });
  try {
    const judgments = await store.list("judgments");
    const byTurn = new Map<string, Judgment>(judgments.map((j) => [j.turnId, j]));
    const turns: Turn[] = [];
    const ids = [...byTurn.keys()];
    for (let i = 0; i < ids.length; i += CHUNK) {
      const chunk = ids.slice(i, i + CHUNK);
      turns.push(...(await store.list("turns", { sql: `id IN (${chunk.map(sqlString).join(", ")})` })));
    }
    turns.sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : a.id < b.id ? -1 : 1));
    const skipped = { notTrainable: 0, notChat: 0, turnMissing: byTurn.size - turns.length };
    const lines: string[] = [];
    for (const turn of turns) {
      const j = byTurn.get(turn.id)!;
      const ex = exchangeFromTurn(turn, j);
      if (!ex) skipped.notTrainable++;
      else if (!ex.messages || !ex.messages.length) skipped.notChat++;
      else lines.push(sampleLine({ ...ex, id: j.id }));
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const tmp = `${target}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, lines.length ? lines.join("\n") + "\n" : "");
    fs.renameSync(tmp, target);
    return { file: target, written: lines.length, skipped };
  } finally {
    await store.close();
  }
}
