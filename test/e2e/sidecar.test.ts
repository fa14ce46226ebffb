// The sidecar in front of scripted upstreams of every kind: transparency (the client sees what it
// would have seen without clawloop), capture (token ids and log-probs exactly as the upstream sent
// them), tagging, the events API and the control API.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { LLAMA_EOS_ID, SCRIPTED_KINDS, tokenize, renderPrompt, type ScriptedKind } from "../../fixtures/upstream/index.js";
import type { RemoteRecordStore } from "../../sidecar/record-store.js";
import { chatBody, post, rigsClosedAfterEach, startSidecarFor, tagged, tmpDir, waitFor } from "./sidecar-helpers.js";

const open = rigsClosedAfterEach();

/** Kinds whose capture the sidecar asks for, per (streaming, tools) shape. */
function expectsIds(kind: ScriptedKind, stream: boolean, tools: boolean): boolean {
  switch (kind) {
    case "vllm":
    case "clawloop":
      return true;
    case "sglang":
      return !stream;
    case "llamacpp":
      return !(stream && tools);
    default:
      return false;
  }
}

describe("transparency and capture, per upstream kind", () => {
  for (const kind of SCRIPTED_KINDS) {
    it(`${kind}: every answer is byte-identical to a direct one, and the turn holds what the upstream sent`, async () => {
      const r = await open({ kind, splitWrites: 9 });
      expect(r.sc.upstream.kind).toBe(kind);
      let n = 0;
      for (const stream of [true, false]) {
        for (const tools of [false, true]) {
          n++;
          const body = chatBody(tools ? 'CALLTOOL:read_file {"path":"README.md","lines":[1,20]}' : "hello there, how are you today?", {
            ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
            ...(tools ? { tools: [{ type: "function", function: { name: "read_file", parameters: { type: "object" } } }], tool_choice: "auto" } : {}),
          });
          const headers = { ...tagged(`s-${kind}`, `run-${n}`, 1), authorization: "Bearer sk-client-key-000000000000000000000" };
          const direct = await post(`${r.up.url}/v1/chat/completions`, body, headers);
          const directText = await direct.text();
          const via = await post(`${r.sc.url}/v1/chat/completions`, body, headers);
          const viaText = await via.text();
          expect(via.status).toBe(direct.status);
          expect(via.headers.get("content-type")).toBe(direct.headers.get("content-type"));
          expect(viaText).toBe(directText);

          const sent = r.up.requests.at(-1)!;
          // The client's own credentials reach the upstream; what the sidecar adds is only capture.
          expect(sent.headers.authorization).toBe(headers.authorization);
          const turn = (await r.turns(`s-${kind}`)).find((t) => t.runId === `run-${n}`)!;
          expect(turn).toBeDefined();
          expect(turn.status).toBe("ok");
          expect(turn.turnType).toBe("main");
          expect(turn.id).toBe(`run-${n}:model:1`);
          expect(turn.upstreamStatus).toBe(200);
          expect(turn.request.messages).toEqual(body.messages);
          expect(turn.request.params).not.toHaveProperty("logprobs");
          expect(turn.request.params).not.toHaveProperty("return_token_ids");
          if (tools) {
            expect(turn.response?.toolCalls).toHaveLength(1);
            expect(turn.response?.toolCalls[0]?.function).toEqual({ name: "read_file", arguments: '{"path":"README.md","lines":[1,20]}' });
            expect(turn.response?.finishReason).toBe("tool_calls");
          } else {
            expect(turn.response?.content).toBe("echo: hello there, how are you today?");
            expect(turn.response?.finishReason).toBe("stop");
          }
          if (expectsIds(kind, stream, tools)) {
            expect(turn.completionTokenIds?.length).toBeGreaterThan(0);
            expect(turn.completionTokenIds).toEqual(sent.sent!.completionTokenIds);
            expect(turn.completionLogprobs).toEqual(sent.sent!.completionLogprobs);
          } else {
            expect(turn.completionTokenIds).toBeNull();
            // Nothing was asked of this server beyond what the client sent.
            expect(sent.rawBody.toString()).toBe(JSON.stringify(body));
          }
          if (kind === "vllm" || kind === "clawloop" || (kind === "sglang" && !stream)) {
            expect(turn.promptTokenIds).toEqual(tokenize(renderPrompt(body)));
          } else {
            expect(turn.promptTokenIds).toBeNull();
          }
          if (stream || kind !== "llamacpp") expect(turn.usage?.totalTokens).toBeGreaterThan(0);
        }
      }
      expect((await r.turns(`s-${kind}`)).map((t) => t.seq)).toEqual([0, 1, 2, 3]);
    });
  }

  it("adds capture fields to the body's text without re-serializing the client's bytes", async () => {
    const r = await open({ kind: "vllm" });
    const raw = '{"model":"m",  "temperature": 1.0, "seed": 12345678901234567890,\n "messages":[{"role":"user","content":"x"}]}';
    await (await post(`${r.sc.url}/v1/chat/completions`, raw)).text();
    expect(r.up.requests.at(-1)!.rawBody.toString()).toBe(raw.slice(0, -1) + ',"logprobs":true,"top_logprobs":0,"return_token_ids":true}');
  });

  it("gives a client that asked for log-probs its log-probs, and still hides the token ids it did not ask for", async () => {
    const r = await open({ kind: "vllm" });
    const body = chatBody("tell me something", { stream: true, logprobs: true, top_logprobs: 2 });
    const direct = await (await post(`${r.up.url}/v1/chat/completions`, body)).text();
    const via = await (await post(`${r.sc.url}/v1/chat/completions`, body)).text();
    expect(via).toBe(direct);
    expect(via).toContain('"top_logprobs":[{');
    expect(JSON.parse(r.up.requests.at(-1)!.rawBody.toString())).toMatchObject({ logprobs: true, top_logprobs: 2, return_token_ids: true });
  });

  it("captures /v1/completions too", async () => {
    for (const kind of ["vllm", "clawloop", "llamacpp"] as const) {
      const r = await open({ kind });
      for (const stream of [true, false]) {
        const body = { model: "m", prompt: "Once upon a time", max_tokens: 8, ...(stream ? { stream: true } : {}) };
        const direct = await (await post(`${r.up.url}/v1/completions`, body, { "x-session-id": "c" })).text();
        const via = await (await post(`${r.sc.url}/v1/completions`, body, { "x-session-id": "c" })).text();
        expect(via).toBe(direct);
        const turn = (await r.turns("c")).at(-1)!;
        expect(turn.endpoint).toBe("completions");
        expect(turn.request.prompt).toBe("Once upon a time");
        expect(turn.response?.content).toBe("echo: Once upon a time");
        // llama-server's answer ends with its end-of-generation token, which has an entry of its own.
        expect(turn.completionTokenIds).toEqual([...tokenize("echo: Once upon a time"), ...(kind === "llamacpp" ? [LLAMA_EOS_ID] : [])]);
        // vLLM's completions log-probs come without ids but line up with token_ids.
        expect(turn.completionLogprobs).toHaveLength(turn.completionTokenIds!.length);
      }
    }
  });

  it("records reasoning content, and answers of several hundred tokens at a token rate", async () => {
    const long = Array.from({ length: 300 }, (_, i) => `w${i}`).join(" ");
    const r = await open({ kind: "vllm", tokensPerSecond: 2000, reply: () => ({ reasoning: "let me think", text: long }) });
    const res = await post(`${r.sc.url}/v1/chat/completions`, chatBody("go", { stream: true }), { "x-session-id": "long" });
    await res.text();
    const [turn] = await r.turns("long");
    expect(turn!.response?.reasoning).toBe("let me think");
    expect(turn!.response?.content).toBe(long);
    expect(turn!.completionTokenIds).toHaveLength(303);
  });
});

describe("forwarding", () => {
  it("forwards other paths verbatim: method, path, query, headers and body, both ways", async () => {
    const r = await open({ kind: "vllm" });
    const res = await fetch(`${r.sc.url}/v1/models?x=1&y=two`, { headers: { authorization: "Bearer abc", "x-custom": "1" } });
    expect(res.status).toBe(200);
    expect((await res.json()) as unknown).toMatchObject({ data: [{ owned_by: "vllm" }] });
    const seen = r.up.requests.at(-1)!;
    expect(seen.path).toBe("/v1/models");
    expect(seen.query.toString()).toBe("x=1&y=two");
    expect(seen.headers.authorization).toBe("Bearer abc");
    expect(seen.headers["x-custom"]).toBe("1");
    // Unknown POST endpoints too (the upstream says 404; so does the client).
    const other = await post(`${r.sc.url}/v1/embeddings`, '{"input":"x"}');
    expect(other.status).toBe(404);
    expect(r.up.requests.at(-1)!.rawBody.toString()).toBe('{"input":"x"}');
    expect(r.up.requests.at(-1)!.method).toBe("POST");
    // Non-/v1 paths (kind-specific endpoints) as well.
    expect((await fetch(`${r.sc.url}/version`)).status).toBe(200);
    expect(await r.sc.store.count("turns")).toBe(0);
  });

  it("keeps an upstream base path and accepts it with or without /v1", async () => {
    const r = await open({ kind: "openai" });
    const other = await startSidecarFor(r.up, path.join(r.dataDir, "second"), { upstream: r.up.url });
    try {
      const res = await post(`${other.url}/v1/chat/completions`, chatBody("hi"));
      expect(res.status).toBe(200);
      expect(r.up.requests.at(-1)!.path).toBe("/v1/chat/completions");
    } finally {
      await other.close();
    }
  });
});

describe("compressed answers", () => {
  it("passes gzip-compressed answers on as they are and records them decompressed", async () => {
    const zlib = await import("node:zlib");
    const http = await import("node:http");
    const events = ["role", "Hello", " there"].map((t, i) =>
      `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", choices: [{ index: 0, delta: i === 0 ? { role: "assistant", content: "" } : { content: t }, finish_reason: i === 2 ? "stop" : null }] })}\n\n`,
    );
    const server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c));
      req.on("end", () => {
        const stream = JSON.parse(body).stream === true;
        if (!stream) {
          const json = JSON.stringify({ id: "c2", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: "Hello whole" }, finish_reason: "stop" }] });
          res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" }).end(zlib.gzipSync(json));
          return;
        }
        res.writeHead(200, { "content-type": "text/event-stream", "content-encoding": "gzip" });
        const gz = zlib.createGzip();
        gz.pipe(res);
        for (const e of [...events, "data: [DONE]\n\n"]) {
          gz.write(e);
          gz.flush();
        }
        gz.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as { port: number }).port;
    const up = { url: `http://127.0.0.1:${port}` } as Parameters<typeof startSidecarFor>[0];
    const sc = await startSidecarFor(up, tmpDir(), { upstreamKind: "openai" });
    try {
      const raw = (url: string, body: unknown) =>
        new Promise<{ headers: Record<string, unknown>; data: Buffer }>((resolve, reject) => {
          const req = http.request(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", "accept-encoding": "gzip", "x-session-id": "gz" } }, (res) => {
            const parts: Buffer[] = [];
            res.on("data", (c: Buffer) => parts.push(c));
            res.on("end", () => resolve({ headers: res.headers, data: Buffer.concat(parts) }));
          });
          req.on("error", reject);
          req.end(JSON.stringify(body));
        });
      for (const stream of [true, false]) {
        const direct = await raw(up.url, chatBody("x", { stream }));
        const via = await raw(sc.url, chatBody("x", { stream }));
        expect(via.headers["content-encoding"]).toBe("gzip");
        expect(via.data.equals(direct.data)).toBe(true);
      }
      const turns = await sc.store.list("turns", { where: { sessionId: "gz" }, orderBy: "seq" });
      expect(turns.map((t) => t.response?.content)).toEqual(["Hello there", "Hello whole"]);
      expect(turns.every((t) => t.status === "ok")).toBe(true);
    } finally {
      await sc.close();
      server.close();
    }
  });
});

describe("tagging", () => {
  it("tags by clawloop headers, OpenClaw-RL headers and body fields, plugin metadata; untagged calls are side (with session inference off)", async () => {
    // Untagged calls are placed by session inference by default (test/e2e/inference*.test.ts).
    const r = await open({ kind: "vllm" }, { inferSessions: false });
    const url = `${r.sc.url}/v1/chat/completions`;
    await (await post(url, chatBody("a"), { ...tagged("s1", "run-a", 1), traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" })).text();
    await (await post(url, chatBody("b"), { "x-session-id": "rl-1", "x-turn-type": "main" })).text();
    await (await post(url, { ...chatBody("c"), session_id: "rl-2", turn_type: "main", session_done: true })).text();
    await (await post(url, { ...chatBody("d"), metadata: { openclaw_session_id: "s2", openclaw_run_id: "run-m", openclaw_call_id: "run-m:model:3", turn_type: "main" } })).text();
    await (await post(url, chatBody("e"), { "x-session-id": "rl-3" })).text();
    await (await post(url, chatBody("f"))).text();

    const [a] = await r.turns("s1");
    expect(a).toMatchObject({ id: "run-a:model:1", runId: "run-a", callId: "run-a:model:1", turnType: "main", placement: "tagged", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
    expect((await r.turns("rl-1"))[0]).toMatchObject({ turnType: "main", runId: null, placement: "tagged" });
    const [c] = await r.turns("rl-2");
    expect(c).toMatchObject({ turnType: "main" });
    expect(c!.request.params).not.toHaveProperty("session_id");
    // OpenClaw-RL's body fields are the proxy's: the model server never sees them.
    const sentC = JSON.parse(r.up.requests.find((q) => q.rawBody.toString().includes('"content":"c"'))!.rawBody.toString());
    expect(sentC).not.toHaveProperty("session_id");
    expect(sentC).not.toHaveProperty("turn_done");
    expect(sentC).not.toHaveProperty("session_done");
    const doneStates = await waitFor(async () => {
      const s = await r.sc.store.list("next_states", { where: { sessionId: "rl-2" } });
      return s.length ? s : null;
    }, "session_done next state");
    expect(doneStates[0]).toMatchObject({ kind: "session_end", turnId: c!.id });
    expect((await r.turns("s2"))[0]).toMatchObject({ runId: "run-m", callId: "run-m:model:3", turnType: "main" });
    // OpenClaw-RL's default for a session without a turn type is side.
    expect((await r.turns("rl-3"))[0]).toMatchObject({ turnType: "side" });
    const all = await r.sc.store.list("turns");
    const untagged = all.filter((t) => t.placement === "untagged");
    expect(untagged).toHaveLength(1);
    expect(untagged[0]).toMatchObject({ turnType: "side", seq: 0 });
    expect(untagged[0]!.sessionId).toBe(`untagged-${untagged[0]!.id}`);
  });

  it("marks calls matching configured side rules as side, and gives a repeated call id its own turn", async () => {
    const r = await open({ kind: "vllm" }, { sideRules: [{ model: null, systemPrompt: "^Generate a title", header: null, userPrompt: null }] });
    const url = `${r.sc.url}/v1/chat/completions`;
    await (await post(url, { model: "m", messages: [{ role: "system", content: "Generate a title for this chat" }, { role: "user", content: "x" }] }, tagged("s", "r", 1))).text();
    await (await post(url, chatBody("y"), tagged("s", "r", 1))).text();
    const turns = await r.turns("s");
    expect(turns.map((t) => [t.id, t.turnType, t.seq])).toEqual([
      ["r:model:1", "side", 0],
      ["r:model:1#2", "main", 1],
    ]);
  });

  it("continues each session's seq after a restart", async () => {
    const r = await open({ kind: "vllm" });
    for (let i = 1; i <= 3; i++) await (await post(`${r.sc.url}/v1/chat/completions`, chatBody(`m${i}`), tagged("s", "run-1", i))).text();
    await r.sc.close();
    r.sc = await startSidecarFor(r.up, r.dataDir);
    for (let i = 1; i <= 2; i++) await (await post(`${r.sc.url}/v1/chat/completions`, chatBody(`n${i}`), tagged("s", "run-2", i))).text();
    expect((await r.turns("s")).map((t) => `${t.runId}/${t.seq}`)).toEqual(["run-1/0", "run-1/1", "run-1/2", "run-2/3", "run-2/4"]);
  });
});

describe("next-state events", () => {
  const ev = (id: string, extra: Record<string, unknown>) => ({ id, type: "next_state", sessionId: "s", at: "2026-11-21T10:00:00Z", ...extra });

  it("links events to a call, to a run's last call, and to the session's last main turn; idempotent by id", async () => {
    const r = await open({ kind: "vllm" });
    const url = `${r.sc.url}/v1/chat/completions`;
    await (await post(url, chatBody("CALLTOOL:ls {}"), tagged("s", "run-a", 1))).text();
    await (await post(url, chatBody("ok"), tagged("s", "run-a", 2))).text();
    await (await post(url, chatBody("side"), tagged("s", "run-x", 1, "side"))).text();
    const batch = [
      ev("e1", { kind: "tool_result", forRunId: "run-a", forCallId: "run-a:model:1", toolName: "ls", toolCallId: "c1", text: "a b", exitCode: 0 }),
      ev("e2", { kind: "user_message", forRunId: "run-a", text: "no, check the file first" }),
      ev("e3", { kind: "feedback", score: -1, text: "bad" }),
      { id: "e4", type: "session_end", sessionId: "s" },
    ];
    const res = await r.api("/clawloop/v1/events", { method: "POST", body: JSON.stringify(batch) });
    expect(res.status).toBe(200);
    const out = (await res.json()) as { stored: number; results: { id: string; turnId: string | null }[] };
    expect(out.stored).toBe(4);
    expect(out.results.map((x) => [x.id, x.turnId])).toEqual([
      ["e1", "run-a:model:1"],
      ["e2", "run-a:model:2"],
      ["e3", "run-a:model:2"],
      ["e4", "run-a:model:2"],
    ]);
    // A retry of the same batch (and a duplicate inside a batch) stores nothing twice.
    const again = (await (await r.api("/clawloop/v1/events", { method: "POST", body: JSON.stringify([...batch, batch[0]]) })).json()) as { stored: number; duplicates: number };
    expect(again).toMatchObject({ stored: 0, duplicates: 5 });
    expect(await r.sc.store.count("next_states")).toBe(4);

    const view = (await (await r.api("/clawloop/v1/turns?session=s")).json()) as { turns: { id: string; nextStates: { id: string }[] }[] };
    expect(view.turns.map((t) => [t.id, t.nextStates.map((s) => s.id)])).toEqual([
      ["run-a:model:1", ["e1"]],
      ["run-a:model:2", ["e2", "e3", "e4"]],
      ["run-x:model:1", []],
    ]);
  });

  it("keeps events for unknown turns and links them when the turn arrives, also across a restart", async () => {
    const r = await open({ kind: "vllm" });
    const early = [ev("u1", { kind: "tool_error", forCallId: "run-b:model:1", text: "ENOENT" }), ev("u2", { kind: "user_message", forRunId: "run-c", text: "thanks" })];
    const res = (await (await r.api("/clawloop/v1/events", { method: "POST", body: JSON.stringify(early) })).json()) as { results: { turnId: string | null }[] };
    expect(res.results.map((x) => x.turnId)).toEqual([null, null]);
    // The turn for u1 arrives in this process.
    await (await post(`${r.sc.url}/v1/chat/completions`, chatBody("x"), tagged("s", "run-b", 1))).text();
    await waitFor(async () => (await r.sc.store.get("next_states", "u1"))?.turnId === "run-b:model:1", "u1 linked");
    // The turn for u2 arrives after a restart.
    await r.sc.close();
    r.sc = await startSidecarFor(r.up, r.dataDir);
    expect((await r.sc.store.get("next_states", "u2"))?.turnId).toBeNull();
    await (await post(`${r.sc.url}/v1/chat/completions`, chatBody("y"), tagged("s", "run-c", 1))).text();
    await (await post(`${r.sc.url}/v1/chat/completions`, chatBody("z"), tagged("s", "run-c", 2))).text();
    // Linked to the run's last call.
    await waitFor(async () => (await r.sc.store.get("next_states", "u2"))?.turnId === "run-c:model:2", "u2 linked to the run's last call");
    // Duplicates are still recognised after the restart.
    const again = (await (await r.api("/clawloop/v1/events", { method: "POST", body: JSON.stringify(early) })).json()) as { duplicates: number };
    expect(again.duplicates).toBe(2);
  });

  it("answers bad batches clearly and keeps the good events of a mixed one", async () => {
    const r = await open({ kind: "vllm" });
    expect((await r.api("/clawloop/v1/events", { method: "POST", body: "{not json" })).status).toBe(400);
    expect((await r.api("/clawloop/v1/events", { method: "POST", body: "{}" })).status).toBe(400);
    const allBad = await r.api("/clawloop/v1/events", { method: "POST", body: JSON.stringify([{ id: "x", type: "next_state", kind: "nope", sessionId: "s" }]) });
    expect(allBad.status).toBe(400);
    const mixed = await r.api("/clawloop/v1/events", {
      method: "POST",
      body: JSON.stringify([ev("ok1", { kind: "user_message", text: "hi" }), { id: "bad", type: "next_state", sessionId: "s" }]),
    });
    expect(mixed.status).toBe(200);
    const out = (await mixed.json()) as { stored: number; invalid: { index: number; id: string; error: string }[] };
    expect(out.stored).toBe(1);
    expect(out.invalid).toHaveLength(1);
    expect(out.invalid[0]).toMatchObject({ index: 1, id: "bad" });
    expect(out.invalid[0]!.error).toMatch(/kind/);
  });

  it("takes explicit feedback on the session's last main turn or a named run", async () => {
    const r = await open({ kind: "vllm" });
    const url = `${r.sc.url}/v1/chat/completions`;
    await (await post(url, chatBody("a"), tagged("s", "run-1", 1))).text();
    await (await post(url, chatBody("b"), tagged("s", "run-2", 1))).text();
    await (await post(url, chatBody("c"), tagged("s", "run-3", 1, "side"))).text();
    const good = (await (await r.api("/clawloop/v1/feedback", { method: "POST", body: JSON.stringify({ sessionId: "s", score: 1, text: "nice" }) })).json()) as { turnId: string; id: string };
    expect(good.turnId).toBe("run-2:model:1");
    const bad = (await (await r.api("/clawloop/v1/feedback", { method: "POST", body: JSON.stringify({ sessionId: "s", score: -1, forRunId: "run-1", id: "fb-1" }) })).json()) as { turnId: string };
    expect(bad.turnId).toBe("run-1:model:1");
    expect(await r.sc.store.get("next_states", "fb-1")).toMatchObject({ kind: "feedback", score: -1, source: "api" });
    expect((await r.api("/clawloop/v1/feedback", { method: "POST", body: JSON.stringify({ sessionId: "s", score: 2 }) })).status).toBe(400);
    expect((await r.api("/clawloop/v1/feedback", { method: "POST", body: JSON.stringify({ sessionId: "nobody", score: 1 }) })).status).toBe(404);
  });
});

describe("control API", () => {
  it("needs the bearer token from <data>/token (created 0600)", async () => {
    const r = await open({ kind: "vllm" });
    const file = path.join(r.dataDir, "token");
    expect(fs.readFileSync(file, "utf8").trim()).toBe(r.sc.token);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect((await fetch(`${r.sc.url}/clawloop/v1/status`)).status).toBe(401);
    expect((await fetch(`${r.sc.url}/clawloop/v1/status`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await r.api("/clawloop/v1/status")).status).toBe(200);
    expect((await r.api("/clawloop/v1/nothing")).status).toBe(404);
    expect((await r.api("/clawloop/v1/status", { method: "POST" })).status).toBe(405);
    expect(r.sc.host).toBe("127.0.0.1");
  });

  it("reports status, lists recent turns and sessions, and serves Prometheus metrics", async () => {
    const r = await open({ kind: "llamacpp" });
    for (let i = 1; i <= 3; i++) await (await post(`${r.sc.url}/v1/chat/completions`, chatBody(`q${i}`, { stream: true }), tagged(`s${i % 2}`, `run-${i}`, 1))).text();
    await (await post(`${r.sc.url}/v1/chat/completions`, chatBody("x"), { "x-session-id": "s1" })).text();
    const status = (await (await r.api("/clawloop/v1/status")).json()) as Record<string, any>;
    expect(status.upstream).toMatchObject({ kind: "llamacpp", kindSource: "detected", health: { ok: true, status: 200 } });
    expect(status.store).toMatchObject({ ok: true, lance: "ok", log: "ok" });
    expect(status.counts).toMatchObject({ turns: 4, turnsSinceStart: 4, turnsByStatus: { ok: 4 }, inflight: 0 });

    const recent = (await (await r.api("/clawloop/v1/turns?limit=2")).json()) as { turns: { id: string; content: string }[] };
    expect(recent.turns).toHaveLength(2);
    expect(recent.turns[0]!.content).toBe("echo: x");
    const sessions = (await (await r.api("/clawloop/v1/sessions")).json()) as { sessions: { sessionId: string; turns: number }[]; partial: boolean };
    expect(sessions.sessions.map((s) => [s.sessionId, s.turns])).toEqual([
      ["s1", 3],
      ["s0", 1],
    ]);
    expect(sessions.partial).toBe(false);
    // Full turns carry their next states (one query for all of them).
    await r.api("/clawloop/v1/events", { method: "POST", body: JSON.stringify([{ id: "e-x", type: "next_state", kind: "user_message", sessionId: "s1", forRunId: "run-3", text: "thanks" }]) });
    const full = (await (await r.api("/clawloop/v1/turns?limit=4&full=1")).json()) as { turns: { id: string; nextStates: { id: string }[] }[] };
    expect(full.turns).toHaveLength(4);
    expect(full.turns.find((t) => t.id === "run-3:model:1")?.nextStates.map((n) => n.id)).toEqual(["e-x"]);
    expect(full.turns.filter((t) => t.id !== "run-3:model:1").every((t) => t.nextStates.length === 0)).toBe(true);
    const one = (await (await r.api(`/clawloop/v1/turns/${encodeURIComponent("run-2:model:1")}`)).json()) as { sessionId: string };
    expect(one.sessionId).toBe("s0");
    expect((await r.api("/clawloop/v1/turns?limit=0")).status).toBe(400);

    const metrics = await (await fetch(`${r.sc.url}/metrics`)).text();
    expect(metrics).toMatch(/clawloop_sidecar_requests_total\{endpoint="chat",status="200"\} 4/);
    expect(metrics).toMatch(/clawloop_sidecar_ttfb_seconds_count\{endpoint="chat"\} 4/);
    expect(metrics).toMatch(/clawloop_sidecar_turns_total\{status="ok",turn_type="main"\} 3/);
    expect(metrics).toMatch(/clawloop_sidecar_store_healthy 1/);
    expect(metrics).toMatch(/clawloop_sidecar_store_pending_rows\{table="turns"\}/);
    expect(metrics).toMatch(/clawloop_sidecar_upstream_healthy 1/);
  });

  it("lets other parts mount their own endpoints", async () => {
    const r = await open({ kind: "vllm" });
    r.sc.control.add("GET", "/clawloop/v1/adapters/:id", (c) => ({ id: c.params.id }));
    expect(await (await r.api("/clawloop/v1/adapters/v000001")).json()).toEqual({ id: "v000001" });
  });
});

describe("upstream kind", () => {
  it("is taken from --upstream-kind without probing, and detected again once an unreachable upstream answers", async () => {
    const r = await open({ kind: "ollama" }, { upstreamKind: "vllm" });
    expect(r.sc.upstream.kind).toBe("vllm");
    expect(r.up.requests.filter((q) => q.method === "GET")).toHaveLength(0);
  });
});

describe("privacy", () => {
  it("never stores the client's Authorization header and masks secrets in recorded text", async () => {
    const r = await open({ kind: "vllm", reply: () => "your key is sk-proj-RESPONSESECRET0123456789abcdef" }, {}, {});
    const clientKey = "sk-live-CLIENTKEYAAAAAAAAAAAAAAAAAAAAAAAA";
    const body = chatBody("my github token is ghp_0123456789abcdefghijklmnopqrstuvwxyzAB, keep it");
    await (await post(`${r.sc.url}/v1/chat/completions`, body, { ...tagged("p", "run-p", 1), authorization: `Bearer ${clientKey}` })).text();
    await r.api("/clawloop/v1/events", {
      method: "POST",
      body: JSON.stringify([{ id: "p1", type: "next_state", kind: "user_message", sessionId: "p", text: "use AKIAIOSFODNN7EXAMPLE instead" }]),
    });
    const [turn] = await r.turns("p");
    expect(turn!.request.messages![1]!.content).toBe("my github token is [MASKED:github-token], keep it");
    expect(turn!.response!.content).toBe("your key is [MASKED:openai-key]");
    // Ids would spell the secrets out: they are not kept for masked text.
    expect(turn!.promptTokenIds).toBeNull();
    expect(turn!.completionTokenIds).toBeNull();
    expect((await r.sc.store.get("next_states", "p1"))!.text).toBe("use [MASKED:aws-access-key] instead");
    await r.sc.close();
    // Nothing on disk (log or LanceDB files) holds a secret or the client's key.
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(r.dataDir);
    for (const f of files) {
      const data = fs.readFileSync(f);
      for (const secret of [clientKey, "ghp_0123456789", "RESPONSESECRET", "AKIAIOSFODNN7EXAMPLE"]) {
        expect(data.includes(Buffer.from(secret)), `${secret} in ${f}`).toBe(false);
      }
    }
    r.sc = await startSidecarFor(r.up, r.dataDir);
  });
});

for (const host of ["process", "worker"] as const) {
  describe(`the store in a ${host} of its own`, () => {
    it("records, captures and masks the same way", async () => {
      const r = await open(
        { kind: "vllm", reply: (q) => (q.lastUserText.startsWith("token") ? "here: sk-proj-RESPONSESECRET0123456789abcdef" : "nothing secret") },
        {},
        { storeHost: host },
      );
      expect(r.sc.store.host).toBe(host);
      const body = chatBody("token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", { stream: true });
      const direct = await (await post(`${r.up.url}/v1/chat/completions`, body)).text();
      const via = await (await post(`${r.sc.url}/v1/chat/completions`, body, tagged("w", "run-w", 1))).text();
      expect(via).toBe(direct);
      await (await post(`${r.sc.url}/v1/chat/completions`, chatBody("plain question"), tagged("w", "run-w", 2))).text();
      const [masked, plain] = await r.turns("w");
      expect(masked!.request.messages![1]!.content).toBe("token [MASKED:github-token]");
      expect(masked!.response!.content).toBe("here: [MASKED:openai-key]");
      expect(masked!.completionTokenIds).toBeNull();
      expect(plain!.completionTokenIds).toEqual(r.up.requests.at(-1)!.sent!.completionTokenIds);
      expect(plain!.seq).toBe(1);
      const status = (await (await r.api("/clawloop/v1/status")).json()) as Record<string, any>;
      expect(status.store).toMatchObject({ ok: true, host });
      expect(status.memory.storeHeapUsedMb).toBeGreaterThan(0);
      if (host === "process") expect(status.memory.storeRssMb).toBeGreaterThan(0);
    });
  });
}

// Only for the process: stopping a worker thread in the middle of LanceDB's native work can take the
// whole process down (one more reason the store runs in a process of its own by default).
describe("a store process that stops", () => {
  it("restarts a store process that stops, resends what it had not acknowledged, and duplicates nothing", async () => {
    const r = await open({ kind: "vllm", tokensPerSecond: 200 }, {}, { storeHost: "process" });
    const store = r.sc.store as RemoteRecordStore;
    const calls = Array.from({ length: 12 }, (_, i) =>
      post(`${r.sc.url}/v1/chat/completions`, chatBody(`q${i}`, { stream: true }), tagged("crash", `run-${i}`, 1)).then((res) => res.text()),
    );
    await new Promise((res) => setTimeout(res, 30));
    await store.restart();
    const answers = await Promise.all(calls);
    expect(answers.every((a) => a.includes("data: [DONE]"))).toBe(true);
    await waitFor(async () => (await r.turns("crash")).length === 12, "all 12 turns after the restart", 30_000);
    expect(store.restartCount).toBe(1);
    await store.flush();
    const turns = await r.turns("crash");
    expect(new Set(turns.map((t) => t.id)).size).toBe(12);
    expect(turns.map((t) => t.seq).sort((a, b) => a - b)).toEqual([...Array(12).keys()]);

    // Writes still queued in the stopped store are resent to the next one.
    const job = (i: number) => ({
      turnId: `direct-${i}`,
      sessionId: "direct",
      runId: null,
      callId: null,
      turnType: "side" as const,
      seq: i,
      placement: "untagged" as const,
      parentTurnId: null,
      endpoint: "chat" as const,
      model: "m",
      adapter: null,
      rawRequest: Buffer.from(JSON.stringify(chatBody(`d${i}`))),
      requestError: null,
      startedAt: new Date().toISOString(),
      ttfbMs: 1,
      totalMs: 2,
      upstreamStatus: 200,
      status: "ok" as const,
      error: null,
      assembled: null,
      traceparent: null,
    });
    const writes = Array.from({ length: 50 }, (_, i) => store.putTurn(job(i)));
    await store.restart();
    expect((await Promise.all(writes)).map((ref) => ref.id)).toEqual(Array.from({ length: 50 }, (_, i) => `direct-${i}`));
    expect(store.restartCount).toBe(2);
    await store.flush();
    const direct = await r.turns("direct");
    expect(direct).toHaveLength(50);
    expect(direct[49]!.request.messages![1]!.content).toBe("d49");
  });
});
