// `--upstream-kind` of `clawloop sidecar` and `clawloop up`: a kind the configuration does not know
// is refused while the command line is read (before anything starts), naming the flag, the value
// and every allowed kind; the configuration check refuses the same value given any other way.
import { Command, CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, upstreamKindSetting } from "../../core/index.js";
import { register as registerSidecar, upstreamKindFlag } from "./sidecar.js";
import { register as registerUp } from "./up.js";

/** Runs `clawloop <args>` with commander's exits turned into errors; what it wrote to stderr is kept. */
async function parse(register: (program: Command) => void, args: string[]): Promise<{ error: unknown; stderr: string }> {
  let stderr = "";
  const program = new Command("clawloop").exitOverride().configureOutput({ writeErr: (s) => void (stderr += s), writeOut: () => undefined });
  register(program);
  const error = await program.parseAsync(["node", "clawloop", ...args]).then(
    () => null,
    (err: unknown) => err,
  );
  return { error, stderr };
}

describe("--upstream-kind", () => {
  for (const [name, register] of [
    ["sidecar", registerSidecar],
    ["up", registerUp],
  ] as const) {
    it(`clawloop ${name}: a kind it does not know is refused with the allowed kinds named`, async () => {
      const { error, stderr } = await parse(register, [name, "--upstream-kind", "vllm2"]);
      expect(error).toBeInstanceOf(CommanderError);
      expect((error as CommanderError).code).toBe("commander.invalidArgument");
      expect(stderr).toContain("option '--upstream-kind <kind>' argument 'vllm2' is invalid");
      expect(stderr).toContain("The upstream kinds are auto, vllm, sglang, llamacpp, ollama, openai, clawloop.");
    });
  }

  it("every kind the configuration allows is taken as it is", () => {
    for (const kind of upstreamKindSetting.options) expect(upstreamKindFlag(kind)).toBe(kind);
    expect(() => upstreamKindFlag("VLLM")).toThrow(/The upstream kinds are auto, vllm/);
  });

  it("the same value from the environment is refused by the configuration check, naming the allowed kinds", () => {
    const load = () => loadConfig({ env: { CLAWLOOP_SIDECAR_UPSTREAM_KIND: "vllm2" }, flags: { dataDir: "/nonexistent-clawloop-dir" } });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/sidecar\.upstreamKind: .*"auto"\|"vllm"\|"sglang"\|"llamacpp"\|"ollama"\|"openai"\|"clawloop"/);
  });
});
