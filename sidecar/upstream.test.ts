// Upstream.send against a server that, like llama-server after a streamed answer, closes its
// connection after answering while announcing keep-alive: the next call on that connection must
// be sent again on a fresh one, and nothing may reach the server twice. (The real llama-server
// case is in test/e2e/llama-server.test.ts.)
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Upstream } from "./upstream.js";

interface FakeServer {
  url: string;
  /** Requests answered (the first on each connection). */
  answered: string[];
  /** Requests that arrived on a connection already answered, and got a reset. */
  refused: number;
  connections: number;
  close(): Promise<void>;
}

/** `mode` "close-after-answer": answers the first request of a connection, then resets it when more comes; "reset": resets every connection. */
function fakeServer(mode: "close-after-answer" | "reset"): Promise<FakeServer> {
  const state = { answered: [] as string[], refused: 0, connections: 0 };
  const server = net.createServer((socket) => {
    state.connections++;
    let answered = false;
    let buffer = "";
    socket.on("data", (chunk) => {
      if (mode === "reset" || answered) {
        if (answered) state.refused++;
        socket.resetAndDestroy();
        return;
      }
      buffer += chunk.toString("latin1");
      const end = buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(buffer.slice(0, end))?.[1] ?? 0);
      if (buffer.length < end + 4 + length) return;
      answered = true;
      const body = buffer.slice(end + 4, end + 4 + length);
      state.answered.push(body);
      const text = JSON.stringify({ got: body });
      socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${text.length}\r\nKeep-Alive: timeout=5, max=100\r\n\r\n${text}`);
    });
    socket.on("error", () => undefined);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        get answered() {
          return state.answered;
        },
        get refused() {
          return state.refused;
        },
        get connections() {
          return state.connections;
        },
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}

function call(up: Upstream, body: string): Promise<{ status: number; text: string } | { error: string }> {
  return new Promise((resolve) => {
    const data = Buffer.from(body);
    const req = up.send("POST", "/v1/chat/completions", { host: up.host, "content-type": "application/json", "content-length": String(data.length) }, data);
    req.on("response", (res: http.IncomingMessage) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
    });
    req.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("Upstream.send", () => {
  it("sends a call again when its kept-alive connection turns out closed, and never twice to the server", async () => {
    const server = await fakeServer("close-after-answer");
    const up = new Upstream(server.url, { kind: "llamacpp" });
    cleanups.push(() => server.close(), () => up.close());
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await call(up, `{"n":${i}}`));
    expect(results).toEqual([0, 1, 2, 3, 4, 5].map((i) => ({ status: 200, text: JSON.stringify({ got: `{"n":${i}}` }) })));
    expect(server.answered).toEqual([0, 1, 2, 3, 4, 5].map((i) => `{"n":${i}}`));
    // The stale connection was tried at least once (else this test proves nothing), and what it
    // refused was sent again, not lost.
    expect(server.refused).toBeGreaterThan(0);
  });

  it("does not send again when a fresh connection fails", async () => {
    const server = await fakeServer("reset");
    const up = new Upstream(server.url, { kind: "llamacpp" });
    cleanups.push(() => server.close(), () => up.close());
    expect(await call(up, "{}")).toEqual({ error: "ECONNRESET" });
    expect(server.connections).toBe(1);
  });
});
