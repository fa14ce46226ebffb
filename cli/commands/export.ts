// `clawloop export --samples FILE.jsonl`: judged main-line turns from the store, in the format
// `clawloop train --samples` reads.
import type { Command } from "commander";
import { exportSamples } from "../../trainer/index.js";
import { configFrom, withCommonOptions, type CommonFlags } from "../shared.js";

export function register(program: Command): void {
  withCommonOptions(
    program
      .command("export")
      .description("Write the judged turns of the store as training samples (JSONL, the format of train --samples)")
      .requiredOption("--samples <file>", "where to write the samples"),
  ).action(async (flags: CommonFlags & { samples: string }) => {
    const config = configFrom(flags);
    const r = await exportSamples(config, flags.samples);
    const { notTrainable, notChat, turnMissing } = r.skipped;
    process.stdout.write(
      `wrote ${r.written} samples to ${r.file}` +
        (notTrainable + notChat + turnMissing
          ? ` (left out: ${notTrainable} side or failed calls, ${notChat} /v1/completions calls, ${turnMissing} judgments without their turn)`
          : "") +
        "\n",
    );
  });
}
