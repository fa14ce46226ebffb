// Adapters: every version the trainer wrote, its status (live, candidate, rejected, retired), when
// it went live and what it was trained on; roll back, pin and unpin with one click.
import { get, post } from "./api.js";
import { fill, h } from "./dom.js";
import { ago, clock, count } from "./format.js";

const STATUS_HELP = /** @type {Record<string, string>} */ ({
  live: "serving new requests",
  candidate: "written by the trainer, not (yet) serving",
  rejected: "failed its check after loading; never served",
  retired: "served before; replaced or rolled back",
});

/** @param {import("./app.js").Ctx} ctx @returns {import("./app.js").View} */
export function adaptersView(ctx) {
  const summary = h("section", { class: "panel adapters-summary" });
  const table = h("section", { class: "panel" });
  ctx.root.append(summary, table);
  let busy = false;

  /** @param {string} what @param {string} path @param {Record<string, string>} body */
  async function act(what, path, body) {
    if (busy) return;
    busy = true;
    for (const b of ctx.root.querySelectorAll("button")) /** @type {HTMLButtonElement} */ (b).disabled = true;
    try {
      const r = await post(path, body);
      ctx.toast(`${what}: live ${r.live ?? "base model"}${r.pinned ? `, pinned ${r.pinned}` : ""}`);
    } catch (err) {
      ctx.toast(`${what} failed: ${err instanceof Error ? err.message : err}`, "error");
    } finally {
      busy = false;
      ctx.changed(["adapters"]);
    }
  }

  async function refresh() {
    let data;
    // The last rollback is in the sidecar's status (switchboard.lastRollback); without it the
    // versions still show.
    const status = get("status").catch(() => null);
    try {
      data = await get("adapters");
    } catch (err) {
      if (/** @type {any} */ (err)?.status === 404) {
        fill(summary, h("h2", null, "Adapters"), h("div", { class: "notice" }, "This sidecar runs without an adapter switchboard, so it serves the base model only. Start it with hot-loading (clawloop up) to load, roll back and pin adapter versions."));
        fill(table);
        return;
      }
      throw err;
    }
    const rollback = (await status)?.switchboard?.lastRollback ?? null;
    const versions = /** @type {any[]} */ (data.versions);
    const live = versions.find((v) => v.id === data.live);
    fill(
      summary,
      h("div", { class: "panel-head" }, h("h2", null, "Adapters"), h("span", { class: "muted" }, `${versions.length} version${versions.length === 1 ? "" : "s"}`)),
      h(
        "div",
        { class: "facts" },
        h("div", { class: "fact" }, h("div", { class: "fact-label" }, "Live"), h("div", { class: "fact-value", id: "adapters-live" }, data.live ?? "base model"), live?.liveAt ? h("div", { class: "fact-sub" }, `since ${clock(live.liveAt)} (${ago(live.liveAt)})`) : null),
        h(
          "div",
          { class: "fact" },
          h("div", { class: "fact-label" }, "Pinned"),
          h("div", { class: "fact-value", id: "adapters-pinned" }, data.pinned ?? "no"),
          h("div", { class: "fact-sub" }, data.pinned ? "new versions wait until you unpin" : "each new version goes live once it passes its check"),
        ),
        rollback ? rollbackFact(rollback) : null,
        data.pinned ? h("div", { class: "fact fact-action" }, h("button", { class: "btn", type: "button", onclick: () => act("Unpinned", "adapters/unpin", {}) }, "Unpin")) : null,
      ),
    );
    fill(
      table,
      versions.length
        ? h(
            "table",
            { class: "table adapters" },
            h("thead", null, h("tr", null, ["Version", "Status", "Live since", "Step", "Trained on", "Parent", "Written", "", ""].map((c) => h("th", null, c)))),
            h(
              "tbody",
              null,
              versions.map((v) => {
                const m = v.manifest ?? {};
                const ids = /** @type {string[]} */ (m.sampleIds ?? []);
                const isLive = v.id === data.live;
                const isPinned = v.id === data.pinned;
                return h(
                  "tr",
                  { class: isLive ? "row-live" : "", dataset: { version: v.id } },
                  h("td", { class: "mono strong" }, v.id, isPinned ? h("span", { class: "badge badge-pin", title: "pinned" }, "pinned") : null),
                  h("td", null, h("span", { class: ["badge", `badge-${v.status}`], title: v.statusReason ?? STATUS_HELP[v.status] ?? "" }, v.status), v.statusReason ? h("div", { class: "reason" }, v.statusReason) : null),
                  h("td", null, v.liveAt ? clock(v.liveAt) : "—"),
                  h("td", { class: "num" }, m.step ?? "—"),
                  h(
                    "td",
                    null,
                    ids.length
                      ? h("a", { href: `#/conversations?turns=${encodeURIComponent(ids.slice(0, 200).join(","))}`, title: "Show the turns this version was trained on" }, `${count(m.sampleCount ?? ids.length)} sample${(m.sampleCount ?? ids.length) === 1 ? "" : "s"}`)
                      : `${count(m.sampleCount ?? 0)} samples`,
                  ),
                  h("td", { class: "mono" }, m.parent ?? "base"),
                  h("td", null, m.createdAt ? clock(m.createdAt) : "—"),
                  h(
                    "td",
                    { class: "actions" },
                    isLive
                      ? h("span", { class: "muted small" }, "serving")
                      : v.status === "rejected"
                        ? h("span", { class: "muted small", title: "A version that failed its check cannot go live" }, "failed its check")
                        : h("button", { class: "btn btn-small", type: "button", title: `Make ${v.id} live again (and pin it)`, onclick: () => act(`Rolled back to ${v.id}`, "adapters/rollback", { version: v.id }) }, "Roll back to this"),
                  ),
                  h(
                    "td",
                    { class: "actions" },
                    isPinned
                      ? h("button", { class: "btn btn-small btn-quiet", type: "button", onclick: () => act("Unpinned", "adapters/unpin", {}) }, "Unpin")
                      : v.status === "rejected"
                        ? null
                        : h("button", { class: "btn btn-small btn-quiet", type: "button", title: `Keep ${v.id} live; new versions wait`, onclick: () => act(`Pinned ${v.id}`, "adapters/pin", { version: v.id }) }, "Pin"),
                  ),
                );
              }),
            ),
          )
        : h("div", { class: "chart-empty" }, "No adapter versions yet: the train loop writes one per training step."),
    );
  }

  return { topics: ["adapters"], refresh };
}

/**
 * The last rollback asked for, as `clawloop status` prints it: a failed one says so, with the reason
 * (the live version kept serving).
 * @param {{version: string, state: "pending" | "done" | "failed", reason: string | null, requestedAt: string, at: string | null}} r
 */
function rollbackFact(r) {
  const sub =
    r.state === "pending" ? `asked ${ago(r.requestedAt)}, not live yet` : r.state === "done" ? `at ${clock(r.at)} (${ago(r.at)})` : `at ${clock(r.at)}: ${r.reason ?? "no reason given"}`;
  return h(
    "div",
    { class: "fact", id: "adapters-rollback", dataset: { state: r.state } },
    h("div", { class: "fact-label" }, "Last rollback"),
    h("div", { class: "fact-value" }, `to ${r.version}`, r.state === "done" ? null : h("span", { class: ["badge", r.state === "failed" ? "badge-bad" : "badge-candidate"] }, r.state)),
    h("div", { class: ["fact-sub", r.state === "failed" ? "fact-bad" : ""] }, sub),
  );
}
