// The page's scripts are plain ES modules (served as they are, no build step) with JSDoc types:
// the TypeScript checker reads them against the DOM's types, so a typo there fails CI, not a user.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const assets = path.join(import.meta.dirname, "assets");

describe("the page's scripts", () => {
  it("type-check against the DOM", () => {
    const tsc = path.join(process.cwd(), "node_modules", "typescript", "bin", "tsc");
    let out = "";
    try {
      execFileSync(process.execPath, [tsc, "-p", path.join(assets, "jsconfig.json")], { encoding: "utf8", stdio: "pipe" });
    } catch (err) {
      out = `${(err as { stdout?: string }).stdout ?? ""}${(err as { stderr?: string }).stderr ?? ""}`;
    }
    expect(out).toBe("");
  });

  it("load nothing from outside the sidecar", () => {
    for (const name of fs.readdirSync(assets).filter((n) => /\.(js|css|html)$/.test(n))) {
      const text = fs.readFileSync(path.join(assets, name), "utf8");
      expect(text, name).not.toMatch(/(src|href)=["']https?:|@import\s+url\(["']?https?:|from\s+["']https?:/);
    }
  });
});
