// The turns session inference remembers: for each recent untagged turn, the hash of its prompt and
// the hash of its prompt + response (normalize.ts), its session and parent, the ids of the tool
// calls it made, and the next states already recorded for it. Lookups are two hash-map reads, so
// the cost of placing a request does not depend on how many turns are stored.
//
// Memory is bounded: the `limit` most recently used turns are kept (a turn found as a parent counts
// as used), older ones are forgotten and a conversation continued after that starts a new session.
// The index is persisted as JSON lines in `<data>/inference/turns.jsonl` (a line per finished turn,
// a line per batch of recorded next states), read back at start so inference continues across a
// restart, and rewritten with only the kept turns once it holds twice as many lines. A line lost
// in a crash costs at most that turn's continuation (it starts a new session); the store is
// never affected.
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import type { Logger } from "../../core/index.js";
import type { ConvKey } from "./normalize.js";

export interface IndexedTurn {
  turnId: string;
  sessionId: string;
  parentTurnId: string | null;
  promptKey: ConvKey;
  /** Prompt + response; null until the turn finished, or when it had no response. */
  convKey: ConvKey | null;
  /** Ids of the response's tool calls, in order, as the model made them. */
  toolCallIds: string[];
  /** Ids of the next states already recorded for this turn. */
  recorded: Set<string>;
  /** The turn finished (and has its line in the file). */
  finished: boolean;
}

type TurnLine = { t: string; s: string; r: string | null; p: string; c: string | null; k: string[] };
type RecordedLine = { n: string; e: string[] };

export const INDEX_FILE = "turns.jsonl";

export class TurnIndex {
  /** Kept turns, least recently used first. */
  private readonly turns = new Map<string, IndexedTurn>();
  private readonly byPrompt = new Map<ConvKey, IndexedTurn>();
  private readonly byConv = new Map<ConvKey, IndexedTurn>();
  private out: fs.WriteStream | null = null;
  private lines = 0;
  private compacting: string[] | null = null;
  private compaction: Promise<void> | null = null;
  private failed = false;

  private constructor(
    private readonly file: string | null,
    readonly limit: number,
    private readonly logger: Logger,
  ) {}

  /** An index persisted in `dir` (created if missing), or in memory only when `dir` is null. */
  static async open(dir: string | null, limit: number, logger: Logger): Promise<TurnIndex> {
    if (!dir) return new TurnIndex(null, limit, logger);
    const index = new TurnIndex(path.join(dir, INDEX_FILE), limit, logger);
    try {
      fs.mkdirSync(dir, { recursive: true });
      await index.load();
    } catch (err) {
      // Inference must not keep the sidecar from starting: it works from memory until the next start.
      logger.error({ err: String(err), dir }, "session inference: cannot read or create its index; continuing in memory (sessions are not continued across a restart)");
      return new TurnIndex(null, limit, logger);
    }
    if (index.lines > 2 * limit) await index.compact();
    index.openStream();
    return index;
  }

  /** Whether the index is written to disk. */
  get persisted(): boolean {
    return this.file !== null && !this.failed;
  }

  get size(): number {
    return this.turns.size;
  }

  /** The latest turn with exactly this prompt. */
  findPrompt(key: ConvKey): IndexedTurn | undefined {
    return this.byPrompt.get(key);
  }

  /** The latest turn whose prompt + response hash to `key`; marks it used. */
  findConversation(key: ConvKey): IndexedTurn | undefined {
    const t = this.byConv.get(key);
    if (t) this.touch(t);
    return t;
  }

  /** Whether some kept turn's prompt + response hash to `key` (without marking it used). */
  hasConversation(key: ConvKey): boolean {
    return this.byConv.has(key);
  }

  /** A turn placed just now (its response is not known yet): findable by its prompt at once. */
  addPlaced(t: Omit<IndexedTurn, "convKey" | "toolCallIds" | "recorded" | "finished">): IndexedTurn {
    const entry: IndexedTurn = { ...t, convKey: null, toolCallIds: [], recorded: new Set(), finished: false };
    this.insert(entry);
    return entry;
  }

  /** The turn finished: findable by prompt + response, and written to the file. */
  finish(turnId: string, convKey: ConvKey | null, toolCallIds: string[]): void {
    const t = this.turns.get(turnId);
    if (!t) return;
    t.convKey = convKey;
    t.toolCallIds = toolCallIds;
    t.finished = true;
    if (convKey) this.byConv.set(convKey, t);
    this.append({ t: t.turnId, s: t.sessionId, r: t.parentTurnId, p: t.promptKey, c: convKey, k: toolCallIds });
  }

  /** Next states were recorded for a turn (so the same history seen again records nothing). */
  noteRecorded(t: IndexedTurn, ids: string[]): void {
    for (const id of ids) t.recorded.add(id);
    if (this.turns.get(t.turnId) === t && t.finished) this.append({ n: t.turnId, e: ids });
  }

  async close(): Promise<void> {
    await this.compaction;
    const out = this.out;
    this.out = null;
    if (out) await new Promise<void>((r) => out.end(() => r()));
  }

  // -------------------------------------------------------------------------------------------

  private touch(t: IndexedTurn): void {
    this.turns.delete(t.turnId);
    this.turns.set(t.turnId, t);
  }

  private insert(t: IndexedTurn): void {
    const old = this.turns.get(t.turnId);
    if (old) this.forget(old);
    this.turns.set(t.turnId, t);
    this.byPrompt.set(t.promptKey, t);
    if (t.convKey) this.byConv.set(t.convKey, t);
    while (this.turns.size > this.limit) {
      const oldest = this.turns.values().next().value!;
      this.forget(oldest);
    }
  }

  private forget(t: IndexedTurn): void {
    this.turns.delete(t.turnId);
    if (this.byPrompt.get(t.promptKey) === t) this.byPrompt.delete(t.promptKey);
    if (t.convKey && this.byConv.get(t.convKey) === t) this.byConv.delete(t.convKey);
  }

  private async load(): Promise<void> {
    if (!this.file || !fs.existsSync(this.file)) return;
    let bad = 0;
    const rl = readline.createInterface({ input: fs.createReadStream(this.file, "utf8"), crlfDelay: Infinity });
    for await (const line of rl) {
      if (!line.trim()) continue;
      this.lines++;
      let v: Partial<TurnLine & RecordedLine>;
      try {
        v = JSON.parse(line) as Partial<TurnLine & RecordedLine>;
      } catch {
        bad++;
        continue;
      }
      if (typeof v.t === "string" && typeof v.s === "string" && typeof v.p === "string") {
        const prev = this.turns.get(v.t);
        this.insert({
          turnId: v.t,
          sessionId: v.s,
          parentTurnId: typeof v.r === "string" ? v.r : null,
          promptKey: v.p,
          convKey: typeof v.c === "string" ? v.c : null,
          toolCallIds: Array.isArray(v.k) ? v.k.filter((x): x is string => typeof x === "string") : [],
          recorded: prev?.recorded ?? new Set(),
          finished: true,
        });
      } else if (typeof v.n === "string" && Array.isArray(v.e)) {
        const t = this.turns.get(v.n);
        if (t) for (const id of v.e) if (typeof id === "string") t.recorded.add(id);
      } else {
        bad++;
      }
    }
    // A line cut short by a crash is expected at the end; anything more is worth saying.
    if (bad > 1) this.logger.warn({ file: this.file, bad }, "session inference: skipped unreadable lines of its index");
    this.logger.info({ turns: this.turns.size, lines: this.lines }, "session inference: index loaded");
  }

  private linesOf(): string[] {
    const out: string[] = [];
    for (const t of this.turns.values()) {
      // A turn still in flight gets its line when it finishes.
      if (!t.finished) continue;
      out.push(JSON.stringify({ t: t.turnId, s: t.sessionId, r: t.parentTurnId, p: t.promptKey, c: t.convKey, k: t.toolCallIds } satisfies TurnLine));
      if (t.recorded.size) out.push(JSON.stringify({ n: t.turnId, e: [...t.recorded] } satisfies RecordedLine));
    }
    return out;
  }

  /** Rewrites the file with the kept turns only (lines written meanwhile are carried over). */
  private async compact(): Promise<void> {
    if (!this.file || this.compacting) return;
    this.compacting = [];
    const tmp = `${this.file}.tmp`;
    try {
      const lines = this.linesOf();
      await fs.promises.writeFile(tmp, lines.length ? lines.join("\n") + "\n" : "");
      const late = this.compacting;
      if (late.length) fs.appendFileSync(tmp, late.join(""));
      const reopen = this.out !== null;
      if (this.out) {
        const old = this.out;
        this.out = null;
        old.end();
      }
      fs.renameSync(tmp, this.file);
      this.lines = lines.length + late.length;
      if (reopen) this.openStream();
    } catch (err) {
      this.logger.warn({ err: String(err), file: this.file }, "session inference: could not compact its index (it keeps growing)");
      fs.rmSync(tmp, { force: true });
    } finally {
      this.compacting = null;
    }
  }

  private openStream(): void {
    if (!this.file) return;
    const out = fs.createWriteStream(this.file, { flags: "a" });
    out.on("error", (err) => {
      if (!this.failed) this.logger.error({ err: String(err), file: this.file }, "session inference: cannot write its index; it works from memory until restarted");
      this.failed = true;
      if (this.out === out) this.out = null;
    });
    this.out = out;
  }

  private append(v: TurnLine | RecordedLine): void {
    if (!this.file || this.failed) return;
    const line = JSON.stringify(v) + "\n";
    if (this.compacting) this.compacting.push(line);
    this.out?.write(line);
    if (++this.lines > 2 * this.limit && !this.compacting) this.compaction = this.compact();
  }
}
