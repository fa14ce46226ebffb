// Errors the server turns into HTTP responses, shaped like vLLM's (OpenAI's body, the status as code).

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = status === 404 ? "NotFoundError" : status >= 500 ? "InternalServerError" : "BadRequestError",
    readonly param: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: number } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.status } };
  }
}

export function badRequest(message: string, param: string | null = null): HttpError {
  return new HttpError(400, message, "BadRequestError", param);
}

export function notFound(message: string): HttpError {
  return new HttpError(404, message, "NotFoundError");
}

/** The request was cancelled (client gone); nothing is sent. */
export class AbortedError extends Error {
  constructor() {
    super("request aborted");
  }
}

/**
 * Like Promise.all, but waits for every promise before rejecting with the first error, so no
 * generation is still running on a sequence when the request's lease is released.
 */
export async function allSettledOrThrow<T>(promises: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
