// JSON over HTTP with node:http: no client-side time limit on the answer's headers (fetch gives up
// after 300 s, and a non-streamed generation on a busy 2-core machine can take longer).
import http from "node:http";

export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    url: string,
  ) {
    super(`${url}: HTTP ${status}: ${body.slice(0, 300)}`);
  }
}

export function requestJson<T>(method: "GET" | "POST", url: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise<T>((resolve, reject) => {
    const req = http.request(
      url,
      {
        method,
        headers: { accept: "application/json", ...(payload ? { "content-type": "application/json", "content-length": String(payload.length) } : {}), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if ((res.statusCode ?? 0) >= 400) return reject(new HttpStatusError(res.statusCode ?? 0, text, url));
          try {
            resolve((text ? JSON.parse(text) : null) as T);
          } catch {
            // Some endpoints (vLLM's load_lora_adapter) answer with plain text.
            resolve(text as T);
          }
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}
