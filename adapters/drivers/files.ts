// Checks on a version directory before anything is sent to a server: the manifest is there, every
// file it lists has the hash it lists (a corrupted or half-copied file is caught here, whatever
// its effect on the model would be), and the file the server needs is present.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { AdapterManifest } from "../../core/index.js";

export const PEFT_FILES = ["adapter_config.json", "adapter_model.safetensors"] as const;
export const GGUF_ADAPTER = "adapter.gguf";

export function readVersionManifest(dir: string): AdapterManifest | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as AdapterManifest;
  } catch {
    return null;
  }
}

function sha256(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** Problems with a version directory for a server reading `format`; empty when it is sound. */
export function versionProblems(dir: string, format: "peft" | "gguf"): string[] {
  const manifest = readVersionManifest(dir);
  if (!manifest) return ["manifest.json is missing or not JSON"];
  const problems: string[] = [];
  for (const [name, hash] of Object.entries(manifest.files ?? {})) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) problems.push(`${name} is missing`);
    else if (sha256(file) !== hash) problems.push(`${name} does not match the sha256 in manifest.json (corrupted or changed after writing)`);
  }
  const needed = format === "gguf" ? [GGUF_ADAPTER] : [...PEFT_FILES];
  for (const name of needed) {
    if (!(name in (manifest.files ?? {})) && !problems.some((p) => p.startsWith(name))) {
      problems.push(
        format === "gguf"
          ? `${name} is missing: this server needs a GGUF LoRA (the trainer writes one when train.gguf is "auto" with a .gguf base, or "always")`
          : `${name} is missing: this server needs a PEFT adapter`,
      );
    }
  }
  return problems;
}
