// Every subcommand, in the order `clawloop --help` lists them.
import type { Command } from "commander";

export type Register = (program: Command) => void;

export const commands: Register[] = [];
