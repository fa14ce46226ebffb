import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../core/index.js";
import { INDEX_FILE, TurnIndex } from "./turn-index.js";

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-turn-index-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function add(index: TurnIndex, i: number, session = "s"): void {
  index.addPlaced({ turnId: `t${i}`, sessionId: session, parentTurnId: i > 0 ? `t${i - 1}` : null, promptKey: `p${i}` });
  index.finish(`t${i}`, `c${i}`, [`call_${i}`]);
}

describe("TurnIndex", () => {
  it("finds turns by prompt and by prompt + response, and keeps only the most recently used", async () => {
    const index = await TurnIndex.open(null, 100, silentLogger);
    for (let i = 0; i < 150; i++) add(index, i);
    expect(index.size).toBe(100);
    expect(index.findConversation("c10")).toBeUndefined();
    expect(index.findPrompt("p10")).toBeUndefined();
    expect(index.findConversation("c60")?.turnId).toBe("t60");
    // t60 was used: it outlives 99 newer turns, t61 does not.
    for (let i = 150; i < 249; i++) add(index, i);
    expect(index.findConversation("c60")?.turnId).toBe("t60");
    expect(index.findConversation("c61")).toBeUndefined();
    // A placed turn is findable by prompt at once, by prompt + response only once finished.
    index.addPlaced({ turnId: "x", sessionId: "s2", parentTurnId: null, promptKey: "px" });
    expect(index.findPrompt("px")?.turnId).toBe("x");
    expect(index.hasConversation("cx")).toBe(false);
    index.finish("x", "cx", []);
    expect(index.hasConversation("cx")).toBe(true);
  });

  it("persists finished turns and recorded next states, reloads them, and compacts the file", async () => {
    const dir = tmp();
    const a = await TurnIndex.open(dir, 100, silentLogger);
    for (let i = 0; i < 150; i++) add(a, i);
    a.noteRecorded(a.findConversation("c149")!, ["ev-1", "ev-2"]);
    a.addPlaced({ turnId: "in-flight", sessionId: "s", parentTurnId: null, promptKey: "pf" });
    await a.close();
    const lines = fs.readFileSync(path.join(dir, INDEX_FILE), "utf8").trim().split("\n");
    expect(lines).toHaveLength(151);

    const b = await TurnIndex.open(dir, 100, silentLogger);
    expect(b.size).toBe(100);
    const t = b.findConversation("c149")!;
    expect(t).toMatchObject({ turnId: "t149", sessionId: "s", parentTurnId: "t148", toolCallIds: ["call_149"] });
    expect([...t.recorded]).toEqual(["ev-1", "ev-2"]);
    expect(b.findPrompt("pf")).toBeUndefined();
    // Beyond twice the limit the file is rewritten with the kept turns only.
    for (let i = 150; i < 260; i++) add(b, i);
    b.noteRecorded(b.findConversation("c259")!, ["ev-3"]);
    await b.close();
    const after = fs.readFileSync(path.join(dir, INDEX_FILE), "utf8").trim().split("\n");
    expect(after.length).toBeLessThan(200);
    const c = await TurnIndex.open(dir, 100, silentLogger);
    expect(c.size).toBe(100);
    expect(c.findConversation("c259")?.turnId).toBe("t259");
    expect([...c.findConversation("c259")!.recorded]).toEqual(["ev-3"]);
    expect(c.findConversation("c149")).toBeUndefined();
    await c.close();
  });

  it("skips unreadable lines (a line cut by a crash) and keeps the rest", async () => {
    const dir = tmp();
    fs.writeFileSync(
      path.join(dir, INDEX_FILE),
      ['{"t":"t1","s":"s","r":null,"p":"p1","c":"c1","k":[]}', "{not json", '{"unexpected":true}', '{"t":"t2","s":"s","r":"t1","p":"p2","c":"c2","k":["x"]}', '{"t":"t3","s":"s"'].join("\n"),
    );
    const index = await TurnIndex.open(dir, 100, silentLogger);
    expect(index.size).toBe(2);
    expect(index.findConversation("c2")?.parentTurnId).toBe("t1");
    await index.close();
  });

  it("works from memory when its directory cannot be used", async () => {
    const dir = tmp();
    const blocked = path.join(dir, "inference");
    fs.writeFileSync(blocked, "a file where the directory should be");
    const index = await TurnIndex.open(blocked, 100, silentLogger);
    expect(index.persisted).toBe(false);
    add(index, 1);
    expect(index.findConversation("c1")?.turnId).toBe("t1");
    await index.close();
  });
});
