// The package version, read once from clawloop's package.json (serve/ and dist/serve/ both find it).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

let cached: string | null = null;

export function engineVersion(): string {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "clawloop" && pkg.version) return (cached = pkg.version);
    }
    const up = path.dirname(dir);
    if (up === dir) return (cached = "0.0.0");
    dir = up;
  }
}
