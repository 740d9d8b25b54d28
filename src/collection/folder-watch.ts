import { randomBytes } from 'node:crypto';
import { type Stats, statSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { CollectionError, RisError } from '../errors.ts';
import { DirectoryWatcher } from '../node/directory-watcher.ts';
import { rescan } from './library.ts';
import type { RescanProgress, RescanReport } from './rescan.ts';
import { type ImageCollection, isLibraryCollection } from './store.ts';
import { IMAGE_EXTENSIONS } from './walk.ts';

export interface FolderWatchOptions {
  /**
   * Quiet time after a path's last change before it is looked at. Default 200 ms: a burst (a copy of
   * many files) becomes one batch, and a change is still searchable well within 5 s.
   */
  debounceMs?: number;
  /**
   * Time between the two looks at a changed path: its size and mtime must agree across both, so a file
   * still being written is waited out. Default 300 ms; more for slow writers (a network copy that pauses).
   */
  settleMs?: number;
  /**
   * How long settled changes wait for files still being written before they go without them (those
   * follow when they settle). Default 2,000 ms. Until then a batch waits whole, so a folder moved
   * within the watched one is seen as a move (same ids), not as a removal and, later, new images.
   */
  maxWaitMs?: number;
  /**
   * A full rescan this often catches what watching misses (network drives, an overflowing event queue,
   * folders past the system's watch limit). Default 600,000 ms (10 minutes); 0 turns it off. Each costs
   * a stat of every file, and a read of the files whose size or mtime changed.
   */
  sweepIntervalMs?: number;
  /** While the folder is gone (an unplugged drive), how often to look for it. Default 5,000 ms. */
  goneCheckMs?: number;
  onProgress?: (event: WatchProgress) => void;
}

/** Why a batch ran: the first full rescan, changes seen, or the periodic sweep. */
export type WatchCause = 'start' | 'change' | 'sweep';

/** What a watch reports: its watches, each batch's work (as a rescan reports it) and outcome, problems. */
export type WatchProgress =
  | RescanProgress
  /** The watches are in place: `folders` watched, `unwatched` that could not be (with why). */
  | { type: 'watching'; folders: number; unwatched: number; reason?: string }
  /** A batch starts: `paths` changed paths (0 for a full rescan). */
  | { type: 'batch-start'; id: string; cause: WatchCause; paths: number }
  | { type: 'batch'; id: string; cause: WatchCause; paths: number; report: RescanReport; ms: number }
  /** Something went wrong; the watch goes on (the next sweep tries again). */
  | { type: 'problem'; message: string }
  /** The folder is gone (unmounted, deleted): nothing is removed; it is watched again once it is back. */
  | { type: 'folder-gone'; folder: string }
  | { type: 'folder-back'; folder: string };

/** A path seen changing, until it has settled. */
interface Pending {
  firstChange: number;
  lastChange: number;
  look?: Look;
  /** It was a watched folder before it went. */
  wasFolder?: boolean;
}

/** What a path is at one moment. */
interface Look {
  at: number;
  kind: 'file' | 'dir' | 'other' | 'gone';
  size: number;
  mtimeMs: number;
}

/**
 * The folder a collection follows, checked: CollectionError (NO_FOLDER) for a collection whose images are
 * only what is sent to it (or one kept where ris cannot follow a folder); NO_IMAGES for a folder that is
 * not there on this machine (`mustExist`).
 */
export function watchableFolder(collection: ImageCollection, options: { mustExist?: boolean } = {}): string {
  if (!isLibraryCollection(collection))
    throw new CollectionError(
      'NO_FOLDER',
      `Collection "${collection.name}" is kept where ris cannot follow a folder; ` +
        `run ris add ${collection.name} <folder> after changes instead`,
    );
  if (!collection.followsFolder)
    throw new CollectionError(
      'NO_FOLDER',
      `Collection "${collection.name}" has no folder of its own to watch (its images are sent to it); ` +
        `make one that follows a folder with ris collections create NAME --folder DIR`,
    );
  const root = resolve(collection.manifest.root);
  if (options.mustExist && !isFolder(root))
    throw new CollectionError(
      'NO_IMAGES',
      `The folder of collection "${collection.name}" (${root}) is not there; mount or restore it, then watch again`,
    );
  return root;
}

/**
 * Starts following a collection's folder: one watch per folder of it, a full rescan (what changed while
 * nothing watched), then every change: a new or changed image is embedded, a removed one removed, a
 * renamed or moved one keeps its id, each within about a second of the change once the file is
 * settled. Every batch goes through the library service's rescan with the changed paths as its scope,
 * the same rules as `ris rescan`. Resolves once the watches are in place (the first rescan follows in
 * the background: `started` tells when it ends).
 */
export async function watchFolder(
  collection: ImageCollection,
  options: FolderWatchOptions = {},
): Promise<FolderWatch> {
  const root = watchableFolder(collection);
  const watch = new FolderWatch(collection, root, options);
  // A start that fails lets go of the folders it watched so far: their handles would keep the process up.
  await watch.start().catch(async (error: unknown) => {
    await watch.close();
    throw error;
  });
  return watch;
}

export class FolderWatch {
  private readonly watcher: DirectoryWatcher;
  private readonly pending = new Map<string, Pending>();
  private readonly stopping = new AbortController();
  private readonly debounceMs: number;
  private readonly settleMs: number;
  private readonly maxWaitMs: number;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private full: WatchCause | undefined = 'start';
  private working: Promise<void> | undefined;
  private gone = false;
  private watchError: string | undefined;
  private startedResolve!: () => void;
  /** Resolves when the first full rescan has ended (done, failed or stopped). */
  readonly started = new Promise<void>((resolve) => {
    this.startedResolve = resolve;
  });

  constructor(
    readonly collection: ImageCollection,
    readonly root: string,
    private readonly options: FolderWatchOptions,
  ) {
    this.debounceMs = options.debounceMs ?? 200;
    this.settleMs = options.settleMs ?? 300;
    this.maxWaitMs = options.maxWaitMs ?? 2_000;
    const own = resolve(collection.dir);
    this.watcher = new DirectoryWatcher({
      onChange: (path) => this.changed(path),
      onError: (_dir, error) => {
        this.watchError ??=
          error.code === 'ENOSPC'
            ? `the system's limit on watches is reached (raise it: sysctl fs.inotify.max_user_watches=524288); the sweep catches changes there`
            : `${error.code ?? error.message}; the sweep catches changes there`;
      },
      // ris's own folder for the collection, should it lie inside the one it follows.
      skip: (dir) => dir === own,
    });
  }

  /** Folders watched now. */
  get folders(): number {
    return this.watcher.size;
  }

  /** Watches the folder (or waits for it to come back) and queues the first full rescan. */
  async start(): Promise<void> {
    const sweep = this.options.sweepIntervalMs ?? 600_000;
    if (sweep > 0) {
      this.sweepTimer = setInterval(() => {
        this.full ??= 'sweep';
        this.schedule(0);
      }, sweep);
      this.sweepTimer.unref();
    }
    if (isFolder(this.root)) await this.attach();
    else this.lost();
    this.schedule(0);
  }

  /** Stops watching; resolves once a batch under way has stopped (what it committed is kept). */
  async close(): Promise<void> {
    this.stopping.abort(new Error('the watch is stopping'));
    clearTimeout(this.timer);
    clearInterval(this.sweepTimer);
    this.watcher.close();
    await this.working?.catch(() => undefined);
    this.startedResolve();
  }

  private async attach(): Promise<void> {
    await this.watcher.sync(this.root);
    this.options.onProgress?.({
      type: 'watching',
      folders: this.watcher.size,
      unwatched: this.watcher.unwatched,
      ...(this.watcher.unwatched > 0 && this.watchError ? { reason: this.watchError } : {}),
    });
  }

  /** The folder went away: watches end, nothing is removed, and its return is looked for. */
  private lost(): void {
    if (!this.gone) this.options.onProgress?.({ type: 'folder-gone', folder: this.root });
    this.gone = true;
    this.watcher.remove(this.root);
    this.pending.clear();
    this.schedule(this.options.goneCheckMs ?? 5_000);
  }

  private changed(path: string): void {
    if (this.stopping.signal.aborted) return;
    const now = Date.now();
    const entry = this.pending.get(path);
    if (entry) entry.lastChange = now;
    else this.pending.set(path, { firstChange: now, lastChange: now });
    this.schedule(this.debounceMs);
  }

  /** Runs the pump in `delayMs`, unless it is due sooner already. */
  private schedule(delayMs: number): void {
    if (this.stopping.signal.aborted) return;
    const at = Date.now() + delayMs;
    if (this.timer && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.working) {
        this.working = this.pump()
          .catch((error: unknown) => {
            // Nothing may escape into the process: the watch says it and goes on.
            this.options.onProgress?.({ type: 'problem', message: String(error) });
          })
          .finally(() => {
            this.working = undefined;
            this.next();
          });
      }
    }, delayMs);
  }

  /** After a pump: runs again when there is more to do. */
  private next(): void {
    if (this.gone) this.schedule(this.options.goneCheckMs ?? 5_000);
    else if (this.full) this.schedule(0);
    else if (this.pending.size > 0) this.schedule(this.settleMs);
  }

  /** One step: a full rescan when one is due, else the settled changes as one batch. */
  private async pump(): Promise<void> {
    if (this.gone) {
      if (!isFolder(this.root)) return;
      this.gone = false;
      this.options.onProgress?.({ type: 'folder-back', folder: this.root });
      this.full = this.full === 'start' ? 'start' : 'sweep';
      await this.attach();
    }
    if (this.full) {
      const cause = this.full;
      this.full = undefined;
      if (cause === 'sweep') await this.watcher.sync(this.root);
      // Changes seen so far are part of the full rescan.
      this.pending.clear();
      await this.batch(cause, undefined);
      if (cause === 'start') this.startedResolve();
      return;
    }
    const scope = await this.settled();
    if (scope.length > 0) await this.batch('change', scope);
  }

  /**
   * The changed paths that have settled: looked at twice, `settleMs` apart, with no change between and
   * the same kind, size and mtime both times. While any path is still moving, all wait (a move shows as
   * a removal and an arrival, which must go together), up to maxWaitMs.
   */
  private async settled(): Promise<string[]> {
    const now = Date.now();
    const ready: { path: string; look: Look }[] = [];
    const moving: string[] = [];
    let oldest = now;
    for (const [path, entry] of [...this.pending]) {
      oldest = Math.min(oldest, entry.firstChange);
      if (now - entry.lastChange < this.debounceMs) {
        moving.push(path);
        continue;
      }
      const look = await lookAt(path);
      if (look.kind === 'dir' && !this.watcher.has(path)) await this.watcher.sync(path);
      if (look.kind === 'gone' && this.watcher.remove(path) > 0) entry.wasFolder = true;
      const previous = entry.look;
      if (previous && previous.at > entry.lastChange && sameLook(previous, look)) ready.push({ path, look });
      else {
        entry.look = look;
        moving.push(path);
      }
    }
    if (moving.length > 0 && now - oldest < this.maxWaitMs) return [];
    // A folder holding a file still being written waits with it.
    const held = new Set(moving.flatMap((path) => ancestors(path, this.root)));
    const scope: string[] = [];
    for (const { path, look } of ready) {
      if (held.has(path)) continue;
      const wasFolder = this.pending.get(path)?.wasFolder;
      this.pending.delete(path);
      // Nothing to do for files of other types, or for gone paths that were neither an image nor a
      // folder (a browser's .part file renamed to the image, an editor's backup).
      if (IMAGE_EXTENSIONS.test(path) || look.kind === 'dir' || (look.kind === 'gone' && wasFolder))
        scope.push(path);
    }
    return scope;
  }

  /** Rescans the changed paths (or the whole folder), through the library service. */
  private async batch(cause: WatchCause, scope: string[] | undefined): Promise<void> {
    const id = randomBytes(6).toString('hex');
    const started = performance.now();
    const paths = scope?.length ?? 0;
    this.options.onProgress?.({ type: 'batch-start', id, cause, paths });
    try {
      const report = await rescan(this.collection, {
        scope: scope && outermost(scope, this.root),
        signal: this.stopping.signal,
        onProgress: this.options.onProgress,
      });
      this.options.onProgress?.({ type: 'batch', id, cause, paths, report, ms: performance.now() - started });
    } catch (error) {
      if (this.stopping.signal.aborted) return;
      if (!isFolder(this.root)) {
        this.lost();
        return;
      }
      const message = error instanceof RisError ? error.message : String(error);
      this.options.onProgress?.({ type: 'problem', message });
    }
  }
}

async function lookAt(path: string): Promise<Look> {
  const at = Date.now();
  const info: Stats | undefined = await lstat(path).catch(() => undefined);
  if (!info) return { at, kind: 'gone', size: 0, mtimeMs: 0 };
  const kind = info.isFile() ? 'file' : info.isDirectory() ? 'dir' : 'other';
  return { at, kind, size: info.size, mtimeMs: info.mtimeMs };
}

function sameLook(a: Look, b: Look): boolean {
  return a.kind === b.kind && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

function isFolder(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/** The folders above `path`, up to `root`. */
function ancestors(path: string, root: string): string[] {
  const out: string[] = [];
  for (let dir = dirname(path); dir.length >= root.length && dir !== path; path = dir, dir = dirname(dir))
    out.push(dir);
  return out;
}

/** The paths not inside another of them (a folder's rescan covers its files). */
function outermost(paths: string[], root: string): string[] {
  const all = new Set(paths);
  return paths.filter((path) => !ancestors(path, root).some((dir) => all.has(dir)));
}

/** "3 added, 1 embedded again, 2 removed, 1 moved, 1 failed" (what is not zero). */
export function describeChanges(report: {
  added: number;
  reembedded: number;
  removed: number;
  moved: number;
  failures: unknown[];
}): string {
  const parts = [
    [report.added, 'added'],
    [report.reembedded, 'embedded again'],
    [report.removed, 'removed'],
    [report.moved, 'moved'],
    [report.failures.length, 'failed'],
  ] as const;
  return (
    parts
      .filter(([count]) => count > 0)
      .map(([count, what]) => `${count} ${what}`)
      .join(', ') || 'nothing changed'
  );
}
