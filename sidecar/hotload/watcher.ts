// Watches the adapters directory for new version directories (the trainer renames each one into
// place whole, so one `addDir` per version). Events are coalesced: a burst of versions is one
// look at the directory, where the switchboard takes the newest.
import chokidar, { type FSWatcher } from "chokidar";

export class VersionWatcher {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly dir: string,
    private readonly onChange: () => void,
    private readonly debounceMs = 25,
  ) {}

  async start(): Promise<void> {
    this.watcher = chokidar.watch(this.dir, {
      depth: 0,
      ignoreInitial: true,
      // Temporary directories of writes in progress, and HEAD.json.
      ignored: (p: string) => /(^|[\\/])\.tmp-/.test(p) || /\.tmp$/.test(p),
    });
    this.watcher.on("addDir", () => this.changed());
    this.watcher.on("add", () => this.changed());
    this.watcher.on("error", () => this.changed());
    await new Promise<void>((resolve) => this.watcher!.once("ready", () => resolve()));
  }

  private changed(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.onChange();
    }, this.debounceMs);
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.watcher?.close();
    this.watcher = null;
  }
}
