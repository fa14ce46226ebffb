// The control API's little router: everything under `/clawloop/` on the sidecar's port. Other parts
// (a dashboard, adapter controls) mount their own routes with `add`. Routes need the bearer token
// from `<data>/token` (or the dashboard's session cookie) unless added with `{ auth: false }`.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../core/index.js";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface ControlRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** `:name` segments of the route's path. */
  params: Record<string, string>;
  /** The body parsed as JSON (400 when it is not JSON, 413 when larger than `limit` bytes). */
  json<T = unknown>(limit?: number): Promise<T>;
}

/** Returns the JSON answer (200), or writes the response itself (e.g. a stream) and returns nothing. */
export type ControlHandler = (c: ControlRequest) => unknown;

interface Route {
  method: string;
  parts: string[];
  handler: ControlHandler;
  auth: boolean;
}

export const CONTROL_PREFIX = "/clawloop/";

/** The dashboard's sign-in cookie. Browsers cannot send a bearer header with EventSource or links. */
export const SESSION_COOKIE = "clawloop_session";

/** The cookie's value: a MAC of the token, so the cookie never carries the token itself. */
export function sessionCookieValue(token: string): string {
  return createHmac("sha256", token).update("clawloop dashboard session v1").digest("base64url");
}

function cookieOf(req: IncomingMessage, name: string): string | null {
  const header = req.headers.cookie;
  if (typeof header !== "string") return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function sameSecret(given: string, want: Buffer): boolean {
  const g = Buffer.from(given, "utf8");
  return g.length === want.length && timingSafeEqual(g, want);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, `body larger than ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new HttpError(400, `body is not valid JSON: ${(err as Error).message}`));
      }
    });
    req.on("error", (err) => reject(new HttpError(400, `could not read the body: ${err.message}`)));
  });
}

export class ControlRouter {
  private readonly routes: Route[] = [];
  private readonly token: Buffer;
  private readonly session: Buffer;

  constructor(
    token: string,
    private readonly logger: Logger,
  ) {
    this.token = Buffer.from(token, "utf8");
    this.session = Buffer.from(sessionCookieValue(token), "utf8");
  }

  /** Mounts a handler at `path` (starting with /clawloop/; `:name` segments become params). */
  add(method: string, path: string, handler: ControlHandler, opts: { auth?: boolean } = {}): void {
    if (!path.startsWith(CONTROL_PREFIX)) throw new Error(`control routes live under ${CONTROL_PREFIX}: ${path}`);
    this.routes.push({ method: method.toUpperCase(), parts: path.split("/").filter(Boolean), handler, auth: opts.auth ?? true });
  }

  /** The bearer token, or the dashboard's session cookie (SameSite=Strict, so never sent cross-site). */
  authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization;
    if (typeof h === "string" && h.startsWith("Bearer ")) return sameSecret(h.slice(7).trim(), this.token);
    const cookie = cookieOf(req, SESSION_COOKIE);
    return cookie !== null && sameSecret(cookie, this.session);
  }

  /** Is `given` the control token (e.g. from a sign-in link)? */
  isToken(given: string): boolean {
    return sameSecret(given, this.token);
  }

  private match(path: string): { route: Route; params: Record<string, string> }[] {
    const parts = path.split("/").filter(Boolean);
    const out: { route: Route; params: Record<string, string> }[] = [];
    for (const route of this.routes) {
      if (route.parts.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length; i++) {
        const want = route.parts[i]!;
        if (want.startsWith(":")) params[want.slice(1)] = decodeURIComponent(parts[i]!);
        else if (want !== parts[i]) {
          ok = false;
          break;
        }
      }
      if (ok) out.push({ route, params });
    }
    return out;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://sidecar.local");
    try {
      const candidates = this.match(url.pathname);
      if (candidates.length === 0) throw new HttpError(404, `no control endpoint ${url.pathname}`);
      const hit = candidates.find((c) => c.route.method === req.method);
      if (!hit) {
        res.setHeader("allow", [...new Set(candidates.map((c) => c.route.method))].join(", "));
        throw new HttpError(405, `${req.method} not allowed on ${url.pathname}`);
      }
      if (hit.route.auth && !this.authorized(req)) {
        res.setHeader("www-authenticate", 'Bearer realm="clawloop"');
        throw new HttpError(401, "missing or wrong bearer token (see <data>/token)");
      }
      const result = await hit.route.handler({
        req,
        res,
        url,
        params: hit.params,
        json: <T>(limit = 16 * 1024 * 1024) => readJson(req, limit) as Promise<T>,
      });
      if (!res.headersSent && !res.writableEnded) {
        if (result === undefined) res.writeHead(204).end();
        else sendJson(res, 200, result);
      }
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) this.logger.error({ err: String(err), path: url.pathname }, "control API failure");
      const body: Record<string, unknown> = { message: err instanceof Error ? err.message : String(err), type: status === 500 ? "internal_error" : "invalid_request" };
      if (err instanceof HttpError && err.details !== undefined) body.details = err.details;
      if (!res.headersSent) sendJson(res, status, { error: body });
      else res.destroy();
    }
  }
}
