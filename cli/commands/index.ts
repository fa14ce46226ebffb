// Every subcommand, in the order `clawloop --help` lists them.
import type { Command } from "commander";
import { register as judge } from "./judge.js";
import { register as sidecar } from "./sidecar.js";

export type Register = (program: Command) => void;

export const commands: Register[] = [sidecar, judge];
