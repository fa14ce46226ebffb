// The switchboard decides which model (base or adapter version) serves each call. It is a seam:
// today it passes the requested model through and serves no adapter; adapter hot-loading plugs in
// here later (route a call to the live adapter version, count calls in flight per version so an
// old version is unloaded only once idle).

export interface Route {
  /** The model name to send upstream. */
  model: string;
  /** The adapter version serving the call (`v000003`), or null for the base model. */
  adapter: string | null;
  /** Call once the call is over (answered, failed or aborted). Safe to call more than once. */
  release(): void;
}

export interface SwitchboardStatus {
  mode: string;
  live: string | null;
  inflight: number;
}

export interface Switchboard {
  route(requestedModel: string): Route;
  status(): SwitchboardStatus;
}

export class PassThroughSwitchboard implements Switchboard {
  private inflight = 0;

  route(requestedModel: string): Route {
    this.inflight++;
    let released = false;
    return {
      model: requestedModel,
      adapter: null,
      release: () => {
        if (released) return;
        released = true;
        this.inflight--;
      },
    };
  }

  status(): SwitchboardStatus {
    return { mode: "passthrough", live: null, inflight: this.inflight };
  }
}
