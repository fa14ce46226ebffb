// A real llama.cpp `llama-server` for the tests, built once from the llama.cpp source that
// node-llama-cpp ships (`node_modules/node-llama-cpp/llama/gitRelease.bundle`, its release tag in
// `llama.cpp.info.json`), and cached as `.cache/llama-server/<tag>/llama-server` (ignored by git).
//
// The build is lean: only the `llama-server` target, Release, static libraries (one self-contained
// binary, so the build tree is removed afterwards), no curl/OpenSSL, no web UI (it would be
// downloaded), and GGML_NATIVE=OFF: `.cache/` is what CI systems cache and restore, possibly on
// another runner's CPU, where a native build dies with SIGILL; and even on this project's own 2-core
// VM a native build of the same source died with SIGILL at its first evaluation (-march=native took
// up CPU features, AMX among them, that the VM advertises but evidently does not all allow). The
// tests' model has 135M parameters, so the portable build costs them seconds, not minutes.
//
// Needs git, cmake, a C and a C++ compiler, and ninja or make. A missing tool is an error naming
// it, never a skip: the tests that use the server must run wherever the suite runs.
// `CLAWLOOP_LLAMA_SERVER=/path/to/llama-server` uses that binary instead of building one.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { withDirLock } from "./dir-lock.js";
import { CACHE_DIR, REPO_ROOT } from "./model-fixture.js";

const LLAMA_DIR = path.join(REPO_ROOT, "node_modules", "node-llama-cpp", "llama");
const BUILD_ROOT = path.join(CACHE_DIR, "llama-server");
/** Set by the global setup when its build failed, so each test that needs the server fails with the reason. */
export const BUILD_ERROR_ENV = "CLAWLOOP_LLAMA_SERVER_BUILD_ERROR";

/** What the cache was built with; a different stamp means build again. */
const CMAKE_FLAGS = [
  "-DCMAKE_BUILD_TYPE=Release",
  "-DBUILD_SHARED_LIBS=OFF",
  "-DGGML_NATIVE=OFF",
  "-DLLAMA_OPENSSL=OFF",
  "-DLLAMA_BUILD_TESTS=OFF",
  "-DLLAMA_BUILD_EXAMPLES=OFF",
  "-DLLAMA_BUILD_TOOLS=ON",
  "-DLLAMA_BUILD_SERVER=ON",
  "-DLLAMA_BUILD_APP=OFF",
  "-DLLAMA_BUILD_UI=OFF",
  "-DLLAMA_USE_PREBUILT_UI=OFF",
];

export interface LlamaCppRelease {
  tag: string;
  bundle: string;
}

/** The llama.cpp release node-llama-cpp carries. */
export function llamaCppRelease(): LlamaCppRelease {
  const info = JSON.parse(fs.readFileSync(path.join(LLAMA_DIR, "llama.cpp.info.json"), "utf8")) as { tag?: unknown };
  if (typeof info.tag !== "string" || !/^[\w.-]+$/.test(info.tag)) throw new Error(`${LLAMA_DIR}/llama.cpp.info.json has no usable "tag"`);
  const bundle = path.join(LLAMA_DIR, "gitRelease.bundle");
  if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing: node-llama-cpp ships llama.cpp's source there; reinstall node-llama-cpp`);
  return { tag: info.tag, bundle };
}

export function llamaServerBinary(tag = llamaCppRelease().tag): string {
  return path.join(BUILD_ROOT, tag, "llama-server");
}

function works(cmd: string, args: string[] = ["--version"]): boolean {
  try {
    execFileSync(cmd, args, { stdio: "ignore", timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

interface Toolchain {
  generator: "Ninja" | "Unix Makefiles";
  cc: string;
  cxx: string;
}

/** The build tools, or an error that names every missing one. */
export function findToolchain(env: NodeJS.ProcessEnv = process.env, has: (cmd: string) => boolean = works): Toolchain {
  const missing: string[] = [];
  if (!has("git")) missing.push("git");
  if (!has("cmake")) missing.push("cmake");
  const pick = (own: string | undefined, names: string[]) => (own ? (has(own) ? own : null) : (names.find((n) => has(n)) ?? null));
  const cxx = pick(env.CXX, ["c++", "g++", "clang++"]);
  if (!cxx) missing.push(env.CXX ? `the C++ compiler CXX=${env.CXX}` : "a C++ compiler (c++, g++ or clang++)");
  const cc = pick(env.CC, ["cc", "gcc", "clang"]);
  if (!cc) missing.push(env.CC ? `the C compiler CC=${env.CC}` : "a C compiler (cc, gcc or clang)");
  const generator = has("ninja") ? "Ninja" : has("make") ? "Unix Makefiles" : null;
  if (!generator) missing.push("ninja or make");
  if (missing.length) {
    throw new Error(
      `the tests need a real llama-server, built once from node-llama-cpp's llama.cpp source, but ${missing.join(", ")} ` +
        `${missing.length === 1 ? "is" : "are"} not installed. Install them (Debian/Ubuntu: apt-get install git cmake g++ ninja-build; ` +
        `macOS: xcode-select --install && brew install cmake ninja), or set CLAWLOOP_LLAMA_SERVER to a llama-server binary.`,
    );
  }
  return { generator: generator!, cc: cc!, cxx: cxx! };
}

function run(cmd: string, args: string[], cwd: string, log: fs.WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    log.write(`\n$ ${cmd} ${args.join(" ")}\n`);
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.on("error", reject);
    child.on("close", (code, signal) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args[0]} failed (${signal ?? `exit ${code}`})`))));
  });
}


interface Stamp {
  tag: string;
  commit: string;
  flags: string[];
  seconds: number;
  builtAt: string;
}

function stampOk(dir: string, tag: string, commit: string): boolean {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(dir, "build.json"), "utf8")) as Stamp;
    return s.tag === tag && s.commit === commit && JSON.stringify(s.flags) === JSON.stringify(CMAKE_FLAGS) && fs.existsSync(path.join(dir, "llama-server"));
  } catch {
    return false;
  }
}

/** The commit a git bundle holds, read from its text header (`# v2 git bundle`, v3's `@capability` lines, then `<sha> <ref>` lines). */
function bundleCommit(bundle: string): string {
  const fd = fs.openSync(bundle, "r");
  const head = Buffer.alloc(1024);
  const n = fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  const lines = head.subarray(0, n).toString("latin1").split("\n");
  const ref = lines.slice(1).find((l) => !l.startsWith("@") && !l.startsWith("-"));
  const commit = /^# v\d git bundle/.test(lines[0] ?? "") ? /^([0-9a-f]{40}) /.exec(ref ?? "")?.[1] : undefined;
  if (!commit) throw new Error(`${bundle} is not a git bundle naming a commit`);
  return commit;
}

async function build(release: LlamaCppRelease, commit: string, dir: string, tools: Toolchain): Promise<void> {
  const work = `${dir}.build-${process.pid}`;
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const logFile = path.join(BUILD_ROOT, `${release.tag}.build.log`);
  const log = fs.createWriteStream(logFile);
  const jobs = Math.max(1, os.availableParallelism());
  const t0 = performance.now();
  console.log(`llama-server: building llama.cpp ${release.tag} once for the tests (${jobs} jobs; about 4 minutes on 2 idle cores; log: ${logFile})`);
  try {
    const src = path.join(work, "src");
    await run("git", ["clone", "--quiet", release.bundle, src], work, log);
    const configure = ["-S", src, "-B", path.join(src, "build"), "-G", tools.generator, `-DCMAKE_C_COMPILER=${tools.cc}`, `-DCMAKE_CXX_COMPILER=${tools.cxx}`, ...CMAKE_FLAGS];
    await run("cmake", configure, src, log);
    await run("cmake", ["--build", path.join(src, "build"), "--target", "llama-server", "--parallel", String(jobs)], src, log);
    const built = path.join(src, "build", "bin", "llama-server");
    if (!fs.existsSync(built)) throw new Error(`the build finished without ${built}`);
    fs.mkdirSync(dir, { recursive: true });
    const part = path.join(dir, `llama-server.part-${process.pid}`);
    fs.copyFileSync(built, part);
    fs.chmodSync(part, 0o755);
    fs.renameSync(part, path.join(dir, "llama-server"));
    const seconds = Math.round((performance.now() - t0) / 1000);
    const stamp: Stamp = { tag: release.tag, commit, flags: CMAKE_FLAGS, seconds, builtAt: new Date().toISOString() };
    fs.writeFileSync(path.join(dir, "build.json"), JSON.stringify(stamp, null, 2));
    console.log(`llama-server: built ${release.tag} in ${Math.floor(seconds / 60)} min ${seconds % 60} s → ${path.join(dir, "llama-server")}`);
  } catch (err) {
    await new Promise((r) => log.end(r));
    const tail = fs.readFileSync(logFile, "utf8").split("\n").slice(-30).join("\n");
    throw new Error(`building llama-server ${release.tag} failed: ${(err as Error).message}\n--- last lines of ${logFile} ---\n${tail}`);
  } finally {
    log.end();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Path of a llama-server binary: `CLAWLOOP_LLAMA_SERVER` if set, else the cached build of
 * node-llama-cpp's llama.cpp release, built first if missing (one process builds, others wait).
 */
export async function ensureLlamaServer(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const own = env.CLAWLOOP_LLAMA_SERVER;
  if (own) {
    if (!works(own, ["--version"])) throw new Error(`CLAWLOOP_LLAMA_SERVER=${own} does not run (\`${own} --version\` failed)`);
    return own;
  }
  const failed = env[BUILD_ERROR_ENV];
  if (failed) throw new Error(failed);
  const release = llamaCppRelease();
  const dir = path.join(BUILD_ROOT, release.tag);
  const commit = bundleCommit(release.bundle);
  if (stampOk(dir, release.tag, commit)) return path.join(dir, "llama-server");
  const tools = findToolchain(env);
  fs.mkdirSync(BUILD_ROOT, { recursive: true });
  return withDirLock(
    `${dir}.lock`,
    async () => {
      if (!stampOk(dir, release.tag, commit)) await build(release, commit, dir, tools);
      return path.join(dir, "llama-server");
    },
    { what: "another process building llama-server" },
  );
}

// ---------------------------------------------------------------------------------------------
// Running it

export interface LlamaServerOptions {
  model: string;
  /** LoRA adapter files (`--lora`), applied at scale 1. */
  lora?: string[];
  ctx?: number;
  threads?: number;
  /** More flags, appended as given. */
  args?: string[];
  /** How long to wait for `/health` to answer 200. */
  readyTimeoutMs?: number;
}

export interface LlamaServer {
  url: string;
  port: number;
  pid: number;
  /** Everything the server wrote to stdout and stderr so far. */
  log(): string;
  close(): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test worker that exits (or is told to) must not leave a server behind.
  process.on("exit", () => {
    for (const child of running) child.kill("SIGKILL");
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      for (const child of running) child.kill("SIGKILL");
      process.kill(process.pid, sig);
    });
  }
}

/** A port free right now (llama-server cannot be told to pick one: `--port 0` is not supported). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function startOnce(binary: string, opts: LlamaServerOptions, port: number): Promise<LlamaServer | "port-taken"> {
  const args = [
    "-m", opts.model,
    "--host", "127.0.0.1",
    "--port", String(port),
    "-c", String(opts.ctx ?? 2048),
    "-t", String(opts.threads ?? 2),
    "-np", "1",
    "--no-webui",
    ...(opts.lora ?? []).flatMap((f) => ["--lora", f]),
    ...(opts.args ?? []),
  ];
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
  installExitHook();
  running.add(child);
  let output = "";
  const keep = (b: Buffer) => {
    output += b.toString("utf8");
    if (output.length > 1 << 20) output = output.slice(-(1 << 19));
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<string>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? `exit ${code}`)));
  exited.then(() => running.delete(child));
  const url = `http://127.0.0.1:${port}`;
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };
  const end = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  const state: { gone: string | null } = { gone: null };
  void exited.then((how) => (state.gone = how));
  for (;;) {
    if (state.gone) {
      if (/bind|address already in use/i.test(output)) return "port-taken";
      throw new Error(`llama-server exited (${state.gone}) before it was ready:\n${output.slice(-4_000)}`);
    }
    const ok = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > end) {
      await close();
      throw new Error(`llama-server did not answer /health within ${opts.readyTimeoutMs ?? 60_000} ms:\n${output.slice(-4_000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, port, pid: child.pid!, log: () => output, close };
}

/** Starts llama-server on a free port and waits until `/health` says it is ready. */
export async function startLlamaServer(opts: LlamaServerOptions): Promise<LlamaServer> {
  const binary = await ensureLlamaServer();
  for (let attempt = 0; ; attempt++) {
    const started = await startOnce(binary, opts, await freePort());
    if (started !== "port-taken") return started;
    // Someone took the port between our probe and the server's bind: try another.
    if (attempt >= 4) throw new Error("llama-server could not bind a free port in 5 tries");
  }
}
