// A native reference relay for bench:proxy: nginx, when the machine has it, proxying to the same
// upstream with nothing buffered (proxy_buffering and proxy_request_buffering off, keep-alive
// connections to the upstream, TCP_NODELAY). It parses and records nothing, like the bench's bare
// Node relay, but in C on an epoll loop: the gap between the two is what Node's HTTP work costs
// per hop on this machine, and nginx's own figure is about the least any proxy process adds here.
// It is a yardstick only; nothing in clawloop uses nginx.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { benchTempDir, writesInto } from "./temp-dirs.js";

/** The prefix of the relay's temp directory (its config, logs and nginx's temp folders). */
export const NATIVE_RELAY_PREFIX = "clawloop-bench-nginx-";

/** The nginx binary to use: `given` if set, else `nginx` on PATH or in /usr/sbin; null if none runs. */
export function findNginx(given?: string): string | null {
  const candidates = given ? [given] : ["nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx"];
  for (const bin of candidates) {
    const r = spawnSync(bin, ["-v"], { stdio: "ignore" });
    if (!r.error && r.status === 0) return bin;
  }
  return null;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

async function listening(port: number, child: ChildProcess, log: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim() : "no log"}`);
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, "127.0.0.1", () => (c.end(), r(true)));
      c.on("error", () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not listen on 127.0.0.1:${port} within 5 s`);
}

export interface NativeRelay {
  url: string;
  /** One process (no master): its CPU is the relay's. */
  child: ChildProcess;
}

/** Starts nginx in front of `upstreamUrl` on a free loopback port, in a temp directory of its own. */
export async function startNativeRelay(bin: string, upstreamUrl: string): Promise<NativeRelay> {
  const up = new URL(upstreamUrl);
  const dir = benchTempDir(NATIVE_RELAY_PREFIX);
  const port = await freePort();
  const log = path.join(dir, "error.log");
  const conf = path.join(dir, "nginx.conf");
  fs.writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${path.join(dir, "nginx.pid")};
error_log ${log} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${path.join(dir, "body")};
  proxy_temp_path ${path.join(dir, "proxy")};
  upstream up { server ${up.hostname}:${up.port}; keepalive 256; }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 16m;
    client_body_buffer_size 1m;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      tcp_nodelay on;
    }
  }
}
`,
  );
  const child = spawn(bin, ["-p", dir, "-e", log, "-c", conf], { stdio: ["ignore", "ignore", "inherit"] });
  writesInto(dir, child);
  await listening(port, child, log);
  return { url: `http://127.0.0.1:${port}`, child };
}
