// The control API, as the page uses it. The session cookie signs requests in; a 401 means it
// expired or the token changed, and reloading shows the sign-in page.

export class ApiError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** @param {Response} res */
async function answer(res) {
  if (res.status === 401) {
    location.reload();
    throw new ApiError(401, "signed out");
  }
  const text = await res.text();
  /** @type {any} */
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(res.status, `not JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok) throw new ApiError(res.status, body?.error?.message ?? `HTTP ${res.status}`);
  return body;
}

/**
 * GET /clawloop/v1/<path>, with query parameters (empty ones left out).
 * @param {string} path
 * @param {Record<string, string | number | null | undefined>} [params]
 * @returns {Promise<any>}
 */
export async function get(path, params = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") qs.set(k, String(v));
  const q = qs.toString();
  return answer(await fetch(`/clawloop/v1/${path}${q ? `?${q}` : ""}`, { headers: { accept: "application/json" }, credentials: "same-origin" }));
}

/**
 * POST JSON to /clawloop/v1/<path>.
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function post(path, body = {}) {
  return answer(
    await fetch(`/clawloop/v1/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    }),
  );
}
