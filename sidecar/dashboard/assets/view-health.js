// Health: the four loops (serve, collect, judge, train), what is waiting in each, and the last
// errors any of them reported.
import { get } from "./api.js";
import { fill, h } from "./dom.js";
import { ago, clock, count, duration, num } from "./format.js";

/** @param {import("./app.js").Ctx} ctx @returns {import("./app.js").View} */
export function healthView(ctx) {
  const loops = h("div", { class: "loops" });
  const queues = h("section", { class: "panel" });
  const errors = h("section", { class: "panel" });
  ctx.root.append(loops, h("div", { class: "grid2 health-lower" }, queues, errors));

  async function refresh() {
    const v = await get("loops");
    const j = v.judge.status;
    const t = v.train.status;
    fill(
      loops,
      card("serve", "Serve", v.serve.health.ok ? "ok" : "down", v.serve.health.ok ? "model server answers" : "model server not answering", [
        ["Upstream", v.serve.url],
        ["Kind", v.serve.kind ?? "unknown"],
        ["Answered", v.serve.health.status ?? "no answer"],
        ["Latency", duration(v.serve.health.latencyMs)],
        ["Checked", ago(v.serve.health.checkedAt)],
      ]),
      card("collect", "Collect", v.collect.ok ? "ok" : "down", v.collect.ok ? "recording every call" : "store failing: rows wait in the log", [
        ["Turns since start", count(v.collect.turnsSinceStart)],
        ["Next states since start", count(v.collect.eventsSinceStart.stored ?? 0)],
        ["In flight", count(v.collect.inflight)],
        ["LanceDB", v.collect.store.lance],
        ["Log", v.collect.store.log],
        ["Running since", ago(v.collect.startedAt)],
      ]),
      card("judge", "Judge", loopLevel(v.judge), loopSub(v.judge, j ? `${j.judge ?? ""}` : ""), j ? [
        ["Waiting", count(j.waiting)],
        ["Ready · settling · retrying", `${count(j.ready)} · ${count(j.settling)} · ${count(j.retrying)}`],
        ["In flight", count(j.inFlight)],
        ["Judged", `${count(j.judged)} (${count(j.judgedThisRun)} this run)`],
        ["Last judged", ago(j.lastJudgedAt)],
        ["Updated", ago(j.updatedAt)],
      ] : []),
      card("train", "Train", loopLevel(v.train), loopSub(v.train, t ? `${t.state} · ${t.mode}` : ""), t ? [
        ["Samples waiting", count(t.samplesWaiting)],
        ["Awaiting their turn", count(t.awaitingTurn)],
        ["Latest version", t.version ?? "none"],
        ["Last step", t.lastStep ? `${t.lastStep.step} · loss ${num(t.lastStep.loss, 4)} · ${duration(t.lastStep.durationMs)}` : "—"],
        ["Last step at", t.lastStep ? ago(t.lastStep.at) : "—"],
        ...trainExtras(v.train),
        ["Updated", ago(t.updatedAt)],
      ] : []),
    );
    const tables = Object.entries(v.collect.store.tables ?? {});
    fill(
      queues,
      h("div", { class: "panel-head" }, h("h2", null, "Queues")),
      h(
        "table",
        { class: "table compact" },
        h("tbody", null,
          row("Turns waiting for a judgment", j ? count(j.waiting) : "—", j ? `${count(j.ready)} ready, ${count(j.settling)} waiting for more next states, ${count(j.retrying)} retrying` : "judge loop has not run here"),
          row("Samples waiting for training", t ? count(t.samplesWaiting) : "—", t ? `${count(t.awaitingTurn)} judged turns not in the store yet` : "train loop has not run here"),
          row("Rows in the log, not yet in LanceDB", count(v.collect.pendingRows), tables.map(([name, th]) => `${name} ${/** @type {any} */ (th)?.pending ?? 0}`).join(", ")),
          row("Requests in flight", count(v.collect.inflight), ""),
        ),
      ),
    );
    fill(
      errors,
      h("div", { class: "panel-head" }, h("h2", null, "Last errors")),
      v.errors.length
        ? h("ul", { class: "errors" }, v.errors.map((/** @type {any} */ e) => h("li", null, h("span", { class: "badge badge-bad" }, e.loop), h("span", { class: "err-msg" }, e.message), e.at ? h("time", { title: e.at }, ` ${clock(e.at)}`) : null)))
        : h("div", { class: "all-clear" }, "No errors reported."),
    );
  }

  return { topics: ["loops", "train", "judgments"], refresh };
}

/**
 * What `clawloop status` adds about training: whether the base model is in memory (only while the
 * trainer runs; a gone trainer holds nothing), who paused training and why, and its latest fall back
 * from a rejected version.
 * @param {any} train the loops view's train: the status file, its state and the pause flag
 * @returns {[string, string][]}
 */
function trainExtras(train) {
  const t = train.status;
  /** @type {[string, string][]} */
  const rows = [];
  const w = t.weights;
  if (w && train.state === "running") {
    const state = w.state === "not loaded" ? "not loaded (loads when a batch is ready)" : w.state === "loading" ? "loading (a batch is ready)" : `loaded since ${clock(w.since)}`;
    rows.push(["Base model", `${state} · trainer RSS ${count(w.rssMb)} MB`]);
  }
  const p = train.paused;
  if (p) {
    const who = [p.by && p.by !== "unknown" ? `by ${p.by}` : "", p.reason ?? ""].filter(Boolean).join(" — ");
    rows.push(["Paused", `${who || "yes"}${p.since ? ` (since ${clock(p.since)})` : ""}`]);
  }
  const f = t.fallback;
  // The trainer writes the line `clawloop status` prints (trainer/status.ts fallbackOf); an older
  // trainer's file has only the facts.
  if (f) rows.push(["Fell back", `${typeof f.text === "string" ? f.text : fallbackFacts(f)} (${ago(f.at)})`]);
  return rows;
}

/**
 * A fall back from a status file without its line (written by an older trainer): the facts as they are.
 * @param {{grewFrom?: string | null, passedOver?: string, rejected?: {version: string, reason: string}[]}} f
 */
function fallbackFacts(f) {
  const rejected = Array.isArray(f.rejected) ? f.rejected.map((r) => `${r.version} (${r.reason})`).join(", ") : "";
  return [`passed over ${f.passedOver ?? "?"}`, f.grewFrom ? `grew from ${f.grewFrom}` : "started a fresh adapter", rejected && `rejected: ${rejected}`].filter(Boolean).join("; ");
}

/** @param {any} f */
function loopLevel(f) {
  if (f.state === "running") return f.status?.lastError ? "warn" : "ok";
  if (f.state === "never ran") return "idle";
  if (f.state === "stopped") return f.status?.state === "failed" ? "down" : "idle";
  return "down";
}

/** @param {any} f @param {string} extra */
function loopSub(f, extra) {
  if (f.state === "never ran") return "has not run with this data directory";
  if (f.state === "unreadable") return f.error;
  if (f.state === "not running") return "its process is gone";
  return [f.state, extra].filter(Boolean).join(" · ");
}

/**
 * @param {string} id @param {string} title @param {"ok" | "warn" | "down" | "idle"} level @param {string} sub
 * @param {[string, string | number][]} facts
 */
function card(id, title, level, sub, facts) {
  return h(
    "section",
    { class: ["panel", "loop", `loop-${level}`], dataset: { loop: id } },
    h("div", { class: "loop-head" }, h("i", { class: "dot", title: level }), h("h2", null, title), h("span", { class: "loop-sub" }, sub)),
    facts.length ? h("dl", { class: "kv" }, facts.map(([k, val]) => [h("dt", null, k), h("dd", null, String(val))])) : null,
  );
}

/** @param {string} label @param {string} value @param {string} note */
function row(label, value, note) {
  return h("tr", null, h("th", null, label), h("td", { class: "num strong" }, value), h("td", { class: "muted" }, note));
}
