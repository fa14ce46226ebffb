// Learning: is it getting better? The reward trend (each judged turn, and the rolling mean), the
// training steps (losses, KL to the base model, gradient norm, tokens) and, from demo runs, how
// satisfied a simulated user was after each adapter version.
import { get } from "./api.js";
import { chart } from "./charts.js";
import { fill, h } from "./dom.js";
import { clock, count, duration, num } from "./format.js";

const RUN_COLORS = ["var(--accent)", "var(--pos)", "var(--warn)", "var(--neg)", "var(--c5)", "var(--c6)"];

/** @param {import("./app.js").Ctx} ctx @returns {import("./app.js").View} */
export function learningView(ctx) {
  const rewards = h("section", { class: "panel" });
  const steps = h("section", { class: "panel" });
  const runs = h("section", { class: "panel" });
  const table = h("section", { class: "panel" });
  ctx.root.append(h("div", { class: "learning" }, rewards, steps, runs, table));

  async function refresh() {
    const [rw, st, rn] = await Promise.all([get("rewards", { limit: 2000, window: 20 }), get("train-steps", { limit: 500 }), get("runs", { limit: 12 })]);
    renderRewards(rw);
    const ordered = [...st.steps].reverse();
    renderSteps(ordered);
    renderRuns(rn.runs);
    renderTable(st.steps.slice(0, 25));
  }

  /** @param {any} rw */
  function renderRewards(rw) {
    const pts = rw.points.map((/** @type {any} */ p, /** @type {number} */ i) => ({
      x: Date.parse(p.at),
      // Spread the dots a little so a run of equal rewards reads as many turns, not one.
      y: p.score + (((i * 7919) % 13) - 6) * 0.012,
      title: `${clock(p.at)} · ${p.score > 0 ? "+1" : p.score < 0 ? "−1" : "0"} (${p.method}) · ${p.turnId}`,
      score: p.score,
    }));
    const latest = rw.rolling.at(-1);
    const pos = rw.points.filter((/** @type {any} */ p) => p.score > 0).length;
    const neg = rw.points.filter((/** @type {any} */ p) => p.score < 0).length;
    fill(
      rewards,
      h("div", { class: "panel-head" }, h("h2", null, "Reward trend"), h("span", { class: "muted" }, `rolling mean over ${rw.window} judged turns`)),
      h(
        "div",
        { class: "facts" },
        fact("Judged turns", count(rw.total)),
        fact("Shown", count(rw.points.length)),
        fact("Positive", rw.points.length ? `${Math.round((100 * pos) / rw.points.length)}%` : "—"),
        fact("Negative", rw.points.length ? `${Math.round((100 * neg) / rw.points.length)}%` : "—"),
        fact("Rolling mean now", latest ? `${latest.mean > 0 ? "+" : ""}${num(latest.mean, 2)}` : "—"),
      ),
      chart({
        width: inner(rewards),
        label: "Reward per judged turn and its rolling mean",
        x: "time",
        yMin: -1.15,
        yMax: 1.15,
        yTicks: [-1, -0.5, 0, 0.5, 1],
        yFormat: (v) => (v > 0 ? `+${v}` : String(v)),
        height: 220,
        empty: "No judged turns yet: the judge loop scores turns once their next state arrives.",
        series: [
          { name: "+1", color: "var(--pos)", kind: "dots", points: pts.filter((/** @type {any} */ p) => p.score > 0) },
          { name: "0", color: "var(--zero)", kind: "dots", points: pts.filter((/** @type {any} */ p) => p.score === 0) },
          { name: "−1", color: "var(--neg)", kind: "dots", points: pts.filter((/** @type {any} */ p) => p.score < 0) },
          { name: `rolling mean (${rw.window})`, color: "var(--accent)", kind: "line", points: rw.rolling.map((/** @type {any} */ r) => ({ x: Date.parse(r.at), y: r.mean, title: `${clock(r.at)} · mean ${num(r.mean, 2)} of ${r.n}` })) },
        ],
      }),
    );
  }

  /** @param {any[]} st oldest first */
  function renderSteps(st) {
    /** @param {string} key @param {any} s */
    const pt = (key, s) => ({ x: s.step, y: s[key], title: `step ${s.step} (${s.version}) · ${key} ${num(s[key], 4)}` });
    const series = (/** @type {string} */ key) => st.filter((s) => s[key] !== null && s[key] !== undefined).map((s) => pt(key, s));
    const empty = "No training steps yet: the train loop steps once enough judged samples are waiting.";
    const kind = st.length > 60 ? "line" : "line+dots";
    // Two charts a row, each in a box with 12px padding, 16px apart.
    const width = (inner(steps) - 16) / 2 - 26;
    fill(
      steps,
      h("div", { class: "panel-head" }, h("h2", null, "Training steps"), h("span", { class: "muted" }, st.length ? `${st.length} step${st.length === 1 ? "" : "s"}, latest ${st.at(-1).version}` : "")),
      h(
        "div",
        { class: "grid2" },
        small("Loss", chart({ x: "number", xIntegers: true, width, height: 170, empty, series: [
          { name: "total", color: "var(--accent)", kind, points: series("loss") },
          { name: "RL", color: "var(--warn)", kind: "line", dash: true, points: series("lossRl") },
          { name: "OPD", color: "var(--c5)", kind: "line", dash: true, points: series("lossOpd") },
        ] })),
        small("KL to base", chart({ x: "number", xIntegers: true, width, height: 170, empty: st.length ? "The trainer did not measure KL." : empty, series: [{ name: "", color: "var(--c6)", kind, points: series("klToBase") }] })),
        small("Gradient norm", chart({ x: "number", xIntegers: true, width, height: 170, empty, series: [{ name: "", color: "var(--neg)", kind, points: series("gradNorm") }] })),
        small("Tokens and mean reward per step", chart({ x: "number", xIntegers: true, width, height: 170, empty, series: [
          { name: "tokens (÷1000)", color: "var(--zero)", kind, points: st.map((s) => ({ x: s.step, y: s.tokens / 1000, title: `step ${s.step} · ${count(s.tokens)} tokens, ${s.samples} samples` })) },
          { name: "mean reward", color: "var(--pos)", kind, points: series("meanReward") },
        ] })),
      ),
    );
  }

  /** @param {any[]} list */
  function renderRuns(list) {
    const ok = list.filter((r) => r.summary);
    const broken = list.filter((r) => r.error);
    fill(
      runs,
      h("div", { class: "panel-head" }, h("h2", null, "Satisfaction in demo runs"), h("span", { class: "muted" }, "share of a simulated user's interactions that satisfied them")),
      ok.length
        ? chart({
            width: inner(runs),
            label: "Satisfaction rate per demo run",
            x: "number",
            xIntegers: true,
            yMin: 0,
            yMax: 1,
            yTicks: [0, 0.25, 0.5, 0.75, 1],
            yFormat: (v) => `${Math.round(v * 100)}%`,
            height: 220,
            series: ok.map((r, i) => ({
              name: `${r.summary.persona} · ${r.summary.mode}`,
              color: RUN_COLORS[i % RUN_COLORS.length],
              kind: "line+dots",
              points: r.summary.satisfaction.map((/** @type {any} */ p) => ({ x: p.afterInteractions, y: p.rate, title: `${r.summary.persona} · after ${p.afterInteractions} interactions · ${p.version ?? "base"} · ${Math.round(p.rate * 100)}%` })),
            })),
          })
        : h("div", { class: "chart-empty" }, "No demo runs yet. A demo run writes runs/<id>/summary.json in the data directory, and its curve appears here."),
      ok.length
        ? h(
            "table",
            { class: "table compact" },
            h("thead", null, h("tr", null, ["Run", "Persona", "Mode", "Interactions", "First → last", "Perplexity change", "Started"].map((c) => h("th", null, c)))),
            h(
              "tbody",
              null,
              ok.map((r) => {
                const sat = r.summary.satisfaction;
                return h(
                  "tr",
                  null,
                  h("td", { class: "mono" }, r.id),
                  h("td", null, r.summary.persona),
                  h("td", null, r.summary.mode),
                  h("td", { class: "num" }, count(r.summary.interactions)),
                  h("td", { class: "num" }, sat.length ? `${Math.round(sat[0].rate * 100)}% → ${Math.round(sat.at(-1).rate * 100)}%` : "—"),
                  h("td", { class: "num" }, r.summary.perplexityChange === null || r.summary.perplexityChange === undefined ? "—" : num(r.summary.perplexityChange, 3)),
                  h("td", null, clock(r.summary.startedAt)),
                );
              }),
            ),
          )
        : null,
      broken.map((r) => h("div", { class: "notice notice-error" }, `Run ${r.id}: ${r.error}`)),
    );
  }

  /** @param {any[]} st newest first */
  function renderTable(st) {
    fill(
      table,
      h("div", { class: "panel-head" }, h("h2", null, "Recent steps")),
      st.length
        ? h(
            "table",
            { class: "table compact" },
            h("thead", null, h("tr", null, ["Step", "Version", "Mode", "Loss", "RL", "OPD", "KL", "Grad norm", "Mean reward", "Samples", "Tokens", "LR", "Took", "When"].map((c) => h("th", null, c)))),
            h(
              "tbody",
              null,
              st.map((s) =>
                h(
                  "tr",
                  null,
                  h("td", { class: "num" }, s.step),
                  h("td", { class: "mono" }, s.version),
                  h("td", null, s.mode),
                  h("td", { class: "num" }, num(s.loss, 4)),
                  h("td", { class: "num" }, num(s.lossRl, 4)),
                  h("td", { class: "num" }, num(s.lossOpd, 4)),
                  h("td", { class: "num" }, num(s.klToBase, 4)),
                  h("td", { class: "num" }, num(s.gradNorm, 3)),
                  h("td", { class: "num" }, num(s.meanReward, 2)),
                  h("td", { class: "num" }, h("a", { href: `#/conversations?turns=${encodeURIComponent(s.sampleIds.slice(0, 200).join(","))}` }, count(s.samples))),
                  h("td", { class: "num" }, count(s.tokens)),
                  h("td", { class: "num" }, num(s.lr, 6)),
                  h("td", { class: "num" }, duration(s.durationMs)),
                  h("td", null, clock(s.createdAt)),
                ),
              ),
            ),
          )
        : h("div", { class: "chart-empty" }, "Nothing trained yet."),
    );
  }

  return { topics: ["judgments", "train", "runs"], refresh };
}

/** The drawing width inside a panel (18px padding each side). @param {HTMLElement} panel */
function inner(panel) {
  return panel.clientWidth - 36;
}

/** @param {string} label @param {string} value */
function fact(label, value) {
  return h("div", { class: "fact" }, h("div", { class: "fact-label" }, label), h("div", { class: "fact-value" }, value));
}

/** @param {string} title @param {HTMLElement} body */
function small(title, body) {
  return h("div", { class: "small-chart" }, h("h3", null, title), body);
}
