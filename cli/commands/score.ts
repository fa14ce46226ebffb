// `clawloop score --model PATH [--adapter DIR] --input FILE.jsonl [--json]`: per-token log-probs
// of replies under the base model or an adapter, computed by the trainer's engine.
//
// Each input line is {"messages": [...], "response": "...", "tools"?: [...]}. The reply is rendered
// as the assistant's turn with the model's chat template, exactly as training samples are
// (trainer/render.ts): prompt = the conversation with the generation prompt, response = the
// template's tokens for the reply up to and including its end-of-turn token. Each output line has
// the response's token ids, their log-probs and the sum; a bad line gets an error of its own and
// the others still run.
import fs from "node:fs";
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { readPeftAdapter, type LoraAdapter } from "../../adapters/index.js";
import type { ChatMessage } from "../../core/index.js";
import { Engine, EXECUTION_PROVIDERS, loadModel, type ExecutionProvider, type LoadedModel, type ScoreItem } from "../../trainer/engine/index.js";
import { renderExchange } from "../../trainer/index.js";
import { configFrom, withCommonOptions, type CommonFlags } from "../shared.js";

export interface ScoreOptions {
  model: string;
  input: string;
  adapter?: string | null;
  threads?: number;
  executionProvider?: ExecutionProvider;
  maxTokens?: number;
  /** Lines scored per engine call. */
  chunk?: number;
}

export type ScoreLine =
  | { line: number; tokens: number[]; logprobs: number[]; sum: number }
  | { line: number; error: string };

export interface ScoreSummary {
  scored: number;
  failed: number;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Turns one JSONL line into prompt and response token ids, or says what is wrong with it. */
export function renderLine(model: LoadedModel, text: string): ScoreItem {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${message(e)}`);
  }
  const obj = parsed as { messages?: unknown; response?: unknown; tools?: unknown };
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) throw new Error('expected an object {"messages": [...], "response": "..."}');
  if (!Array.isArray(obj.messages) || obj.messages.length === 0) throw new Error('"messages" must be a non-empty array');
  for (const [i, m] of obj.messages.entries()) {
    if (!m || typeof m !== "object" || typeof (m as ChatMessage).role !== "string") throw new Error(`messages[${i}] needs a "role"`);
  }
  if (typeof obj.response !== "string") throw new Error('"response" must be a string');
  if (obj.tools !== undefined && !Array.isArray(obj.tools)) throw new Error('"tools" must be an array');
  const tools = obj.tools as unknown[] | undefined;
  return renderExchange(model.tokenizer, obj.messages as ChatMessage[], { role: "assistant", content: obj.response }, tools);
}

/** Scores every line of `opts.input`, calling `emit` once per non-blank line, in input order. */
export async function scoreFile(opts: ScoreOptions, emit: (result: ScoreLine) => void): Promise<ScoreSummary> {
  const text = fs.readFileSync(opts.input, "utf8");
  const model = await loadModel(opts.model);
  let engine: Engine | null = null;
  try {
    let adapter: LoraAdapter | null = null;
    if (opts.adapter) {
      try {
        adapter = readPeftAdapter(opts.adapter);
      } catch (e) {
        throw new Error(`cannot read adapter ${opts.adapter}: ${message(e)}`);
      }
      if (adapter.config.numLayers !== model.weights.config.numLayers) {
        throw new Error(`adapter ${opts.adapter} has ${adapter.config.numLayers} layers; the model has ${model.weights.config.numLayers}`);
      }
    }
    const lora = adapter ? { rank: adapter.config.rank, alpha: adapter.config.alpha, targets: adapter.config.targets } : { rank: 1, alpha: 1, targets: ["q" as const] };
    engine = await Engine.create({
      model,
      lora,
      ...(opts.threads ? { threads: opts.threads } : {}),
      ...(opts.executionProvider ? { executionProvider: opts.executionProvider } : {}),
      ...(opts.maxTokens ? { maxTokens: opts.maxTokens } : {}),
    });

    // Render and check every line first; only good lines reach the engine.
    const lines = text.split("\n");
    const prepared: ({ line: number; item: ScoreItem } | { line: number; error: string })[] = [];
    lines.forEach((raw, i) => {
      if (raw.trim() === "") return;
      try {
        const item = renderLine(model, raw);
        engine!.validate(item);
        prepared.push({ line: i + 1, item });
      } catch (e) {
        prepared.push({ line: i + 1, error: message(e) });
      }
    });

    const summary: ScoreSummary = { scored: 0, failed: 0 };
    const chunk = opts.chunk ?? 16;
    for (let start = 0; start < prepared.length; start += chunk) {
      const part = prepared.slice(start, start + chunk);
      const good = part.filter((p): p is { line: number; item: ScoreItem } => "item" in p);
      let results: number[][] | null = null;
      try {
        results = good.length ? await engine.score(good.map((g) => g.item), adapter) : [];
      } catch {
        results = null; // find the line that fails by scoring them one by one
      }
      let k = 0;
      for (const p of part) {
        if ("error" in p) {
          summary.failed++;
          emit(p);
          continue;
        }
        let lp: number[];
        try {
          lp = results ? results[k]! : (await engine.score([p.item], adapter))[0]!;
        } catch (e) {
          summary.failed++;
          emit({ line: p.line, error: message(e) });
          k++;
          continue;
        }
        k++;
        summary.scored++;
        emit({ line: p.line, tokens: p.item.responseIds, logprobs: lp, sum: lp.reduce((a, b) => a + b, 0) });
      }
    }
    return summary;
  } finally {
    engine?.close();
    model.close();
  }
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("must be a positive integer");
  return n;
}

function provider(v: string): ExecutionProvider {
  if (!(EXECUTION_PROVIDERS as readonly string[]).includes(v)) throw new InvalidArgumentError(`must be one of ${EXECUTION_PROVIDERS.join(", ")}`);
  return v as ExecutionProvider;
}

interface ScoreFlags extends CommonFlags {
  model?: string;
  adapter?: string;
  input: string;
  json?: boolean;
  threads?: number;
  executionProvider?: ExecutionProvider;
  maxTokens?: number;
}

export function register(program: Command): void {
  withCommonOptions(
    program
      .command("score")
      .description("Per-token log-probs of replies (JSONL of {messages, response}) under the base model or a PEFT adapter")
      .option("--model <path>", "base model: a .gguf file or a Hugging Face folder (default: train.model)")
      .option("--adapter <dir>", "a PEFT adapter folder (adapter_config.json + adapter_model.safetensors)")
      .requiredOption("--input <file>", 'JSONL, one {"messages": [...], "response": "..."} per line')
      .option("--json", "one JSON object per input line: {line, tokens, logprobs, sum} or {line, error}")
      .option("--threads <n>", "compute threads (default: all cores)", positiveInt)
      .option("--execution-provider <ep>", `${EXECUTION_PROVIDERS.join(" | ")} (default: train.executionProvider)`, provider)
      .option("--max-tokens <n>", "longest prompt + response (default: train.maxTokens)", positiveInt),
  ).action(async (flags: ScoreFlags) => {
    const config = configFrom(flags);
    const model = flags.model ?? config.train.model ?? config.serve.model;
    if (!model) throw new Error("no model: pass --model PATH (a .gguf file or a Hugging Face folder) or set train.model");
    if (!fs.existsSync(flags.input)) throw new Error(`input file not found: ${flags.input}`);
    const out = (s: string) => process.stdout.write(s);
    const summary = await scoreFile(
      {
        model,
        input: flags.input,
        adapter: flags.adapter ?? null,
        executionProvider: flags.executionProvider ?? config.train.executionProvider,
        maxTokens: flags.maxTokens ?? config.train.maxTokens,
        ...(flags.threads ? { threads: flags.threads } : {}),
      },
      (r) => {
        if (flags.json) out(`${JSON.stringify(r)}\n`);
        else if ("error" in r) out(`line ${r.line}: error: ${r.error}\n`);
        else out(`line ${r.line}: ${r.tokens.length} tokens, sum ${r.sum.toFixed(4)} (mean ${(r.sum / Math.max(1, r.tokens.length)).toFixed(4)})\n`);
      },
    );
    process.stderr.write(`clawloop score: ${summary.scored} scored, ${summary.failed} failed\n`);
    if (summary.failed > 0) process.exitCode = 1;
  });
}
