// `clawloop sidecar`: the recording proxy in front of a model server.
import { Command, InvalidArgumentError } from "commander";
import { upstreamKindSetting, type Config, type ConfigOverrides } from "../../core/index.js";
import { startHotloadingSidecar } from "../../sidecar/index.js";
import { configFrom, onShutdown, withCommonOptions, type CommonFlags } from "../shared.js";

interface SidecarFlags extends CommonFlags {
  upstream?: string;
  port?: string;
  host?: string;
  upstreamKind?: Config["sidecar"]["upstreamKind"];
}

/**
 * Parses `--upstream-kind` (commander then names the flag and the bad value). The configuration
 * check would reject it too, but as `sidecar.upstreamKind`, which is not what the user typed.
 */
export function upstreamKindFlag(value: string): Config["sidecar"]["upstreamKind"] {
  const kind = upstreamKindSetting.safeParse(value);
  if (!kind.success) throw new InvalidArgumentError(`The upstream kinds are ${upstreamKindSetting.options.join(", ")}.`);
  return kind.data;
}

export function register(program: Command): void {
  withCommonOptions(
    program
      .command("sidecar")
      .description("Run the recording proxy in front of your model server (OpenAI-compatible, on /v1); it hot-loads new adapter versions into it.")
      .option("--upstream <url>", "the model server, e.g. http://127.0.0.1:8000 (with or without /v1)")
      .option("--port <port>", "port to listen on (default 11435; 0 picks a free one)")
      .option("--host <host>", "address to listen on (default 127.0.0.1; the control API is then loopback-only)")
      .option("--upstream-kind <kind>", `${upstreamKindSetting.options.join(" | ")} (default: auto, detected from its endpoints)`, upstreamKindFlag),
  ).action(async (flags: SidecarFlags) => {
    const sidecar: NonNullable<ConfigOverrides["sidecar"]> = {};
    if (flags.upstream) sidecar.upstream = flags.upstream;
    if (flags.port !== undefined) sidecar.port = Number(flags.port);
    if (flags.host) sidecar.host = flags.host;
    if (flags.upstreamKind) sidecar.upstreamKind = flags.upstreamKind;
    const config = configFrom(flags, { sidecar });
    // Hot-loads each new adapter version into the upstream (adapters.hotload, on by default).
    const starting = startHotloadingSidecar(config);
    // Listening before start-up ends (the switchboard still loading): a signal then still stops cleanly.
    onShutdown(async () => {
      const handle = await starting.catch(() => null);
      await handle?.close();
    });
    await starting;
  });
}
