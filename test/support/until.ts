// Polling for tests that wait on other processes or background loops: no fixed sleeps, a bound
// that names what was awaited when it runs out.

export interface UntilOptions {
  timeoutMs?: number;
  /** Between checks. */
  everyMs?: number;
  /** A check that throws counts as "not yet" (e.g. a server still starting). */
  ignoreErrors?: boolean;
}

type Truthy<T> = Exclude<T, null | undefined | false | 0 | "">;

/** Calls `check` until it returns something truthy, and returns that; throws after the timeout. */
export async function until<T>(what: string, check: () => T | Promise<T>, options: UntilOptions | number = {}): Promise<Truthy<T>> {
  const { timeoutMs = 20_000, everyMs = 25, ignoreErrors = false } = typeof options === "number" ? { timeoutMs: options } : options;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = ignoreErrors ? await Promise.resolve().then(check).catch(() => null) : await check();
    if (v) return v as Truthy<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
