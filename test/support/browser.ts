// A real browser for tests: Debian's Chromium driven by playwright-core. Chromium is not on a new
// machine, so the first test that needs it installs it (apt-get, non-interactive, one installer at
// a time across test workers); when that cannot work the test fails with what to do, never skips.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser } from "playwright-core";
import { withDirLock } from "./dir-lock.js";

const run = promisify(execFile);

export const CHROMIUM = process.env.CLAWLOOP_CHROMIUM ?? "/usr/bin/chromium";

/** Flags for a sandbox-less, offline machine: no GPU, no background calls home (they fail here, slowly). */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const LOCK = path.join(os.tmpdir(), "clawloop-chromium-install.lock");
const INSTALL_TIMEOUT_MS = 20 * 60_000;

async function aptGet(args: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const r = await run("apt-get", args, {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      timeout: INSTALL_TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { ok: true, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}${e.message}` };
  }
}

/** The Chromium executable, installed from Debian's packages when missing. */
export async function ensureChromium(): Promise<string> {
  if (fs.existsSync(CHROMIUM)) return CHROMIUM;
  if (process.getuid?.() !== 0) {
    throw new Error(`Chromium is not installed (${CHROMIUM}) and this user cannot install it: run \`sudo apt-get install -y chromium\`, or set CLAWLOOP_CHROMIUM to a Chromium executable.`);
  }
  return withDirLock(LOCK, async () => {
    if (fs.existsSync(CHROMIUM)) return CHROMIUM;
    let r = await aptGet(["install", "-y", "-q", "chromium"]);
    if (!r.ok) {
      // A new machine has no package lists yet.
      const update = await aptGet(["update", "-q"]);
      r = update.ok ? await aptGet(["install", "-y", "-q", "chromium"]) : update;
    }
    if (!r.ok || !fs.existsSync(CHROMIUM)) {
      throw new Error(`could not install Chromium with apt-get (needed for the dashboard's browser tests):\n${r.output.slice(-3000)}`);
    }
    return CHROMIUM;
  }, { timeoutMs: INSTALL_TIMEOUT_MS, what: "another Chromium install" });
}

/** Headless Chromium with a fresh profile (playwright makes a new user-data directory per launch). */
export async function launchChromium(): Promise<Browser> {
  const executablePath = await ensureChromium();
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 60_000 });
}

/** Where tests leave screenshots and other artifacts (ignored by git). */
export function artifactPath(...parts: string[]): string {
  const file = path.join(process.cwd(), "test-artifacts", ...parts);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return file;
}
