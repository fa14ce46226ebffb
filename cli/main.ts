// The `clawloop` command. Each subcommand lives in cli/commands/<name>.ts and registers itself.
// (The executable goes through cli/entry.ts, which loads only the subcommand being run.)
import type { Command } from "commander";
import { commands } from "./commands/index.js";
import { baseProgram } from "./program.js";

export function buildProgram(): Command {
  const program = baseProgram();
  for (const register of commands) register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
