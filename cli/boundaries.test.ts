// The CLI reaches the other folders only through their public faces (a folder's index.ts, e.g.
// trainer/index.ts or trainer/engine/index.ts), so a folder can rearrange its insides freely.
// Tests may reach further (fixtures, scripted servers); the commands may not.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const CLI = import.meta.dirname;

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") ? [p] : [];
  });
}

/** Relative imports (static and dynamic) of a file that leave cli/ without going through an index. */
function deepImports(file: string, text: string): string[] {
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map((m) => m[1]!);
  return specs.filter((s) => {
    const target = path.resolve(path.dirname(file), s);
    return !target.startsWith(CLI + path.sep) && path.basename(target) !== "index.js";
  });
}

describe("cli/ imports other folders only through their index", () => {
  it("finds a deep import when there is one (the check itself)", () => {
    const file = path.join(CLI, "commands", "x.ts");
    expect(deepImports(file, `import { a } from "../../trainer/render.js";\nimport { b } from "../../trainer/index.js";\nimport { c } from "../shared.js";`)).toEqual([
      "../../trainer/render.js",
    ]);
  });

  it("holds for every command and helper", () => {
    const files = sources(CLI);
    expect(files.length).toBeGreaterThan(10);
    const offenders = files.flatMap((f) => deepImports(f, fs.readFileSync(f, "utf8")).map((s) => `${path.relative(CLI, f)}: ${s}`));
    expect(offenders).toEqual([]);
  });
});
