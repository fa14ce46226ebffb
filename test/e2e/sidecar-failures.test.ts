// The sidecar's failure behaviour (issue 2): whatever breaks, the client sees what it would have
// seen without clawloop, traffic keeps flowing, and the call is recorded with what happened.
import http from "node:http";
import { describe, expect, it } from "vitest";
import { nodeIO, Store, type LogIO } from "../../core/index.js";
import { InlineRecordStore, SecretMasker } from "../../sidecar/index.js";
import type { TurnJob, TurnRef } from "../../sidecar/turns.js";
import { startScriptedUpstream } from "../../fixtures/upstream/index.js";
import { chatBody, openStream, post, rigsClosedAfterEach, startSidecarFor, tagged, tmpDir, waitFor, type Rig } from "./sidecar-helpers.js";

const open = rigsClosedAfterEach();

const turnOf = (r: Rig, session: string) =>
  waitFor(async () => (await r.turns(session))[0], `the turn of session ${session}`);

describe("upstream errors", () => {
  it("passes 4xx/5xx through unchanged and records upstream_error", async () => {
    for (const kind of ["vllm", "llamacpp", "sglang"] as const) {
      const r = await open({ kind, reply: (q) => (q.lastUserText === "a" ? { status: 400, errorMessage: "max_tokens too large" } : { status: 503, errorMessage: "overloaded" }) });
      for (const [text, status] of [["a", 400], ["b", 503]] as const) {
        for (const stream of [true, false]) {
          const body = chatBody(text, stream ? { stream: true } : {});
          const direct = await post(`${r.up.url}/v1/chat/completions`, body);
          const via = await post(`${r.sc.url}/v1/chat/completions`, body, { "x-session-id": `${kind}-${text}-${stream}` });
          expect(via.status).toBe(status);
          expect(via.headers.get("content-type")).toBe(direct.headers.get("content-type"));
          expect(await via.text()).toBe(await direct.text());
          const turn = await turnOf(r, `${kind}-${text}-${stream}`);
          expect(turn).toMatchObject({ status: "upstream_error", upstreamStatus: status, response: null });
          expect(turn.error).toContain(text === "a" ? "max_tokens too large" : "overloaded");
        }
      }
    }
  });

  it("forwards a mid-stream error event as is and records upstream_error with the partial answer", async () => {
    const r = await open({ kind: "vllm", reply: () => ({ text: "one two three four five", errorAfter: 2, errorMessage: "CUDA out of memory" }) });
    const body = chatBody("x", { stream: true });
    const direct = await (await post(`${r.up.url}/v1/chat/completions`, body)).text();
    const via = await (await post(`${r.sc.url}/v1/chat/completions`, body, { "x-session-id": "mid" })).text();
    expect(via).toBe(direct);
    expect(via).toContain("CUDA out of memory");
    const turn = await turnOf(r, "mid");
    expect(turn).toMatchObject({ status: "upstream_error", upstreamStatus: 200, error: "CUDA out of memory" });
    expect(turn.response?.content).toBe("one two");
  });

  it("answers 502 when the upstream is unreachable, records it, and recovers when the upstream is back", async () => {
    const up = await startScriptedUpstream({ kind: "vllm" });
    const port = up.port;
    await up.close();
    const dataDir = tmpDir();
    const sc = await startSidecarFor({ ...up, url: `http://127.0.0.1:${port}` }, dataDir, {}, { detectTimeoutMs: 500 });
    try {
      expect(sc.upstream.kind).toBeNull();
      const res = await post(`${sc.url}/v1/chat/completions`, chatBody("x"), { "x-session-id": "down" });
      expect(res.status).toBe(502);
      expect(((await res.json()) as { error: { type: string; message: string } }).error).toMatchObject({ type: "upstream_error" });
      const [turn] = await waitFor(async () => {
        const t = await sc.store.list("turns", { where: { sessionId: "down" } });
        return t.length ? t : null;
      }, "the failed turn");
      expect(turn).toMatchObject({ status: "upstream_error", upstreamStatus: null });
      expect(turn!.error).toMatch(/unreachable/);
      const status = (await (await fetch(`${sc.url}/clawloop/v1/status`, { headers: { authorization: `Bearer ${sc.token}` } })).json()) as Record<string, any>;
      expect(status.upstream).toMatchObject({ kind: null, kindSource: "unknown", health: { ok: false } });
      // Back on the same port: the next call goes through, and the kind is found.
      const back = await startScriptedUpstream({ kind: "vllm", port });
      try {
        const ok = await post(`${sc.url}/v1/chat/completions`, chatBody("y"), { "x-session-id": "up" });
        expect(ok.status).toBe(200);
        await ok.text();
        await sc.upstream.detect();
        expect(sc.upstream.kind).toBe("vllm");
      } finally {
        await back.close();
      }
    } finally {
      await sc.close();
    }
  });
});

describe("cut streams and aborts", () => {
  it("mirrors an upstream that cuts a stream mid-way, and records the partial turn as upstream_cut", async () => {
    const r = await open({ kind: "vllm", reply: () => ({ text: "alpha beta gamma delta epsilon", cutAfter: 3 }) });
    for (const stream of [true, false]) {
      const session = `cut-${stream}`;
      const body = chatBody("x", stream ? { stream: true } : {});
      const direct = await (await openStream(`${r.up.url}/v1/chat/completions`, body)).body;
      const { data, outcome } = await (await openStream(`${r.sc.url}/v1/chat/completions`, body, { "x-session-id": session })).body;
      expect(direct.outcome).toBe("cut");
      expect(outcome).toBe("cut");
      // A stream: exactly what the upstream sent before the cut. A body: at most that (a broken body
      // with capture fields in it is not passed on).
      if (stream) expect(data.toString()).toBe(direct.data.toString());
      else expect(direct.data.toString().startsWith(data.toString())).toBe(true);
      const got = [data];
      const turn = await turnOf(r, session);
      expect(turn.status).toBe("upstream_cut");
      expect(turn.error).toMatch(/cut/);
      if (stream) {
        // The role chunk and two tokens arrived before the cut, and the client got exactly those.
        expect(Buffer.concat(got).toString().match(/^data: /gm)).toHaveLength(3);
        expect(turn.response?.content).toBe("alpha beta");
      }
    }
  });

  it("aborts the upstream request when the client goes away mid-stream, and records client_aborted", async () => {
    const r = await open({ kind: "vllm", tokensPerSecond: 50, reply: () => Array.from({ length: 200 }, (_, i) => `t${i}`).join(" ") });
    const { req, first } = await openStream(`${r.sc.url}/v1/chat/completions`, chatBody("x", { stream: true }), tagged("gone", "run-g", 1));
    await first;
    req.destroy();
    const upstreamReq = await waitFor(() => r.up.requests.find((q) => q.endpoint === "chat"), "the upstream request");
    await upstreamReq.done;
    expect(upstreamReq.aborted).toBe(true);
    expect(upstreamReq.sent!.events).toBeLessThan(50);
    const turn = await turnOf(r, "gone");
    expect(turn).toMatchObject({ status: "client_aborted", upstreamStatus: 200, turnType: "main" });
  });
});

describe("bad requests", () => {
  it("forwards malformed JSON untouched and records it as side traffic, never as a training turn", async () => {
    const r = await open({ kind: "vllm" });
    const raw = '{"model": "m", "messages": [ {"role": "user", "content": "hi"} ';
    const res = await post(`${r.sc.url}/v1/chat/completions`, raw, tagged("bad", "run-b", 1));
    const direct = await post(`${r.up.url}/v1/chat/completions`, raw);
    expect(res.status).toBe(direct.status);
    expect(await res.text()).toBe(await direct.text());
    expect(r.up.requests.filter((q) => q.endpoint === "chat")[0]!.rawBody.toString()).toBe(raw);
    const turn = await turnOf(r, "bad");
    expect(turn).toMatchObject({ turnType: "side", status: "upstream_error", request: { params: {} } });
    expect(turn.error).toMatch(/not valid JSON/);
  });

  it("forwards a request of the wrong shape untouched (no capture fields) as side", async () => {
    const r = await open({ kind: "vllm" });
    const raw = JSON.stringify({ model: "m", messages: "hello" });
    await (await post(`${r.sc.url}/v1/chat/completions`, raw, tagged("shape", "run-s", 1))).text();
    expect(r.up.requests.filter((q) => q.endpoint === "chat")[0]!.rawBody.toString()).toBe(raw);
    const turn = await turnOf(r, "shape");
    expect(turn.turnType).toBe("side");
    expect(turn.error).toMatch(/no messages array/);
  });

  it("forwards unknown fields; the upstream decides (OpenAI rejects them, vLLM accepts them)", async () => {
    const body = chatBody("x", { frobnicate: { deep: [1, 2] } });
    const openai = await open({ kind: "openai" });
    const rejected = await post(`${openai.sc.url}/v1/chat/completions`, body, { "x-session-id": "u1" });
    expect(rejected.status).toBe(400);
    expect(await rejected.text()).toContain("Unrecognized request argument supplied: frobnicate");
    expect(openai.up.requests.at(-1)!.rawBody.toString()).toBe(JSON.stringify(body));
    expect(await turnOf(openai, "u1")).toMatchObject({ status: "upstream_error", upstreamStatus: 400 });

    const vllm = await open({ kind: "vllm" });
    await (await post(`${vllm.sc.url}/v1/chat/completions`, body, { "x-session-id": "u2" })).text();
    expect(JSON.parse(vllm.up.requests.at(-1)!.rawBody.toString())).toMatchObject({ frobnicate: { deep: [1, 2] } });
    expect((await turnOf(vllm, "u2")).request.params).toMatchObject({ frobnicate: { deep: [1, 2] } });
  });
});

describe("one slow or huge request does not stall the others", () => {
  it("streams an oversized body through unrecorded while other calls complete", async () => {
    const r = await open({ kind: "vllm" }, { maxRecordBytes: 64 * 1024 });
    const big = Buffer.from(JSON.stringify(chatBody("x".repeat(1024 * 1024))));
    const bigReq = http.request(`${r.sc.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", "content-length": big.length } });
    const bigRes = new Promise<{ status: number; body: string }>((resolve, reject) => {
      bigReq.on("response", (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
      });
      bigReq.on("error", reject);
    });
    // Half the body now; the rest only after the other calls are done.
    bigReq.write(big.subarray(0, big.length / 2));
    await waitFor(() => r.sc.metrics.unrecorded.get().then((m) => m.values.some((v) => v.labels.reason === "oversized")), "the oversized body to be noticed");
    for (let i = 0; i < 5; i++) {
      const res = await post(`${r.sc.url}/v1/chat/completions`, chatBody(`small ${i}`), { "x-session-id": "small" });
      expect(res.status).toBe(200);
      await res.text();
    }
    await waitFor(async () => (await r.sc.store.count("turns")) === 5, "the 5 small calls to be counted");
    bigReq.end(big.subarray(big.length / 2));
    const done = await bigRes;
    expect(done.status).toBe(200);
    expect(done.body).toContain("echo: xxxx");
    // The upstream got the body byte for byte, and no turn was recorded for it.
    expect(r.up.requests.at(-1)!.rawBody.equals(big)).toBe(true);
    expect(await r.sc.store.count("turns")).toBe(5);
  });

  it("keeps serving others while a client reads its stream slowly, and still records that stream fully", async () => {
    const words = Array.from({ length: 20_000 }, (_, i) => `w${i}-${"y".repeat(200)}`);
    const r = await open({ kind: "vllm", reply: (q) => (q.lastUserText === "slow" ? words.join(" ") : "fast answer") });
    const slow = await openStream(`${r.sc.url}/v1/chat/completions`, chatBody("slow", { stream: true }), { "x-session-id": "slow" }, true);
    for (let i = 0; i < 5; i++) {
      const res = await post(`${r.sc.url}/v1/chat/completions`, chatBody("quick", { stream: true }), { "x-session-id": "quick" });
      expect(await res.text()).toContain("[DONE]");
    }
    const quick = await r.turns("quick");
    expect(quick.map((t) => t.response?.content)).toEqual(Array(5).fill("fast answer"));
    // The slow reader holds the stream back (backpressure), rather than the sidecar buffering it.
    const upstreamReq = r.up.requests.find((q) => q.lastUserText === "slow")!;
    expect(upstreamReq.sent!.events).toBeLessThan(words.length);
    slow.res.resume();
    const { data, outcome } = await slow.body;
    expect(outcome).toBe("end");
    expect(data.toString()).toContain("data: [DONE]");
    const turn = await turnOf(r, "slow");
    expect(turn.status).toBe("ok");
    expect(turn.response?.content).toBe(words.join(" "));
    expect(turn.completionTokenIds).toHaveLength(words.length);
  });
});

describe("store failures", () => {
  it("keeps traffic flowing while LanceDB fails; rows wait in the log, arrive on recovery, and /status says so", async () => {
    let failing = true;
    const r = await open({ kind: "vllm" }, {}, {
      store: {
        flushIntervalMs: 50,
        beforeLanceWrite: () => {
          if (failing) throw new Error("simulated LanceDB outage");
        },
      },
    });
    for (let i = 1; i <= 4; i++) {
      const res = await post(`${r.sc.url}/v1/chat/completions`, chatBody(`q${i}`, { stream: true }), tagged("s", "run-1", i));
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("[DONE]");
    }
    await r.api("/clawloop/v1/events", { method: "POST", body: JSON.stringify([{ id: "e1", type: "next_state", kind: "user_message", sessionId: "s", forRunId: "run-1", text: "ok" }]) });
    const down = (await waitFor(async () => {
      const s = (await (await r.api("/clawloop/v1/status")).json()) as Record<string, any>;
      return s.store.lance === "failing" ? s : null;
    }, "status to report the outage")) as Record<string, any>;
    expect(down.store).toMatchObject({ ok: false, lance: "failing", log: "ok", waitingInLog: 5 });
    expect(down.store.lastError).toMatch(/simulated LanceDB outage/);
    expect(down.counts.turns).toBe(4);
    expect(await (await fetch(`${r.sc.url}/metrics`)).text()).toMatch(/clawloop_sidecar_store_healthy 0/);
    // Reads still see everything (from the log's rows in memory).
    expect((await r.turns("s")).map((t) => t.seq)).toEqual([0, 1, 2, 3]);
    failing = false;
    await waitFor(async () => {
      const s = (await (await r.api("/clawloop/v1/status")).json()) as Record<string, any>;
      return s.store.ok && s.store.waitingInLog === 0;
    }, "the store to recover");
    await r.sc.close();
    // Everything reached LanceDB: a plain reader (no log replay of its own) sees it all.
    const { Store } = await import("../../core/index.js");
    const reader = await Store.open({ dataDir: r.dataDir });
    expect(await reader.count("turns")).toBe(4);
    expect((await reader.get("next_states", "e1"))?.turnId).toBe("run-1:model:4");
    await reader.close();
    r.sc = await startSidecarFor(r.up, r.dataDir);
  });

  it("answers without waiting for a store that does not acknowledge, and records the turn once it does", async () => {
    // A store host that holds every write until released (as one that is restarting would).
    class Held extends InlineRecordStore {
      readonly held: (() => void)[] = [];
      override putTurn(job: TurnJob): Promise<TurnRef> {
        return new Promise<void>((r) => this.held.push(r)).then(() => super.putTurn(job));
      }
    }
    const dataDir = tmpDir();
    const store = new Held(await Store.open({ dataDir, writes: ["turns", "next_states"] }), new SecretMasker(true));
    const r = await open({ kind: "vllm" }, { recordWaitMs: 50 }, { dataDir, recordStore: store });
    const res = await post(`${r.sc.url}/v1/chat/completions`, chatBody("x", { stream: true }), tagged("held", "run-h", 1));
    expect(await res.text()).toContain("data: [DONE]");
    // Answered while the write is still held back.
    expect(store.held).toHaveLength(1);
    expect(await r.sc.store.count("turns")).toBe(0);
    expect(await (await fetch(`${r.sc.url}/metrics`)).text()).toMatch(/clawloop_sidecar_record_wait_timeouts_total 1/);
    store.held[0]!();
    const turn = await turnOf(r, "held");
    expect(turn).toMatchObject({ id: "run-h:model:1", status: "ok" });
  });

  it("keeps traffic flowing when the disk is full (the log cannot be written), and logs the rows once it can", async () => {
    let full = false;
    const io: LogIO = {
      ...nodeIO,
      writeSync: (fd, buf) => {
        if (full) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
        return nodeIO.writeSync(fd, buf);
      },
    };
    const r = await open({ kind: "vllm" }, {}, { store: { io, flushIntervalMs: 50, beforeLanceWrite: () => {
      if (full) throw new Error("ENOSPC: no space left on device");
    } } });
    full = true;
    for (let i = 1; i <= 3; i++) {
      const res = await post(`${r.sc.url}/v1/chat/completions`, chatBody(`q${i}`), tagged("disk", "run-d", i));
      expect(res.status).toBe(200);
      await res.text();
    }
    const s = (await (await r.api("/clawloop/v1/status")).json()) as Record<string, any>;
    expect(s.store).toMatchObject({ ok: false, log: "failing" });
    expect(s.store.tables.turns.unlogged).toBe(3);
    full = false;
    await waitFor(async () => {
      const st = (await (await r.api("/clawloop/v1/status")).json()) as Record<string, any>;
      return st.store.ok && st.store.waitingInLog === 0;
    }, "the disk to recover");
    expect(await r.sc.store.count("turns")).toBe(3);
  });
});
