import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { startMallocTrimmer } from "./malloc-trim.js";

const ROOT = path.resolve(import.meta.dirname, "..");

describe("the malloc trimmer", () => {
  it("gives freed, fragmented malloc memory back once the process is quiet, not while it is busy, and again after V8 frees more", () => {
    // In a process of its own (RSS is per process): ~80 MB of 32 KB buffers (below glibc's mmap
    // threshold, so they come from its heap), every 8th kept so that the free memory lies between
    // live blocks and glibc cannot return it by itself.
    const script = `
      const { startMallocTrimmer } = await import("./sidecar/malloc-trim.ts");
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const mb = () => Math.round(process.memoryUsage.rss() / 2 ** 20);
      let bufs = Array.from({ length: 2500 }, () => Buffer.alloc(32 * 1024, 1));
      const kept = bufs.filter((_, i) => i % 8 === 0);
      bufs = null;
      for (let i = 0; i < 3; i++) { globalThis.gc(); await sleep(50); }
      const t = startMallocTrimmer({ quietMs: 200 });
      const freed = mb();
      const busy = setInterval(() => t.touch(), 50);
      await sleep(1000);
      clearInterval(busy);
      const whileBusy = { rss: mb(), trims: t.trims };
      await sleep(700);
      const quiet = { rss: mb(), trims: t.trims };
      // Garbage that V8 frees only when it collects, with no request in between: the full
      // collection is what makes the trimmer trim again.
      let late = Array.from({ length: 2500 }, () => Buffer.alloc(32 * 1024, 2));
      const kept2 = late.filter((_, i) => i % 8 === 0);
      late = null;
      await sleep(700);
      const beforeGc = { rss: mb(), trims: t.trims };
      globalThis.gc();
      await sleep(700);
      console.log(JSON.stringify({ unavailable: t.unavailable, freed, whileBusy, quiet, beforeGc, afterGc: { rss: mb(), trims: t.trims }, kept: kept.length + kept2.length }));
      t.stop();`;
    const out = execFileSync(process.execPath, ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", script], {
      cwd: ROOT,
      encoding: "utf8",
      // glibc's defaults, whatever the test runner was started with.
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MALLOC_"))),
    });
    type At = { rss: number; trims: number };
    const r = JSON.parse(out.trim().split("\n").at(-1)!) as { unavailable: string | null; freed: number; whileBusy: At; quiet: At; beforeGc: At; afterGc: At };
    expect(r.unavailable, out).toBeNull();
    expect(r.whileBusy.trims).toBe(0);
    expect(r.freed - r.whileBusy.rss).toBeLessThan(10);
    expect(r.quiet.trims).toBe(1);
    // ~70 MB of the buffers were freed; most of it must have left the process.
    expect(r.freed - r.quiet.rss).toBeGreaterThan(40);
    // With no request since, each full collection (V8 may run one of its own while the garbage is
    // made; gc() is one) is followed by a trim, and the garbage's memory leaves the process too.
    expect(r.afterGc.trims).toBeGreaterThan(r.beforeGc.trims);
    expect(r.afterGc.rss - r.quiet.rss).toBeLessThan(15);
  });

  it("does nothing, and says why, without a C library to call", () => {
    const t = startMallocTrimmer({ library: "libclawloop-no-such-library.so.0" });
    expect(t.unavailable).toMatch(/libclawloop-no-such-library/);
    expect(t.trimNow()).toBeNull();
    t.touch();
    t.stop();
  });
});
