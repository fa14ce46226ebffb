// Did a tool call fail? Read from the tool message a client sent back, which is all the sidecar
// sees of a tool when no plugin reports it. The heuristic leans towards "result": a tool output that
// merely mentions an error somewhere (a log file that was read, a grep hit) is a result; it is an
// error only when the output says so in one of these ways:
//
//   * a non-zero exit code reported in the text: OpenClaw's `(Command exited with code 2)`,
//     `exit code: 1`, `exited with status 127`, `returncode=1`, or an `exitCode`/`exit_code`/
//     `returncode` field of a JSON output;
//   * a JSON object that reports an error: a non-empty `error` field, `status` "error"/"failed",
//     `isError: true`, `ok: false` or `success: false` (OpenClaw's tool errors are
//     `{"status":"error","tool":…,"error":…}`; MCP results carry `isError`);
//   * a text that starts with an error marker (`Error:`, `ERROR`, `Fatal:`, `Exception:`,
//     `Failed to …`, `[error]`) or with a Python traceback, or whose last line is an exception
//     (`ValueError: …`, `java.io.IOException: …`).
//
// A zero exit code is kept on the next state (exitCode 0) and does not make it an error.

export interface ToolOutcome {
  error: boolean;
  exitCode: number | null;
}

const EXIT_IN_TEXT = /(?:\bexit(?:ed)?(?: with)? (?:code|status)|\breturn ?code)\s*[:=]?\s*(-?\d+)/gi;
const EXIT_KEYS = ["exitCode", "exit_code", "returncode", "returnCode", "exitStatus", "exit_status"];
const LEADING_ERROR = /^(?:error\b|fatal\b|exception\b|failed to\b|\[error\]|traceback \(most recent call last\):)/i;
const LAST_LINE_EXCEPTION = /^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception)(?::\s|$)/;

function asInt(v: unknown): number | null {
  if (typeof v === "number" && Number.isInteger(v)) return v;
  if (typeof v === "string" && /^-?\d+$/.test(v.trim())) return Number(v.trim());
  return null;
}

function jsonOutcome(text: string): ToolOutcome | null {
  if (!text.startsWith("{")) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  let exitCode: number | null = null;
  for (const k of EXIT_KEYS) exitCode ??= asInt(o[k]);
  const status = typeof o.status === "string" ? o.status.toLowerCase() : null;
  const err = o.error;
  const error =
    (err !== undefined && err !== null && err !== false && err !== "" && !(typeof err === "object" && Object.keys(err).length === 0)) ||
    status === "error" ||
    status === "failed" ||
    status === "failure" ||
    o.isError === true ||
    o.is_error === true ||
    o.ok === false ||
    o.success === false ||
    (exitCode !== null && exitCode !== 0);
  return { error, exitCode };
}

export function toolOutcome(raw: string): ToolOutcome {
  const text = raw.trim();
  const json = jsonOutcome(text);
  if (json) return json;
  let exitCode: number | null = null;
  // The last report wins: a command's final status comes after its output.
  for (const m of text.matchAll(EXIT_IN_TEXT)) exitCode = Number(m[1]);
  if (exitCode !== null && exitCode !== 0) return { error: true, exitCode };
  const lines = text.split("\n");
  const last = lines.findLast((l) => l.trim() !== "")?.trim() ?? "";
  const error = LEADING_ERROR.test(text) || LAST_LINE_EXCEPTION.test(last);
  return { error, exitCode };
}
