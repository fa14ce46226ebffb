// The processes under a bench's child (Linux /proc, as the benches): a sidecar and its store
// process, or whatever a killed bench must stop before removing its data directories.
import fs from "node:fs";

/** `pid` and every process under it, parents first (read before any is killed: orphans change parent). */
export function family(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const tid of fs.readdirSync(`/proc/${out[i]}/task`)) {
        const kids = fs.readFileSync(`/proc/${out[i]}/task/${tid}/children`, "utf8").trim();
        if (kids) out.push(...kids.split(/\s+/).map(Number));
      }
    } catch {
      // Ended meanwhile, or no /proc children file: counted alone.
    }
  }
  return out;
}
