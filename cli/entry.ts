// The `clawloop` executable (bin/clawloop.js). It loads only the subcommand being run, so a
// long-running `clawloop sidecar` does not carry the trainer's ONNX Runtime or the engine's
// llama.cpp bindings (~45 MB); help, `--version` and anything it does not recognize get the whole
// program (cli/main.ts).
import fs from "node:fs";
import type { Command } from "commander";
import { baseProgram } from "./program.js";

/** The module of a subcommand named on the command line: cli/commands/<name>.ts, one per command. */
function commandModule(name: string | undefined): URL | null {
  if (!name || !/^[a-z][a-z0-9-]*$/.test(name) || name === "index") return null;
  for (const ext of [".js", ".ts"]) {
    if (fs.existsSync(new URL(`./commands/${name}${ext}`, import.meta.url))) return new URL(`./commands/${name}.js`, import.meta.url);
  }
  return null;
}

/** The program for these arguments: just the named subcommand when there is one, else all of them. */
export async function programFor(argv: string[]): Promise<Command> {
  const url = commandModule(argv[2]);
  if (url) {
    const mod = (await import(url.href)) as { register?: (program: Command) => void };
    const program = baseProgram();
    mod.register?.(program);
    if (program.commands.some((c) => c.name() === argv[2])) return program;
  }
  const { buildProgram } = await import("./main.js");
  return buildProgram();
}

export async function run(argv: string[]): Promise<void> {
  await (await programFor(argv)).parseAsync(argv);
}
