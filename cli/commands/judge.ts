// `clawloop judge`: the judge loop. `clawloop judge eval`: a judge against a labeled set.
import path from "node:path";
import type { Command } from "commander";
import { createLogger, type Config, type ConfigOverrides } from "../../core/index.js";
import { createJudge, evaluate, formatReport, loadCases, startJudgeLoop } from "../../judges/index.js";
import { configFrom, onShutdown, packageRoot, withCommonOptions, type CommonFlags } from "../shared.js";

interface JudgeFlags extends CommonFlags {
  method?: Config["judge"]["method"];
  endpoint?: string;
  model?: string;
  concurrency?: string;
  once?: boolean;
}

interface EvalFlags extends JudgeFlags {
  cases: string;
  rulesFirst?: boolean;
  votes?: string;
  json?: boolean;
}

const METHODS = ["rules", "prm", "logprob"];

function judgeOverrides(flags: JudgeFlags): ConfigOverrides {
  const judge: NonNullable<ConfigOverrides["judge"]> = {};
  if (flags.method) {
    if (!METHODS.includes(flags.method)) throw new Error(`--method must be one of ${METHODS.join(", ")}`);
    judge.method = flags.method;
  }
  if (flags.endpoint) judge.endpoint = flags.endpoint;
  if (flags.model) judge.model = flags.model;
  if (flags.concurrency) judge.concurrency = Number(flags.concurrency);
  if ((flags as EvalFlags).votes) judge.votes = Number((flags as EvalFlags).votes);
  return { judge };
}

export function register(program: Command): void {
  const cmd = withCommonOptions(
    program
      .command("judge")
      .description("Score each main-line turn from its next state (+1/0/-1) and extract hindsight hints")
      .enablePositionalOptions()
      .option("--method <method>", "rules | prm | logprob (default: judge.method)")
      .option("--endpoint <url>", "OpenAI-compatible judge endpoint (default: judge.endpoint, else sidecar.upstream)")
      .option("--model <name>", "judge model (default: discovered from the endpoint's /v1/models)")
      .option("--concurrency <n>", "turns judged at once")
      .option("--once", "judge what is ready now, then exit"),
  ).action(async (flags: JudgeFlags) => {
    const config = configFrom(flags, judgeOverrides(flags));
    const logger = createLogger("judge", config.logLevel);
    const loop = await startJudgeLoop(config, { logger, manual: flags.once === true });
    if (flags.once) {
      await loop.runUntilIdle();
      const s = loop.status();
      await loop.stop();
      process.stdout.write(`judged ${s.judgedThisRun} turn(s); ${s.settling} waiting for more next states, ${s.retrying} to retry\n`);
      return;
    }
    logger.info({ judge: loop.status().judge, endpoint: loop.status().endpoint, data: config.dataDir }, "judge loop running");
    onShutdown(() => loop.stop());
  });

  withCommonOptions(
    cmd
      .command("eval")
      .description("Score a judge against a labeled set (fixtures/judge-cases/cases.jsonl)")
      .option("--cases <file>", "labeled cases, one JSON object per line", path.join(packageRoot(), "fixtures/judge-cases/cases.jsonl"))
      .option("--method <method>", "rules | prm | logprob (default: judge.method)")
      .option("--rules-first", "run the rules in front of the model judge (default: the method alone)")
      .option("--endpoint <url>", "OpenAI-compatible judge endpoint")
      .option("--model <name>", "judge model (default: discovered from /v1/models)")
      .option("--votes <n>", "PRM votes per case")
      .option("--concurrency <n>", "cases judged at once", "2")
      .option("--json", "print the full report as JSON"),
  ).action(async (flags: EvalFlags) => {
    const config = configFrom(flags, judgeOverrides(flags));
    const cases = loadCases(path.resolve(flags.cases));
    const judge = createJudge(config, { rulesFirst: flags.rulesFirst === true });
    const report = await evaluate(judge, cases, {
      concurrency: Number(flags.concurrency ?? 2),
      onResult: flags.json ? undefined : (_r, done, total) => {
        if (process.stderr.isTTY) process.stderr.write(`\r${done}/${total}`);
      },
    });
    if (process.stderr.isTTY && !flags.json) process.stderr.write("\n");
    process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + "\n" : formatReport(report) + "\n");
    if (report.failed === report.cases) process.exitCode = 1;
  });
}
