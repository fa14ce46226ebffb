// Every subcommand, in the order `clawloop --help` lists them.
import type { Command } from "commander";
import { register as dashboard } from "./dashboard.js";
import { register as exportCommand } from "./export.js";
import { register as judge } from "./judge.js";
import { register as score } from "./score.js";
import { register as openclaw } from "./openclaw.js";
import { register as sidecar } from "./sidecar.js";
import { register as train } from "./train.js";
import { register as serve } from "./serve.js";
import { register as fetchModel } from "./fetch-model.js";
import { register as up } from "./up.js";
import { register as demo } from "./demo.js";
import { register as status } from "./status.js";
import { register as adapters } from "./adapters.js";

export type Register = (program: Command) => void;

export const commands: Register[] = [up, demo, status, adapters, sidecar, judge, train, exportCommand, openclaw, score, serve, fetchModel, dashboard];
