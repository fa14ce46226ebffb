// One logger for every loop: JSON lines (pino), pretty enough on a terminal via `level` labels.
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(name: string, level: string = process.env.CLAWLOOP_LOG_LEVEL ?? "info"): Logger {
  return pino({
    name,
    level,
    base: { loop: name },
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** A logger that prints nothing (tests, library use). */
export const silentLogger: Logger = pino({ level: "silent" });
