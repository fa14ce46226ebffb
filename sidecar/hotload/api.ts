// The adapters control API (mounted on the sidecar's control router, bearer token required):
//   GET  /clawloop/v1/adapters                      {live, pinned, versions: AdapterVersion[] (newest first;
//                                                   versions deleted by the trainer's retention are left out)}
//   POST /clawloop/v1/adapters/rollback {version}   V live and pinned; newer versions retired;
//                                                   the trainer continues from V (HEAD.json)
//   POST /clawloop/v1/adapters/pin {version}        V live and pinned; newer versions wait
//   POST /clawloop/v1/adapters/unpin                new versions go live again
// The mutating calls answer {live, pinned}; 400 for a malformed name, 404 for an unknown or pruned version,
// 409 for a rejected one (or a rollback target whose files cannot be read), 503 when the upstream cannot
// load it now. A failed rollback changes nothing; /clawloop/v1/status has it as switchboard.lastRollback.
import { z } from "zod";
import { HttpError, type ControlRouter } from "../router.js";
import { AdapterApiError, type HotloadSwitchboard } from "./switchboard.js";

const versionBody = z.object({ version: z.string().min(1).max(64) });

async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AdapterApiError) throw new HttpError(err.status, err.message);
    throw err;
  }
}

export function mountAdapterApi(router: ControlRouter, board: HotloadSwitchboard): void {
  router.add("GET", "/clawloop/v1/adapters", () => board.versions());
  const withVersion = (fn: (v: string) => Promise<unknown>) => async (c: { json: <T>() => Promise<T> }) => {
    const parsed = versionBody.safeParse(await c.json());
    if (!parsed.success) throw new HttpError(400, `body must be {"version": "v000003"}: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
    return mapped(() => fn(parsed.data.version));
  };
  router.add("POST", "/clawloop/v1/adapters/rollback", withVersion((v) => board.rollback(v)));
  router.add("POST", "/clawloop/v1/adapters/pin", withVersion((v) => board.pin(v)));
  router.add("POST", "/clawloop/v1/adapters/unpin", () => mapped(() => board.unpin()));
}
