// A scripted judge endpoint for tests, speaking vLLM's documented OpenAI dialect:
//   GET  /v1/models            {"object":"list","data":[{id, object:"model", parent}]}, an adapter listed with `parent`
//   POST /v1/chat/completions  {"choices":[{"index":0,"message":{"role":"assistant","content"},"finish_reason"}],"usage"}
//   POST /v1/completions       prompt: str | [ids] | [str] | [[ids]]; `prompt_logprobs: k` →
//                              choices[i].prompt_logprobs = [null, {"<id>": {logprob, rank, decoded_token}}, …];
//                              `return_token_ids` → choices[i].prompt_token_ids; `echo` + `max_tokens: 0`;
//                              `max_tokens: 1` + `logprobs: k` → choices[0].logprobs.top_logprobs[0]
//   POST /tokenize             chat form {messages, add_generation_prompt, continue_final_message} or {prompt}
// Tokens are characters (id = code point), so tests can reason about positions. What the "model"
// says is a script: `chat(messages)` returns the answer text; `score(text)` gives the log-prob of
// the character after the last `\boxed{` (every other character costs −0.01). Requests are
// logged; faults (errors, delays, missing endpoints) are configurable.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface ScriptedMessage {
  role: string;
  content: string;
}

export interface ScriptedJudgeOptions {
  /** The chat answer to a request. */
  chat?: (messages: ScriptedMessage[], body: Record<string, unknown>) => string;
  /** Log-prob of the answer character after `\boxed{` given the whole prompt text. */
  score?: (text: string) => number;
  /** Delay before each answer. */
  delayMs?: number;
  /** The first n requests to a POST endpoint fail with this status (default 503). */
  failFirst?: number;
  failStatus?: number;
  /** Serve `/tokenize` (vLLM has it; llama.cpp's differs). */
  tokenize?: boolean;
  /** Return prompt log-probs (vLLM does; llama-server does not). */
  promptLogprobs?: boolean;
  /** Accept a list of prompts in one completions request. */
  batchPrompts?: boolean;
  model?: string;
}

export interface LoggedRequest {
  method: string;
  path: string;
  body: Record<string, unknown> | null;
}

export interface ScriptedJudge {
  url: string;
  requests: LoggedRequest[];
  close(): Promise<void>;
}

const render = (messages: ScriptedMessage[], continueFinal: boolean, addGeneration: boolean) =>
  messages.map((m, i) => `<|${m.role}|>${m.content}${continueFinal && i === messages.length - 1 ? "" : "<|end|>"}`).join("") +
  (addGeneration && !continueFinal ? "<|assistant|>" : "");

const ids = (text: string) => [...text].map((c) => c.codePointAt(0)!);
const text = (tokens: number[]) => tokens.map((t) => String.fromCodePoint(t)).join("");

export async function startScriptedJudge(opts: ScriptedJudgeOptions = {}): Promise<ScriptedJudge> {
  const model = opts.model ?? "judge-base";
  const requests: LoggedRequest[] = [];
  let failures = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        let body: Record<string, unknown> | null = null;
        if (chunks.length) {
          try {
            body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
          } catch {
            return send(res, 400, { error: { message: "invalid JSON", type: "BadRequestError", code: 400 } });
          }
        }
        const path = (req.url ?? "/").split("?")[0]!;
        requests.push({ method: req.method ?? "GET", path, body });
        if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
        if (req.method === "POST" && failures < (opts.failFirst ?? 0)) {
          failures++;
          return send(res, opts.failStatus ?? 503, { error: { message: "scripted failure", type: "ServiceUnavailableError", code: opts.failStatus ?? 503 } });
        }
        try {
          route(path, req.method ?? "GET", body, res);
        } catch (err) {
          send(res, 400, { error: { message: (err as Error).message, type: "BadRequestError", code: 400 } });
        }
      })();
    });
  });

  function route(path: string, method: string, body: Record<string, unknown> | null, res: http.ServerResponse): void {
    if (method === "GET" && path === "/v1/models") {
      return send(res, 200, {
        object: "list",
        data: [
          { id: model, object: "model", owned_by: "vllm", root: model, parent: null },
          { id: "adapter-v000001", object: "model", owned_by: "vllm", root: "/adapters/v000001", parent: model },
        ],
      });
    }
    if (method !== "POST" || !body) return send(res, 404, { error: { message: "Not Found", type: "NotFoundError", code: 404 } });
    if (path === "/v1/chat/completions") {
      const messages = (body.messages as ScriptedMessage[]) ?? [];
      const content = (opts.chat ?? (() => "The next state shows progress. \\boxed{1}"))(messages, body);
      const promptTokens = ids(render(messages, false, true)).length;
      const completionTokens = ids(content).length;
      return send(res, 200, {
        id: `chatcmpl-${requests.length}`,
        object: "chat.completion",
        created: 0,
        model: body.model,
        choices: [{ index: 0, message: { role: "assistant", content }, logprobs: null, finish_reason: "stop" }],
        usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
      });
    }
    if (path === "/tokenize") {
      if (opts.tokenize === false) return send(res, 404, { detail: "Not Found" });
      const tokens = Array.isArray(body.messages)
        ? ids(render(body.messages as ScriptedMessage[], body.continue_final_message === true, body.add_generation_prompt !== false))
        : ids(String(body.prompt ?? ""));
      return send(res, 200, { count: tokens.length, max_model_len: 8192, tokens });
    }
    if (path === "/v1/completions") {
      const p = body.prompt;
      const list: number[][] =
        typeof p === "string"
          ? [ids(p)]
          : Array.isArray(p) && typeof p[0] === "number"
            ? [p as number[]]
            : Array.isArray(p) && typeof p[0] === "string"
              ? (p as string[]).map(ids)
              : (p as number[][]);
      if (list.length > 1 && opts.batchPrompts === false) throw new Error("this server takes one prompt per request");
      if (body.prompt_logprobs != null && opts.promptLogprobs === false) throw new Error("prompt_logprobs is not supported");
      const score = opts.score ?? (() => -1);
      if (body.max_tokens === 1 && typeof body.logprobs === "number" && list.length === 1) {
        // One generated token: its top log-probs are the three answers' first characters.
        const t = text(list[0]!);
        const top = { "1": score(`${t}1}`), "-": score(`${t}-1}`), "0": score(`${t}0}`), " the": -6 };
        const best = Object.entries(top).sort((a, b) => b[1] - a[1])[0]!;
        return send(res, 200, {
          id: `cmpl-${requests.length}`,
          object: "text_completion",
          created: 0,
          model: body.model,
          choices: [{ index: 0, text: best[0], logprobs: { tokens: [best[0]], token_logprobs: [best[1]], top_logprobs: [top], text_offset: [t.length] }, finish_reason: "length" }],
          usage: { prompt_tokens: list[0]!.length, completion_tokens: 1, total_tokens: list[0]!.length + 1 },
        });
      }
      if (body.max_tokens !== 0 || body.echo !== true) throw new Error("the scripted server only scores (echo + max_tokens: 0) or generates one token with logprobs");
      const choices = list.map((tokens, index) => {
        const t = text(tokens);
        const answerAt = t.lastIndexOf("\\boxed{") + "\\boxed{".length;
        const lp = (j: number) => (j === answerAt ? score(t) : -0.01);
        const choice: Record<string, unknown> = { index, text: t, logprobs: null, finish_reason: "length" };
        if (body.prompt_logprobs != null) {
          choice.prompt_logprobs = tokens.map((id, j) => (j === 0 ? null : { [String(id)]: { logprob: lp(j), rank: 1, decoded_token: String.fromCodePoint(id) } }));
        }
        if (body.return_token_ids) choice.prompt_token_ids = tokens;
        return choice;
      });
      const promptTokens = list.reduce((n, l) => n + l.length, 0);
      return send(res, 200, {
        id: `cmpl-${requests.length}`,
        object: "text_completion",
        created: 0,
        model: body.model,
        choices,
        usage: { prompt_tokens: promptTokens, completion_tokens: 0, total_tokens: promptTokens },
      });
    }
    return send(res, 404, { error: { message: "Not Found", type: "NotFoundError", code: 404 } });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}
