// Prometheus metrics of one sidecar, on a registry of its own (several sidecars may share a process
// in tests, and `clawloop up` may add loops' metrics beside these).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { StoreHealth } from "../core/index.js";

export type EndpointLabel = "chat" | "completions" | "passthrough";

export class SidecarMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"endpoint" | "status">;
  readonly ttfb: Histogram<"endpoint">;
  readonly duration: Histogram<"endpoint">;
  readonly turns: Counter<"status" | "turn_type">;
  readonly unrecorded: Counter<"reason">;
  readonly recordErrors: Counter;
  readonly recordWaitTimeouts: Counter;
  readonly seqRewritesDropped: Counter;
  readonly events: Counter<"result">;
  readonly inflight: Gauge;

  constructor(store: { health(): StoreHealth }, upstreamHealthy: () => number) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: "clawloop_sidecar_" });
    this.requests = new Counter({
      name: "clawloop_sidecar_requests_total",
      help: "Requests proxied, by endpoint and upstream HTTP status (0: no response from the upstream).",
      labelNames: ["endpoint", "status"],
      registers,
    });
    this.ttfb = new Histogram({
      name: "clawloop_sidecar_ttfb_seconds",
      help: "Time from the request reaching the sidecar to the first response byte sent to the client.",
      labelNames: ["endpoint"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.duration = new Histogram({
      name: "clawloop_sidecar_request_duration_seconds",
      help: "Time from the request reaching the sidecar to the end of the response.",
      labelNames: ["endpoint"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    this.turns = new Counter({
      name: "clawloop_sidecar_turns_total",
      help: "Model calls recorded as turns, by status and turn type.",
      labelNames: ["status", "turn_type"],
      registers,
    });
    this.unrecorded = new Counter({
      name: "clawloop_sidecar_unrecorded_total",
      help: "Model calls forwarded without being recorded, by reason.",
      labelNames: ["reason"],
      registers,
    });
    this.recordErrors = new Counter({
      name: "clawloop_sidecar_record_errors_total",
      help: "Turns that could not be built or logged (the call itself was answered).",
      registers,
    });
    this.recordWaitTimeouts = new Counter({
      name: "clawloop_sidecar_record_wait_timeouts_total",
      help: "Answers finished before their turn reached the log (the store was slow or down).",
      registers,
    });
    this.seqRewritesDropped = new Counter({
      name: "clawloop_sidecar_seq_rewrites_dropped_total",
      help: "Calls journaled without their place in the session while its last seq could not be read, not kept to be written again with it (past sidecar.seqRewritesPerSession or sidecar.seqRewritesMax): their rows keep the store's number.",
      registers,
    });
    this.events = new Counter({
      name: "clawloop_sidecar_events_total",
      help: "Next-state events received, by result (stored, duplicate, invalid).",
      labelNames: ["result"],
      registers,
    });
    this.inflight = new Gauge({
      name: "clawloop_sidecar_inflight_requests",
      help: "Requests being proxied right now.",
      registers,
    });
    new Gauge({
      name: "clawloop_sidecar_store_pending_rows",
      help: "Rows acknowledged (in the append-only log) but not yet in LanceDB, by table.",
      labelNames: ["table"],
      registers,
      collect() {
        for (const [table, h] of Object.entries(store.health().tables)) this.set({ table }, h?.pending ?? 0);
      },
    });
    new Gauge({
      name: "clawloop_sidecar_store_healthy",
      help: "1 when LanceDB and the log both accept writes.",
      registers,
      collect() {
        this.set(store.health().ok ? 1 : 0);
      },
    });
    new Gauge({
      name: "clawloop_sidecar_upstream_healthy",
      help: "1 when the last exchange with the upstream got an HTTP response.",
      registers,
      collect() {
        this.set(upstreamHealthy());
      },
    });
  }
}
