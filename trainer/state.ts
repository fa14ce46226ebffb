// The trainer's own resumable state, kept OUTSIDE the immutable version directories:
// `<data>/trainer/optim-v000005.bin` (optimizer moments after the step that made v000005) and
// `step-v000005.json` (that step's metrics row). Both are written before the version's rename, so
// whenever a version is visible its optimizer state exists; a state file without a version is the
// trace of an interrupted step and is discarded.
import fs from "node:fs";
import path from "node:path";
import type { TrainStep } from "../core/index.js";
import { writeFileAtomic } from "./versions.js";

const FILE = /^(optim|step)-v(\d{6})\.(bin|json)$/;

export class TrainerState {
  constructor(readonly dir: string) {}

  static forDataDir(dataDir: string): TrainerState {
    return new TrainerState(path.join(path.resolve(dataDir), "trainer"));
  }

  optimFile(name: string): string {
    return path.join(this.dir, `optim-${name}.bin`);
  }

  stepFile(name: string): string {
    return path.join(this.dir, `step-${name}.json`);
  }

  save(name: string, optimizer: Uint8Array, step: TrainStep): void {
    writeFileAtomic(this.optimFile(name), optimizer);
    writeFileAtomic(this.stepFile(name), JSON.stringify(step) + "\n");
  }

  loadOptimizer(name: string): Uint8Array | null {
    try {
      return new Uint8Array(fs.readFileSync(this.optimFile(name)));
    } catch {
      return null;
    }
  }

  loadStep(name: string): TrainStep | null {
    try {
      return JSON.parse(fs.readFileSync(this.stepFile(name), "utf8")) as TrainStep;
    } catch {
      return null;
    }
  }

  /**
   * Keeps the state of the `keep` newest versions up to `latest` and of the versions in `alsoKeep`
   * (live, pinned, the rollback target: continuing from one needs its optimizer moments); drops the
   * rest and interrupted writes (newer than `latest`).
   */
  prune(latest: number, keep = 2, alsoKeep: ReadonlySet<string> = new Set()): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      const m = FILE.exec(n);
      const old = m !== null && Number(m[2]) <= latest - keep && !alsoKeep.has(`v${m[2]}`);
      const stale = n.endsWith(".tmp") || (m !== null && Number(m[2]) > latest) || old;
      if (stale) fs.rmSync(path.join(this.dir, n), { force: true });
    }
  }
}
