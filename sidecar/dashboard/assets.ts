// The page's files, served by the sidecar itself (nothing from a CDN: the page works offline and
// its Content-Security-Policy allows nothing but this origin). Only files found in the assets
// folder at start-up are served, so no request path can reach anything else.
import crypto from "node:crypto";
import fs from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

export const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
};

/** The assets folder: next to this file in the source tree, or the package's copy when run from dist/. */
export function findAssetsDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, "assets")];
  for (let dir = here; ; ) {
    if (fs.existsSync(path.join(dir, "package.json"))) {
      candidates.push(path.join(dir, "sidecar", "dashboard", "assets"));
      break;
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  const found = candidates.find((c) => fs.existsSync(path.join(c, "index.html")));
  if (!found) throw new Error(`dashboard assets not found (looked in ${candidates.join(", ")})`);
  return found;
}

export class Assets {
  private readonly files: Map<string, string>;

  constructor(readonly dir: string = findAssetsDir()) {
    this.files = new Map(
      fs
        .readdirSync(dir)
        .filter((name) => TYPES[path.extname(name)] !== undefined)
        .map((name) => [name, path.join(dir, name)]),
    );
  }

  has(name: string): boolean {
    return this.files.has(name);
  }

  /** Sends a file with an ETag; answers 304 when the browser's copy is current. */
  send(req: IncomingMessage, res: ServerResponse, name: string, extra: Record<string, string> = {}): boolean {
    const file = this.files.get(name);
    if (!file) return false;
    const body = fs.readFileSync(file);
    const etag = `"${crypto.createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
    const headers = { ...SECURITY_HEADERS, etag, "cache-control": "no-cache", ...extra };
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, headers).end();
      return true;
    }
    res.writeHead(200, { ...headers, "content-type": TYPES[path.extname(name)]!, "content-length": body.length });
    res.end(req.method === "HEAD" ? undefined : body);
    return true;
  }
}
