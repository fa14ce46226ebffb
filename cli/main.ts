// The `clawloop` command. Each subcommand lives in cli/commands/<name>.ts and registers itself.
import { Command } from "commander";
import { commands } from "./commands/index.js";
import { readPackageVersion } from "./shared.js";

export function buildProgram(): Command {
  const program = new Command("clawloop")
    .description("Make a self-hosted agent model better simply by being used.")
    .version(readPackageVersion())
    .showHelpAfterError()
    .enablePositionalOptions();
  for (const register of commands) register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
