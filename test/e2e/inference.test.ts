// Session inference end to end: recorded conversations of several real client shapes replayed
// through the real sidecar, in front of the scripted upstream answering with the recorded
// assistant messages, without any session or turn ids. The inferred sessions, the turn order and
// every next state must equal the recording's ground truth.
import fs from "node:fs";
import path from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { conversationNames, loadConversation } from "../../fixtures/conversations/format.js";
import type { ScriptedKind } from "../../fixtures/upstream/index.js";
import { expectGroundTruth, observe, replay, replyFor, send, traceparentOf } from "./inference-helpers.js";
import { rigsClosedAfterEach, startSidecarFor, tagged, tmpDir, type Rig } from "./sidecar-helpers.js";

const open = rigsClosedAfterEach();

async function outcomes(r: Rig): Promise<Record<string, number>> {
  const text = await (await fetch(`${r.sc.url}/metrics`)).text();
  return Object.fromEntries([...text.matchAll(/^clawloop_sidecar_inferred_calls_total\{outcome="(\w+)"\} (\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
}

/** Each recording goes through a different server dialect (their streams are assembled differently). */
const KIND: Record<string, ScriptedKind> = {
  openclaw: "vllm",
  "open-webui": "ollama",
  "agent-loop": "sglang",
  "rewritten-ids": "clawloop",
  compaction: "vllm",
};

describe("replayed conversations: sessions, turn order and next states equal the recording", () => {
  it("has the recordings it is meant to have", () => {
    expect(conversationNames()).toEqual(["agent-loop", "compaction", "open-webui", "openclaw", "rewritten-ids"]);
  });

  for (const name of conversationNames()) {
    const fx = loadConversation(name);
    it(`${name}: ${fx.client}`, async () => {
      const r = await open({ kind: KIND[name] ?? "vllm", reply: replyFor(fx) });
      await replay(r.sc.url, fx);
      expectGroundTruth(fx, await observe(r.sc.store, fx));
      // How each call was placed, as /metrics reports it: one per call, none left out.
      const placed = await outcomes(r);
      expect(Object.values(placed).reduce((a, b) => a + b, 0)).toBe(fx.calls.length);
      expect(placed.side ?? 0).toBe(fx.calls.filter((c) => c.expect.turnType === "side").length);
      if (name === "compaction") expect(placed.diverged).toBe(1);
    });
  }
});

describe("inference over time", () => {
  it("continues across a sidecar restart", async () => {
    const fx = loadConversation("openclaw");
    const r = await open({ kind: "vllm", reply: replyFor(fx) });
    await replay(r.sc.url, fx, 0, 5);
    await r.sc.close();
    expect(fs.existsSync(path.join(r.dataDir, "inference", "turns.jsonl"))).toBe(true);
    r.sc = await startSidecarFor(r.up, r.dataDir);
    await replay(r.sc.url, fx, 5);
    expectGroundTruth(fx, await observe(r.sc.store, fx));
  });

  it("records a turn's next states once when the same history comes again (retries), also after a restart", async () => {
    const fx = loadConversation("agent-loop");
    const r = await open({ kind: "sglang", reply: replyFor(fx) });
    await replay(r.sc.url, fx);
    const first = await observe(r.sc.store, fx);
    expectGroundTruth(fx, first);
    const count = async () => (await r.sc.store.list("next_states")).length;
    const before = await count();
    expect(before).toBe(fx.calls.reduce((n, c) => n + c.expect.nextStates.length, 0));

    // Call 2 carried two tool results for call 1: the client sends it again.
    const retried = async (i: number, tp: string) => {
      const res = await fetch(`${r.sc.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", traceparent: tp },
        body: JSON.stringify(fx.calls[i]!.body),
      });
      expect(res.status).toBe(200);
      await res.text();
      return (await r.sc.store.list("turns")).find((t) => t.traceparent === tp)!;
    };
    r.up.setReply(() => ({ text: "a retried answer" }));
    const again = await retried(2, "00-72657472790000000000000000000001-0000000000000001-01");
    // A sibling of call 2: same session, same parent, a later seq; nothing new recorded.
    expect(again).toMatchObject({ sessionId: first.turns.get(2)!.sessionId, parentTurnId: first.turns.get(1)!.id, placement: "inferred", turnType: "main" });
    expect(again.seq).toBeGreaterThan(Math.max(...[...first.turns.values()].map((t) => t.seq)));
    await new Promise((res) => setTimeout(res, 300));
    expect(await count()).toBe(before);

    await r.sc.close();
    r.sc = await startSidecarFor(r.up, r.dataDir);
    const afterRestart = await retried(6, "00-72657472790000000000000000000002-0000000000000002-01");
    expect(afterRestart).toMatchObject({ sessionId: first.turns.get(6)!.sessionId, parentTurnId: first.turns.get(5)!.id });
    await new Promise((res) => setTimeout(res, 300));
    expect(await count()).toBe(before);
  });
});

describe("tagged and untagged traffic through one sidecar", () => {
  it("places tagged calls by their tags, never infers them or from them, and infers the untagged ones beside them", async () => {
    const oc = loadConversation("openclaw");
    const untagged = loadConversation("rewritten-ids");
    const replies = { oc: replyFor(oc), un: replyFor(untagged) };
    const r = await open({
      kind: "vllm",
      reply: (req) => (String(req.headers.traceparent).startsWith(traceparentOf(oc.name, 0).slice(0, 12)) ? replies.oc(req) : replies.un(req)),
    });
    // OpenClaw with the plugin: chat calls 0, 3 and 8 are one session's turns; call 3 is sent without
    // tags (a call the plugin did not wrap), so its history extends a tagged turn.
    await send(r.sc.url, oc, 0, tagged("plugin-s", "run-1", 1));
    await replay(r.sc.url, untagged, 0, 3);
    await send(r.sc.url, oc, 3);
    await replay(r.sc.url, untagged, 3);
    await send(r.sc.url, oc, 8, tagged("plugin-s", "run-3", 1));

    const seenUntagged = await observe(r.sc.store, untagged);
    expectGroundTruth(untagged, seenUntagged);
    const turns = await r.sc.store.list("turns");
    const byTp = (i: number) => turns.find((t) => t.traceparent === traceparentOf(oc.name, i))!;
    expect(byTp(0)).toMatchObject({ sessionId: "plugin-s", placement: "tagged", turnType: "main", seq: 0, parentTurnId: null });
    expect(byTp(8)).toMatchObject({ sessionId: "plugin-s", placement: "tagged", turnType: "main", seq: 1, parentTurnId: null });
    // The untagged call is not joined to the tagged session: tagged turns are not inferred from.
    expect(byTp(3)).toMatchObject({ placement: "inferred", turnType: "main", parentTurnId: null });
    expect(byTp(3).sessionId).not.toBe("plugin-s");
    // No next state was inferred for a tagged turn, nor from a tagged request.
    const states = await r.sc.store.list("next_states");
    expect(states.filter((s) => [byTp(0).id, byTp(3).id, byTp(8).id].includes(s.turnId ?? ""))).toEqual([]);
    expect(states.every((s) => s.source === "inferred" && [...seenUntagged.turns.values()].some((t) => t.id === s.turnId))).toBe(true);
  });
});

describe("housekeeping calls", () => {
  it("are side by the built-in rules unless turned off, and by the user's own rules", async () => {
    const fx = loadConversation("open-webui");
    const titleCall = fx.calls.findIndex((c) => c.expect.turnType === "side");
    const off = await open({ kind: "ollama", reply: replyFor(fx) }, { builtinSideRules: false, sideRules: [{ model: "^task-", systemPrompt: null, header: null, userPrompt: null }] });
    await send(off.sc.url, fx, titleCall);
    const asTask = structuredClone(fx);
    asTask.calls[0]!.body.model = "task-mini";
    await send(off.sc.url, asTask, 0);
    const turns = await off.sc.store.list("turns");
    const title = turns.find((t) => t.traceparent === traceparentOf(fx.name, titleCall))!;
    expect(title).toMatchObject({ placement: "inferred", turnType: "main" });
    const task = turns.find((t) => t.traceparent === traceparentOf(fx.name, 0))!;
    expect(task).toMatchObject({ placement: "untagged", turnType: "side", model: "task-mini" });
  });
});

describe("failures", () => {
  it("starts and infers from memory when the index cannot be written, and says so", async () => {
    const fx = loadConversation("rewritten-ids");
    const dataDir = tmpDir();
    fs.writeFileSync(path.join(dataDir, "inference"), "not a directory");
    const lines: string[] = [];
    const logger = pino({ level: "error" }, { write: (l: string) => void lines.push(l) });
    const r = await open({ kind: "clawloop", reply: replyFor(fx) }, {}, { dataDir, logger });
    expect(lines.join("")).toMatch(/session inference: cannot read or create its index; continuing in memory/);
    await replay(r.sc.url, fx);
    expectGroundTruth(fx, await observe(r.sc.store, fx));
  });
});
