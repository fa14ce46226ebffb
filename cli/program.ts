// The `clawloop` program without its subcommands (cli/main.ts adds them all, cli/entry.ts just one).
import { Command } from "commander";
import { readPackageVersion } from "./shared.js";

export function baseProgram(): Command {
  return new Command("clawloop")
    .description("Make a self-hosted agent model better simply by being used.")
    .version(readPackageVersion())
    .showHelpAfterError()
    .enablePositionalOptions();
}
