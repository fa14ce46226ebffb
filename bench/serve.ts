// bench:serve — generation speed of the embedded engine, side by side in one run: node-llama-cpp's
// own generation loop (no server, no log-probs) as the baseline, then `clawloop serve` over HTTP
// with one request and with several at once, with and without raw log-probs and token ids, and
// prompt scoring (prompt_logprobs) speed. Tokens/s and the ratio to the baseline per row.
//
// Every request generates exactly --tokens tokens (ignore_eos), at temperature 1 with no filters.
// Rows run one after another on the same machine; each is the median of --repeats runs. The
// machine's load average is printed: other work on the cores skews every row.
//
//   npm run build && npm run bench:serve
//   node dist/bench/serve.js --model path/to/model.gguf --tokens 128 --concurrency 4 --repeats 3 --json
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { getLlama } from "node-llama-cpp";
import { loadConfig } from "../core/index.js";
import { ensureModel, startServer, type RunningServer } from "../serve/index.js";

const { values: args } = parseArgs({
  options: {
    model: { type: "string" },
    tokens: { type: "string", default: "96" },
    concurrency: { type: "string", default: "4" },
    repeats: { type: "string", default: "3" },
    "score-tokens": { type: "string", default: "384" },
    threads: { type: "string", default: "0" },
    json: { type: "boolean", default: false },
  },
});

const TOKENS = Number(args.tokens);
const CONCURRENCY = Number(args.concurrency);
const REPEATS = Number(args.repeats);
const PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle.";

async function modelPath(): Promise<string> {
  if (args.model) return args.model === "smollm2" ? ensureModel("smollm2", { dataDir: loadConfig().dataDir }) : path.resolve(args.model);
  const test = process.env.CLAWLOOP_TEST_MODEL ?? path.resolve(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
  if (fs.existsSync(test)) return test;
  return ensureModel("smollm2", { dataDir: loadConfig().dataDir });
}

interface Row {
  name: string;
  requests: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timed(name: string, requests: number, run: () => Promise<number>): Promise<Row> {
  await run(); // warm-up (first-use allocations, caches)
  const secs: number[] = [];
  let tokens = 0;
  for (let i = 0; i < REPEATS; i++) {
    const t0 = performance.now();
    tokens = await run();
    secs.push((performance.now() - t0) / 1000);
  }
  const seconds = median(secs);
  return { name, requests, tokens, seconds, tokensPerSecond: tokens / seconds };
}

async function baseline(model: string, threads: number, label: string): Promise<Row> {
  const llama = await getLlama({ build: "never", gpu: false });
  const threadsUsed = threads || llama.cpuMathCores;
  llama.maxThreads = threadsUsed;
  const m = await llama.loadModel({ modelPath: model });
  const ctx = await m.createContext({ contextSize: 1024, sequences: 1, threads: threadsUsed });
  const prompt = m.tokenize(`<|im_start|>user\n${PROMPT}<|im_end|>\n<|im_start|>assistant\n`, true);
  try {
    return await timed(`node-llama-cpp evaluate() loop, ${threadsUsed} thread${threadsUsed > 1 ? "s" : ""}${label}`, 1, async () => {
      const seq = ctx.getSequence();
      let n = 0;
      for await (const _ of seq.evaluate(prompt, { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1, yieldEogToken: true })) {
        if (++n >= TOKENS) break;
      }
      seq.dispose();
      return n;
    });
  } finally {
    await ctx.dispose();
    await m.dispose();
    await llama.dispose();
  }
}

async function chat(server: RunningServer, extra: Record<string, unknown>, i: number): Promise<number> {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: `${PROMPT} (${i})` }], max_tokens: TOKENS, ignore_eos: true, seed: i, ...extra }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as { usage: { completion_tokens: number } };
  return body.usage.completion_tokens;
}

/** Prints each row as soon as it is measured (a slow machine still shows partial results). */
class Table {
  private base: number | null = null;
  private readonly width = 56;

  header(info: { model: string; cpus: number; loadavg: number[] }): void {
    if (args.json) return;
    process.stdout.write(`bench:serve  ${info.model}, ${TOKENS} tokens per request, median of ${REPEATS}, ${info.cpus} CPUs, load at start ${info.loadavg.join(" ")}\n\n`);
    process.stdout.write(`${"".padEnd(this.width)}  requests  tokens   seconds   tokens/s   × baseline\n`);
  }

  row(r: Row): void {
    this.base ??= r.tokensPerSecond;
    if (args.json) return;
    process.stdout.write(
      `${r.name.padEnd(this.width)}  ${String(r.requests).padStart(8)}  ${String(r.tokens).padStart(6)}  ${r.seconds.toFixed(2).padStart(8)}  ${r.tokensPerSecond.toFixed(1).padStart(9)}  ${(r.tokensPerSecond / this.base).toFixed(2).padStart(11)}\n`,
    );
  }
}

async function main(): Promise<void> {
  const model = await modelPath();
  const threads = Number(args.threads);
  const table = new Table();
  const info = { model: path.basename(model), tokensPerRequest: TOKENS, repeats: REPEATS, cpus: os.cpus().length, loadavg: os.loadavg().map((l) => +l.toFixed(2)) };
  table.header(info);
  const rows: Row[] = [];
  const push = (r: Row) => {
    rows.push(r);
    table.row(r);
  };
  push(await baseline(model, threads, " (baseline)"));
  // llama.cpp's threads spin while they wait for each other: on a busy machine (the trainer running
  // next to it) one thread can beat several by a wide margin. This row shows which holds here.
  if ((threads || os.availableParallelism()) > 1) push(await baseline(model, 1, ""));
  const server = await startServer({ model, port: 0, contextSize: 1024, parallel: CONCURRENCY, threads });
  try {
    const lp = { logprobs: true, top_logprobs: 0, return_token_ids: true };
    const lp5 = { logprobs: true, top_logprobs: 5, return_token_ids: true };
    const many = (extra: Record<string, unknown>) => async () =>
      (await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => chat(server, extra, i)))).reduce((a, b) => a + b, 0);
    push(await timed("serve, 1 request", 1, () => chat(server, {}, 0)));
    push(await timed("serve, 1 request, log-probs + token ids", 1, () => chat(server, lp, 0)));
    push(await timed("serve, 1 request, top-5 log-probs", 1, () => chat(server, lp5, 0)));
    push(await timed(`serve, ${CONCURRENCY} concurrent requests`, CONCURRENCY, many({})));
    push(await timed(`serve, ${CONCURRENCY} concurrent, log-probs + token ids`, CONCURRENCY, many(lp)));
    // Scoring: prompt log-probs of a long prompt (the teacher / log-prob judge pass).
    const scoreIds = server.engine.model.tokenize(PROMPT.repeat(40), false).slice(0, Number(args["score-tokens"]));
    push(
      await timed(`serve, prompt_logprobs of ${scoreIds.length} tokens (scoring)`, 1, async () => {
        const res = await fetch(`${server.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: scoreIds, max_tokens: 0, prompt_logprobs: 0 }),
        });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        await res.json();
        return scoreIds.length - 1;
      }),
    );
  } finally {
    await server.close();
  }
  const base = rows[0]!.tokensPerSecond;
  if (args.json) {
    process.stdout.write(JSON.stringify({ ...info, loadavgAtEnd: os.loadavg(), rows: rows.map((r) => ({ ...r, ratio: r.tokensPerSecond / base })) }, null, 2) + "\n");
  } else {
    process.stdout.write(`\nload at end ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:serve: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
