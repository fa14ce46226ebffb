// The dashboard's shell: views by URL hash, live updates over Server-Sent Events, the summary
// strip and the live adapter in the header.
import { get } from "./api.js";
import { byId, fill, h } from "./dom.js";
import { count, num, rewardText } from "./format.js";
import { conversationsView } from "./view-conversations.js";
import { learningView } from "./view-learning.js";
import { adaptersView } from "./view-adapters.js";
import { healthView } from "./view-health.js";

/**
 * A view renders into its root and refreshes when topics it cares about change.
 * @typedef {{ topics: string[], refresh(params: URLSearchParams): Promise<void>, dispose?(): void }} View
 * @typedef {{ root: HTMLElement, toast(msg: string, kind?: "ok" | "error"): void, go(hash: string): void, changed(topics: string[]): void }} Ctx
 * @typedef {(ctx: Ctx) => View} ViewFactory
 */

/** @type {Record<string, ViewFactory>} */
const VIEWS = { conversations: conversationsView, learning: learningView, adapters: adaptersView, health: healthView };

const root = byId("view");
let toastTimer = 0;

/** @type {Ctx} */
const ctx = {
  root,
  toast(msg, kind = "ok") {
    const el = byId("toast");
    fill(el, msg);
    el.className = `toast show toast-${kind}`;
    clearTimeout(toastTimer);
    toastTimer = window.setTimeout(() => (el.className = "toast"), kind === "error" ? 7000 : 3500);
  },
  go(hash) {
    if (location.hash === hash) void show();
    else location.hash = hash;
  },
  changed(topics) {
    onChange(topics);
  },
};

/** @type {{ name: string, view: View } | null} */
let current = null;
let refreshing = Promise.resolve();

function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [name = "", query = ""] = raw.split("?");
  return { name: VIEWS[name] ? name : "conversations", params: new URLSearchParams(query) };
}

async function show() {
  const { name, params } = route();
  for (const a of document.querySelectorAll(".tabs a")) a.classList.toggle("active", /** @type {HTMLElement} */ (a).dataset.view === name);
  if (!current || current.name !== name) {
    current?.view.dispose?.();
    fill(root);
    root.dataset.view = name;
    current = { name, view: VIEWS[name](ctx) };
  }
  await runRefresh(() => /** @type {NonNullable<typeof current>} */ (current).view.refresh(params));
}

/** Refreshes run one at a time; a failure shows once and leaves the last good picture. @param {() => Promise<void>} fn */
function runRefresh(fn) {
  refreshing = refreshing.then(fn).catch((err) => {
    if (err?.status !== 401) ctx.toast(`Could not load: ${err instanceof Error ? err.message : String(err)}`, "error");
  });
  return refreshing;
}

// --- the summary strip and header ---

const KPI_TOPICS = ["turns", "judgments", "train", "adapters", "loops"];

/** @param {string} label @param {string} value @param {string} [sub] @param {string} [cls] */
function kpi(label, value, sub, cls) {
  return h("div", { class: ["kpi", cls] }, h("div", { class: "kpi-label" }, label), h("div", { class: "kpi-value" }, value), sub ? h("div", { class: "kpi-sub" }, sub) : null);
}

async function refreshSummary() {
  const [loops, rewards, steps, adapters] = await Promise.all([
    get("loops").catch(() => null),
    get("rewards", { limit: 200, window: 20 }).catch(() => null),
    get("train-steps", { limit: 1 }).catch(() => null),
    get("adapters").catch(() => null),
  ]);
  const mean = rewards?.rolling?.at(-1)?.mean;
  const step = steps?.steps?.[0];
  const live = adapters?.live ?? null;
  const pill = byId("live-adapter");
  fill(pill, `live: ${adapters ? live ?? "base model" : "—"}`);
  pill.className = `pill ${live ? "pill-live" : ""}`;
  const judge = loops?.judge?.status;
  const train = loops?.train?.status;
  const byScore = judge?.byScore;
  fill(
    byId("kpis"),
    kpi("Turns recorded", count(loops?.collect?.turnsTotal ?? loops?.collect?.turnsSinceStart), loops ? `${count(loops.collect.turnsSinceStart)} since the sidecar started` : ""),
    kpi("Judged", count(rewards?.total), byScore ? `+1 ${count(byScore["1"])} · 0 ${count(byScore["0"])} · −1 ${count(byScore["-1"])}` : "judgments in the store"),
    kpi(
      "Reward (rolling mean)",
      mean === undefined ? "—" : (mean >= 0 ? "+" : "") + num(mean, 2),
      rewards?.points?.length ? `last ${Math.min(rewards.window, rewards.points.length)} judged turns` : "no judgments yet",
      mean === undefined ? "" : mean > 0.05 ? "kpi-pos" : mean < -0.05 ? "kpi-neg" : "",
    ),
    kpi("Training", step ? `step ${step.step}` : "—", step ? `loss ${num(step.loss, 4)} · reward ${rewardText(Math.sign(step.meanReward))}` : `${count(train?.samplesWaiting ?? 0)} samples waiting`),
    kpi("Live adapter", live ?? "base model", adapters?.pinned ? `pinned ${adapters.pinned}` : adapters ? "follows training" : "no adapter switchboard"),
  );
}

// --- live updates ---

let pending = new Set(/** @type {string[]} */ ([]));
let flushTimer = 0;

/** Coalesces bursts of changes into one refresh. @param {string[]} topics */
function onChange(topics) {
  for (const t of topics) pending.add(t);
  clearTimeout(flushTimer);
  flushTimer = window.setTimeout(() => {
    const changed = pending;
    pending = new Set();
    if (KPI_TOPICS.some((t) => changed.has(t))) void refreshSummary().catch(() => undefined);
    if (current && current.view.topics.some((t) => changed.has(t))) void runRefresh(() => /** @type {NonNullable<typeof current>} */ (current).view.refresh(route().params));
  }, 150);
}

function connect() {
  const conn = byId("conn");
  const es = new EventSource("/clawloop/v1/updates");
  let first = true;
  es.addEventListener("hello", () => {
    fill(conn, "live");
    conn.className = "conn conn-live";
    // After a reconnect anything may have changed; the first time, the page is loading already.
    if (!first) onChange(["turns", "judgments", "train", "adapters", "loops", "runs"]);
    first = false;
  });
  let changes = 0;
  es.addEventListener("change", (ev) => {
    const data = JSON.parse(/** @type {MessageEvent} */ (ev).data);
    changes++;
    conn.dataset.changes = String(changes);
    conn.title = `Live updates: ${changes} so far, the last at ${new Date().toLocaleTimeString()} (${(data.topics ?? []).join(", ")})`;
    onChange(data.topics ?? []);
  });
  es.addEventListener("error", () => {
    fill(conn, "reconnecting…");
    conn.className = "conn conn-down";
  });
}

window.addEventListener("hashchange", () => void show());
// Charts are drawn at their shown width: draw again once a resize settles.
let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = window.setTimeout(() => current && void runRefresh(() => /** @type {NonNullable<typeof current>} */ (current).view.refresh(route().params)), 250);
});
void show();
void refreshSummary().catch(() => undefined);
connect();
