import { describe, expect, it } from "vitest";
import { toolOutcome } from "./tool-outcome.js";

describe("toolOutcome", () => {
  it("reads errors from exit codes, error JSON and leading error markers", () => {
    // As recorded from OpenClaw 2026.9.6 (fixtures/conversations/openclaw.json).
    expect(toolOutcome("ls: cannot access 'archive': No such file or directory\n\n(Command exited with code 2)")).toEqual({ error: true, exitCode: 2 });
    expect(toolOutcome('{\n  "status": "error",\n  "tool": "read",\n  "error": "File not found: /w/todo.txt."\n}')).toEqual({ error: true, exitCode: null });
    expect(toolOutcome('{"content":[{"type":"text","text":"boom"}],"isError":true}').error).toBe(true);
    expect(toolOutcome('{"ok": false, "reason": "quota"}').error).toBe(true);
    expect(toolOutcome('{"stdout": "", "stderr": "x", "exit_code": 127}')).toEqual({ error: true, exitCode: 127 });
    expect(toolOutcome("Error: ENOENT: no such file or directory, open 'x'").error).toBe(true);
    expect(toolOutcome("Traceback (most recent call last):\n  File \"a.py\", line 1\nZeroDivisionError: division by zero").error).toBe(true);
    expect(toolOutcome("running tests...\njava.io.IOException: disk full").error).toBe(true);
    expect(toolOutcome("build output\nexit status 1").exitCode).toBe(1);
    expect(toolOutcome("returncode=3").error).toBe(true);
  });

  it("leaves results that merely mention errors, and zero exit codes, as results", () => {
    expect(toolOutcome("Successfully wrote 28 bytes to todo.txt")).toEqual({ error: false, exitCode: null });
    expect(toolOutcome("log.txt:12: Error: disk full (resolved)\nlog.txt:13: all good")).toEqual({ error: false, exitCode: null });
    expect(toolOutcome("total 0\n\n(Command exited with code 0)")).toEqual({ error: false, exitCode: 0 });
    expect(toolOutcome('{"status":"ok","error":null,"result":[1,2]}')).toEqual({ error: false, exitCode: null });
    expect(toolOutcome('{"errors": 0, "exitCode": 0}')).toEqual({ error: false, exitCode: 0 });
    expect(toolOutcome("")).toEqual({ error: false, exitCode: null });
  });
});
