// Cross-checks against the Python reference implementations (gguf-py's dequantizer and writer,
// safetensors' numpy reader). Python is for tests only: this makes a private venv under .cache/
// with pinned packages from PyPI, once, and runs small scripts in it.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CACHE_DIR } from "./model-fixture.js";

const PACKAGES = ["gguf==0.19.0", "safetensors==0.8.0", "numpy==2.4.6"];
const VENV = path.join(CACHE_DIR, "pyvenv-formats");

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Path of a python3 that has gguf, safetensors and numpy installed. */
export function ensurePythonTools(): string {
  const python = path.join(VENV, "bin", "python");
  const stamp = path.join(VENV, "installed.txt");
  const ready = () => fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === PACKAGES.join("\n");
  if (ready()) return python;
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  // Test files run in parallel workers: one installs, the others wait for its lock.
  const lock = `${VENV}.lock`;
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (remove it if no test is running)`);
      sleepMs(250);
    }
  }
  try {
    if (!ready()) {
      if (!fs.existsSync(python)) execFileSync("python3", ["-m", "venv", VENV], { stdio: "inherit" });
      execFileSync(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", ...PACKAGES], { stdio: "inherit" });
      fs.writeFileSync(stamp, PACKAGES.join("\n"));
    }
  } finally {
    fs.rmdirSync(lock);
  }
  return python;
}

/** Runs a Python script (its text) with arguments in the tools venv; returns stdout. */
export function runPython(script: string, args: string[] = []): string {
  const python = ensurePythonTools();
  return execFileSync(python, ["-c", script, ...args], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
}
