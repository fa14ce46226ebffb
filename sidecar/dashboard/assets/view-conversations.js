// Sessions and turns: every model call with what the user asked, what the model answered, what
// happened next, the judge's verdict and the adapter version that served it. Search by text.
import { get } from "./api.js";
import { fill, h } from "./dom.js";
import { ago, clock, duration, rewardClass, rewardText } from "./format.js";

const PAGE = 30;

const KIND_LABEL = /** @type {Record<string, string>} */ ({
  user_message: "user replied",
  tool_result: "tool result",
  tool_error: "tool error",
  model_error: "model error",
  feedback: "feedback",
  session_end: "session ended",
});

/** @param {import("./app.js").Ctx} ctx @returns {import("./app.js").View} */
export function conversationsView(ctx) {
  const search = /** @type {HTMLInputElement} */ (h("input", { type: "search", placeholder: "Search messages and answers…", "aria-label": "Search turns", class: "search" }));
  const sessions = h("ul", { class: "sessions" });
  const head = h("div", { class: "timeline-head" });
  const list = h("div", { class: "timeline", "aria-live": "polite" });
  const more = /** @type {HTMLButtonElement} */ (h("button", { class: "btn btn-quiet more", type: "button", hidden: true }, "Load older turns"));
  ctx.root.append(
    h("div", { class: "conv" }, h("aside", { class: "panel side" }, h("form", { class: "search-form", onsubmit: onSearch }, search), h("h3", { class: "side-title" }, "Recent sessions"), sessions), h("section", { class: "conv-main" }, head, list, more)),
  );

  /** @type {{ session: string | null, q: string | null, turns: string | null, shown: number, next: string | null }} */
  let state = { session: null, q: null, turns: null, shown: PAGE, next: null };

  /** @param {Event} e */
  function onSearch(e) {
    e.preventDefault();
    const p = new URLSearchParams();
    if (state.session) p.set("session", state.session);
    if (search.value.trim()) p.set("q", search.value.trim());
    ctx.go(`#/conversations${p.size ? `?${p}` : ""}`);
  }

  search.addEventListener("search", () => {
    if (search.value === "" && state.q) onSearch(new Event("submit"));
  });

  more.addEventListener("click", async () => {
    if (!state.next) return;
    more.disabled = true;
    try {
      const page = await get("timeline", { session: state.session, q: state.q, before: state.next, limit: PAGE });
      for (const t of page.turns) list.append(turnCard(t));
      state.shown += page.turns.length;
      state.next = page.next;
      more.hidden = !state.next;
    } catch (err) {
      ctx.toast(`Could not load older turns: ${err instanceof Error ? err.message : err}`, "error");
    } finally {
      more.disabled = false;
    }
  });

  /** @param {URLSearchParams} params */
  async function refresh(params) {
    const next = { session: params.get("session"), q: params.get("q"), turns: params.get("turns") };
    const same = next.session === state.session && next.q === state.q && next.turns === state.turns;
    state = { ...next, shown: same ? state.shown : PAGE, next: null };
    if (document.activeElement !== search) search.value = state.q ?? "";
    const [sess, tl] = await Promise.all([
      get("timeline/sessions", { limit: 40 }),
      get("timeline", { session: state.session, q: state.q, turns: state.turns, limit: Math.min(Math.max(state.shown, PAGE), 200) }),
    ]);
    renderSessions(sess.sessions);
    renderHead(tl.turns);
    fill(list, tl.turns.length ? tl.turns.map(turnCard) : h("div", { class: "empty" }, emptyText()));
    state.next = tl.next;
    more.hidden = !tl.next || !!state.turns;
  }

  function emptyText() {
    if (state.q) return `No turn mentions “${state.q}”.`;
    if (state.turns) return "None of these turns is in the store.";
    if (state.session) return "This session has no recorded turns.";
    return "No model calls recorded yet. Point your agent at the sidecar and they appear here as they happen.";
  }

  /** @param {any[]} rows */
  function renderSessions(rows) {
    fill(
      sessions,
      h("li", null, h("a", { href: "#/conversations", class: ["session", !state.session && !state.turns ? "active" : ""] }, h("span", { class: "session-id" }, "All recent turns"))),
      rows.map((se) =>
        h(
          "li",
          null,
          h(
            "a",
            { href: `#/conversations?session=${encodeURIComponent(se.sessionId)}`, class: ["session", state.session === se.sessionId ? "active" : ""], title: se.sessionId },
            h("span", { class: "session-id" }, se.sessionId),
            h("span", { class: "session-meta" }, `${se.turns} turn${se.turns === 1 ? "" : "s"} · ${ago(se.lastAt)}`, se.errors ? h("span", { class: "err-dot", title: `${se.errors} failed` }, ` · ${se.errors} failed`) : null),
            se.lastUser ? h("span", { class: "session-last" }, se.lastUser) : null,
          ),
        ),
      ),
    );
  }

  /** @param {any[]} turns */
  function renderHead(turns) {
    const judged = turns.filter((t) => t.judgment);
    const mean = judged.length ? judged.reduce((n, t) => n + t.judgment.score, 0) / judged.length : null;
    const title = state.turns ? "Training samples" : state.session ? `Session ${state.session}` : state.q ? "Search results" : "Recent turns";
    fill(
      head,
      h("h2", null, title),
      h(
        "div",
        { class: "timeline-stats" },
        `${turns.length} turn${turns.length === 1 ? "" : "s"} shown`,
        judged.length ? ` · ${judged.length} judged · mean reward ${mean !== null && mean > 0 ? "+" : ""}${mean?.toFixed(2)}` : "",
        state.q ? h("a", { href: state.session ? `#/conversations?session=${encodeURIComponent(state.session)}` : "#/conversations", class: "clear" }, "clear search") : null,
        state.turns ? h("a", { href: "#/adapters", class: "clear" }, "back to adapters") : null,
      ),
    );
  }

  return { topics: ["turns", "judgments"], refresh };
}

/** @param {any} t */
function turnCard(t) {
  const statusCls = t.status === "ok" ? "badge-ok" : "badge-bad";
  const j = t.judgment;
  return h(
    "article",
    { class: ["turn", `turn-${t.turnType}`, t.status !== "ok" ? "turn-failed" : ""], dataset: { turnId: t.id } },
    h(
      "header",
      { class: "turn-head" },
      h("span", { class: "seq", title: t.id }, `#${t.seq}`),
      h("time", { datetime: t.startedAt, title: t.startedAt }, clock(t.startedAt)),
      h("a", { class: "turn-session", href: `#/conversations?session=${encodeURIComponent(t.sessionId)}`, title: "Open this session" }, t.sessionId),
      h("span", { class: ["badge", t.turnType === "main" ? "badge-main" : "badge-side"], title: t.turnType === "main" ? "main line: judged and trained on" : "side call: never trained on" }, t.turnType),
      h("span", { class: ["badge", statusCls], title: t.error ?? "" }, t.status.replace("_", " ")),
      h("span", { class: "latency", title: `first byte after ${duration(t.ttfbMs)}` }, duration(t.totalMs)),
      h("span", { class: ["badge", "badge-adapter", t.adapter ? "" : "badge-base"], title: "served by" }, t.adapter ?? "base"),
      h("span", { class: rewardClass(j?.score), title: j ? `reward from ${j.method}` : "not judged yet" }, rewardText(j?.score)),
    ),
    t.user !== null ? h("div", { class: "msg msg-user" }, h("div", { class: "who" }, "User"), h("div", { class: "text" }, t.user || "(empty)")) : null,
    h(
      "div",
      { class: "msg msg-assistant" },
      h("div", { class: "who" }, "Assistant"),
      t.response
        ? [
            t.response.content ? h("div", { class: "text" }, t.response.content) : null,
            t.response.toolCalls.length
              ? h("div", { class: "tools" }, t.response.toolCalls.map((/** @type {any} */ c) => h("div", { class: "tool" }, h("span", { class: "tool-name" }, c.name), h("code", { class: "tool-args" }, c.arguments))))
              : null,
            !t.response.content && !t.response.toolCalls.length ? h("div", { class: "text muted" }, "(no text)") : null,
          ]
        : h("div", { class: "text muted" }, t.error ?? "no response"),
    ),
    t.nextStates.length
      ? h(
          "ul",
          { class: "next" },
          t.nextStates.map((/** @type {any} */ n) =>
            h(
              "li",
              { class: ["ns", `ns-${n.kind}`] },
              h("span", { class: "ns-kind" }, KIND_LABEL[n.kind] ?? n.kind, n.toolName ? ` · ${n.toolName}` : "", n.exitCode !== null && n.exitCode !== undefined ? ` · exit ${n.exitCode}` : "", n.score !== null && n.score !== undefined ? ` · ${rewardText(n.score)}` : ""),
              n.text ? h("span", { class: "ns-text" }, n.text) : null,
            ),
          ),
        )
      : t.turnType === "main" && t.status === "ok"
        ? h("div", { class: "next-none" }, "Waiting for what happens next…")
        : null,
    j
      ? h(
          "div",
          { class: "judgment" },
          h("span", { class: rewardClass(j.score) }, rewardText(j.score)),
          h("span", { class: "method" }, j.method === "prm" ? "judge (PRM)" : j.method),
          j.votes?.length
            ? h(
                "span",
                { class: "votes", title: `votes: ${j.votes.map((/** @type {number|null} */ v) => (v === null ? "invalid" : rewardText(v))).join(", ")}` },
                j.votes.map((/** @type {number|null} */ v) => h("i", { class: ["vote", v === null ? "vote-null" : v > 0 ? "vote-pos" : v < 0 ? "vote-neg" : "vote-zero"] })),
              )
            : null,
          j.judgeModel ? h("span", { class: "muted small" }, j.judgeModel) : null,
          j.hint ? h("blockquote", { class: "hint" }, h("span", { class: "hint-label" }, "Hint"), j.hint) : null,
        )
      : null,
  );
}
