// `clawloop adapters list | rollback VERSION | pin VERSION | unpin`: the adapter versions and which
// one serves, through the running sidecar's control API (token from <data>/token).
//   rollback V  V goes live and is pinned; versions newer than V are retired; the trainer continues
//               from V (the sidecar writes <adapters>/HEAD.json, which the trainer reads every step)
//   pin V       V goes live and stays live; new versions wait (as candidates) until unpin
//   unpin       the newest good version goes live again as versions arrive
// `list` works without a running sidecar too (from the store and the adapters directory). Versions
// the trainer's retention deleted (adapters.keepVersions) are not listed, by the sidecar or here.
import fs from "node:fs";
import { Command } from "commander";
import { readPruned, readVersionManifest } from "../../adapters/index.js";
import { dataPaths, Store, type AdapterVersion, type Config } from "../../core/index.js";
import { configFrom, stamp, withCommonOptions, type CommonFlags } from "../shared.js";
import { sidecarUrl } from "../up-file.js";

interface AdaptersFlags extends CommonFlags {
  url?: string;
  json?: boolean;
}

interface Listing {
  live: string | null;
  pinned: string | null;
  versions: AdapterVersion[];
}

export class ControlApiError extends Error {}

/** Calls the running sidecar's control API; throws with what to do when it cannot. */
export async function controlCall<T>(config: Config, url: string, method: "GET" | "POST", p: string, body?: unknown): Promise<T> {
  const tokenFile = dataPaths(config.dataDir).token;
  let token: string;
  try {
    token = fs.readFileSync(tokenFile, "utf8").trim();
  } catch {
    throw new ControlApiError(`no control token at ${tokenFile}: no sidecar has run with this data directory (start one with \`clawloop up\`, or pass --data DIR)`);
  }
  let res: Response;
  try {
    res = await fetch(url + p, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(method === "POST" ? 600_000 : 10_000),
    });
  } catch (err) {
    const why = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new ControlApiError(`no sidecar answers at ${url} (${why}); start it with \`clawloop up\`, or pass --url`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  if (res.status === 401) throw new ControlApiError(`the sidecar at ${url} does not accept the token in ${tokenFile}: it runs with another data directory (pass --data DIR)`);
  if (!res.ok) {
    const message = (json as { error?: { message?: string } } | null)?.error?.message ?? text.slice(0, 300);
    throw new ControlApiError(`${p} → ${res.status}: ${message}`);
  }
  return json as T;
}

/** The versions from the store and the directory, for when no sidecar runs. */
export async function offlineListing(config: Config): Promise<Listing> {
  const dir = dataPaths(config.dataDir, config.adapters.dir).adapters;
  const rows = new Map<string, AdapterVersion>();
  const storeDir = dataPaths(config.dataDir).store;
  if (fs.existsSync(storeDir)) {
    const store = await Store.open({ dataDir: config.dataDir, writes: [] });
    try {
      for (const r of await store.list("adapters")) rows.set(r.id, r);
    } finally {
      await store.close();
    }
  }
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => /^v\d{6}$/.test(n));
  } catch {
    // no versions yet
  }
  const present = new Set<string>();
  for (const name of names) {
    const manifest = readVersionManifest(`${dir}/${name}`);
    if (!manifest) continue;
    present.add(name);
    if (rows.has(name)) continue;
    rows.set(name, { id: name, version: manifest.version, dir: `${dir}/${name}`, manifest, status: "candidate", statusReason: "not seen by a sidecar yet", pinned: false, loadedAt: null, liveAt: null, retiredAt: null });
  }
  // Pruned versions are left out, as the sidecar's listing does (a live or pinned row stays).
  const versions = [...rows.values()].filter((r) => present.has(r.id) || r.status === "live" || r.pinned).sort((a, b) => b.version - a.version);
  return { live: versions.find((v) => v.status === "live")?.id ?? null, pinned: versions.find((v) => v.pinned)?.id ?? null, versions };
}

function short(iso: string | null): string {
  return iso ? stamp(iso) : "-";
}

/** `pruned`: how many versions retention deleted (they are not in the listing). */
export function formatListing(l: Listing, source: string, pruned = 0): string {
  const rows = [["VERSION", "STATUS", "STEP", "SAMPLES", "PARENT", "CREATED", "LIVE SINCE", "NOTE"]];
  for (const v of l.versions) {
    const mark = v.id === l.live ? "*" : " ";
    rows.push([
      `${mark}${v.id}`,
      v.status + (v.pinned ? " (pinned)" : ""),
      String(v.manifest.step),
      String(v.manifest.sampleCount),
      v.manifest.parent ?? "-",
      short(v.manifest.createdAt),
      short(v.status === "live" ? v.liveAt : null),
      v.statusReason ?? "",
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const out = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd());
  out.push("");
  out.push(`live: ${l.live ?? "the base model"}${l.pinned ? `, pinned to ${l.pinned}` : ""}  (${source})`);
  if (pruned) out.push(`${pruned} older version${pruned === 1 ? "" : "s"} deleted by retention (adapters.keepVersions); they cannot be rolled back to`);
  return out.join("\n") + "\n";
}

export function register(program: Command): void {
  const adapters = program
    .command("adapters")
    .description("List adapter versions, roll back, pin or unpin (through the running sidecar).");
  const common = (cmd: Command) => withCommonOptions(cmd).option("--url <url>", "the sidecar's base URL (default: the running `clawloop up`, else sidecar.host:port)");

  common(adapters.command("list").description("versions, newest first, with status (candidate, live, retired, rejected)").option("--json", "print JSON")).action(
    async (flags: AdaptersFlags) => {
      const config = configFrom(flags);
      const url = sidecarUrl(config, flags.url);
      let listing: Listing;
      let source = `sidecar ${url}`;
      try {
        listing = await controlCall<Listing>(config, url, "GET", "/clawloop/v1/adapters");
      } catch (err) {
        if (!(err instanceof ControlApiError) || !/no sidecar answers|no control token/.test(err.message)) throw err;
        listing = await offlineListing(config);
        source = "the sidecar is not running: from the store";
      }
      const shown = new Set(listing.versions.map((v) => v.id));
      const pruned = [...readPruned(dataPaths(config.dataDir, config.adapters.dir).adapters).keys()].filter((n) => !shown.has(n)).length;
      process.stdout.write(flags.json ? JSON.stringify(listing, null, 2) + "\n" : formatListing(listing, source, pruned));
    },
  );

  const change = (name: "rollback" | "pin", description: string) =>
    common(adapters.command(`${name} <version>`).description(description)).action(async (version: string, flags: AdaptersFlags) => {
      const config = configFrom(flags);
      const r = await controlCall<{ live: string | null; pinned: string | null }>(config, sidecarUrl(config, flags.url), "POST", `/clawloop/v1/adapters/${name}`, { version });
      process.stdout.write(`live: ${r.live ?? "the base model"}; pinned: ${r.pinned ?? "no"}\n`);
      if (name === "rollback") process.stdout.write(`the trainer continues from ${version}; newer versions are retired. \`clawloop adapters unpin\` lets new versions go live again.\n`);
    });
  change("rollback", "make VERSION live and pinned, retire newer versions, and continue training from it");
  change("pin", "make VERSION live and keep it live (new versions wait until unpin)");

  common(adapters.command("unpin").description("let new versions go live again")).action(async (flags: AdaptersFlags) => {
    const config = configFrom(flags);
    const r = await controlCall<{ live: string | null; pinned: string | null }>(config, sidecarUrl(config, flags.url), "POST", "/clawloop/v1/adapters/unpin", {});
    process.stdout.write(`live: ${r.live ?? "the base model"}; pinned: no\n`);
  });
}
