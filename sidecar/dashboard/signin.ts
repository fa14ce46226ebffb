// Signing a browser in: `clawloop dashboard` prints `/clawloop/?token=…`; the page trades the token
// for an HttpOnly, SameSite=Strict cookie and redirects to the clean URL, so the token leaves the
// address bar and history at once. Without the token or the cookie the page refuses, and says how
// to get the link.
import type { ServerResponse } from "node:http";
import { SESSION_COOKIE, sessionCookieValue } from "../router.js";
import { SECURITY_HEADERS } from "./assets.js";

export const DASHBOARD_PATH = "/clawloop/";

/** The link that signs a browser in. `0.0.0.0`/`::` listen everywhere; the link uses loopback. */
export function dashboardLink(baseUrl: string, token: string): string {
  const url = new URL(DASHBOARD_PATH, baseUrl);
  if (url.hostname === "0.0.0.0") url.hostname = "127.0.0.1";
  if (url.hostname === "[::]") url.hostname = "[::1]";
  url.searchParams.set("token", token);
  return url.toString();
}

export function sessionCookie(token: string, maxAgeSec = 30 * 24 * 3600): string {
  return `${SESSION_COOKIE}=${sessionCookieValue(token)}; Path=${DASHBOARD_PATH}; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSec}`;
}

export function redirectSignedIn(res: ServerResponse, token: string): void {
  res.writeHead(303, { ...SECURITY_HEADERS, location: DASHBOARD_PATH, "set-cookie": sessionCookie(token), "cache-control": "no-store" });
  res.end();
}

const STYLE = `body{font:15px/1.5 system-ui,sans-serif;background:#f5f6f8;color:#1d2433;display:grid;place-items:center;min-height:100vh;margin:0}
main{background:#fff;border:1px solid #dde1e8;border-radius:12px;padding:28px 32px;max-width:34rem;box-shadow:0 2px 12px rgba(20,30,50,.06)}
h1{font-size:20px;margin:0 0 12px}code{background:#eef1f5;border-radius:4px;padding:2px 6px;font-size:13px}p{margin:10px 0}`;

/** The 401 page: self-contained (no assets: those need the cookie too). */
export function refuse(res: ServerResponse, why: "missing" | "wrong"): void {
  const reason =
    why === "wrong"
      ? "<p>The token in this link is not this sidecar's control token. It changes when <code>&lt;data&gt;/token</code> is deleted or the sidecar runs on another data directory.</p>"
      : "<p>This page shows your conversations, so it needs the control token.</p>";
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>clawloop — sign in</title><style>${STYLE}</style></head>
<body><main><h1>Sign in to the clawloop dashboard</h1>${reason}
<p>Get a sign-in link on the machine running clawloop:</p><p><code>clawloop dashboard</code> &nbsp;(add <code>--data DIR</code> if you use one)</p>
<p><code>clawloop up</code> prints the same link when it starts.</p></main></body></html>`;
  // The inline style is this page's only one: allow exactly it.
  res.writeHead(401, {
    ...SECURITY_HEADERS,
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "www-authenticate": 'Bearer realm="clawloop"',
  });
  res.end(html);
}
