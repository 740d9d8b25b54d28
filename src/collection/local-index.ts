import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VectorIndex } from '../ann/vector-index.ts';
import type { CollectionDb } from './database.ts';
import { INDEX } from './home.ts';
import {
  BUILDER_REVISION,
  type IndexStamp,
  loadIndexFile,
  NO_STAMP,
  openIndexFile,
  peekStamp,
  peekStampSync,
  removeOrphanTempFiles,
  reopenWrittenIndex,
  stampedBytes,
  writeAtomicSync,
} from './index-file.ts';
import { buildIndex, emptyIndex, type IndexBuildContext, indexKindFor } from './index-policy.ts';
import type { IndexSettings } from './manifest.ts';
import { pausePoint } from './pause.ts';
import type { CollectionProgress } from './types.ts';

/** What a local collection's index is kept for. */
export interface LocalIndexSpec {
  /** The collection's name, for progress events. */
  name: string;
  settings: IndexSettings;
  /** The dimension of the stored (model) vectors. */
  modelDimension: number;
  context: IndexBuildContext;
  /** Stored vectors as the index holds them (projected, when the collection has a projection). */
  toIndexSpace(vectors: Float32Array): Float32Array;
  /** Whether every update is written to index.ris (the CLI), or only new builds (a server). */
  persistsAll: boolean;
  onProgress?: (event: CollectionProgress) => void;
}

type Progress = { onProgress?: (e: CollectionProgress) => void };

/**
 * The in-memory index of a collection kept in step with metadata.db (the truth) and index.ris (a cache
 * stamped with the generation it reflects). Whoever holds one applies what other processes changed from
 * the database's log, builds a new index when the kind must change or the file cannot be used, and
 * writes under the collection's write lock so that saves of several processes queue and a newer build
 * is never overwritten by an older one.
 */
export class LocalIndex {
  private current: VectorIndex | undefined;
  private currentStamp: IndexStamp = NO_STAMP;
  private refreshing: Promise<void> | undefined;
  /** Updates and builds of this process, one after the other (two uploads at once, an upload and a retrain). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly db: CollectionDb,
    private readonly dir: string,
    private readonly spec: LocalIndexSpec,
  ) {}

  /** The index searches use now (undefined until opened). */
  get index(): VectorIndex | undefined {
    return this.current;
  }

  get stamp(): IndexStamp {
    return this.currentStamp;
  }

  private get path(): string {
    return join(this.dir, INDEX);
  }

  /** The kind built now, or 'none'. */
  builtKind(): 'none' | VectorIndex['kind'] {
    return this.current?.kind ?? 'none';
  }

  /** A new collection's index: empty, reflecting the database as it is. */
  startEmpty(): void {
    this.current = emptyIndex(this.spec.settings, this.spec.context);
    this.currentStamp = { build: 0, data: this.db.generation(), trainedOn: 0, builder: BUILDER_REVISION };
  }

  /**
   * Loads the index and brings it up to date (a command line reader writes what it caught up with, so
   * the next command starts from it).
   */
  open(): Promise<void> {
    return this.serially(async () => {
      const changed = await this.ensure();
      if (changed && this.spec.persistsAll) this.save(false);
    });
  }

  /**
   * Brings the index up to date with the database and writes it: applies the changes since it was written,
   * and builds it anew when there is none, when it cannot be read, or when an 'auto' collection searching
   * exactly grew past EXACT_SEARCH_BELOW images.
   */
  update(options: Progress = {}): Promise<void> {
    return this.serially(async () => {
      await this.ensure(options);
      if (this.spec.persistsAll) this.save(false);
    });
  }

  /** Builds an index from every stored vector (outside the lock: training takes time), then saves it. */
  rebuild(options: Progress = {}): Promise<void> {
    return this.serially(() => this.build(options));
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async build(options: Progress = {}): Promise<void> {
    const { ids, vectors, generation } = this.db.snapshot(() => ({
      ...this.db.allVectors(this.spec.modelDimension),
      generation: this.db.generation(),
    }));
    (options.onProgress ?? this.spec.onProgress)?.({ type: 'train', images: ids.length });
    const kind = indexKindFor(this.spec.settings, ids.length, this.builtKind(), this.spec.context.dimension);
    const index = await buildIndex(
      kind,
      this.spec.settings,
      this.spec.context,
      ids,
      this.spec.toIndexSpace(vectors),
    );
    pausePoint('retrain:trained');
    this.save(true, {
      index,
      stamp: { build: generation, data: generation, trainedOn: ids.length, builder: BUILDER_REVISION },
    });
  }

  /**
   * Follows changes other processes made (a server calls it on every request; it costs one SQLite read
   * when nothing changed). The update runs in the background and swaps in when ready: searches never wait
   * for it. Resolves when this update is done.
   */
  refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    if (this.db.generation() === this.currentStamp.data) return Promise.resolve();
    this.refreshing = (async () => {
      const disk = await peekStamp(this.path);
      if (disk && disk.build > this.currentStamp.build) {
        // Another process built a new index (retrain): take it rather than patch the old one.
        try {
          const loaded = await loadIndexFile(this.path);
          this.current = loaded.index;
          this.currentStamp = loaded.stamp;
        } catch {
          // Being replaced as we read it, or damaged: patch ours instead.
        }
      }
      this.catchUp();
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** Waits for a refresh in flight (before the database closes). */
  async settled(): Promise<void> {
    await this.refreshing?.catch(() => undefined);
  }

  /**
   * The index brought up to date in memory: loaded, caught up, or built when it has to be. Returns whether
   * it changed from what index.ris holds.
   */
  private async ensure(options: Progress = {}): Promise<boolean> {
    let why: string | undefined;
    if (!this.current) {
      try {
        ({ index: this.current, stamp: this.currentStamp } = await loadIndexFile(this.path));
      } catch (error) {
        why =
          (error as NodeJS.ErrnoException).code === 'ENOENT'
            ? `${INDEX} is missing`
            : `${INDEX} cannot be used (${(error as Error).message})`;
      }
    }
    const images = this.db.count();
    if (this.current) {
      // Grown past (or shrunk below) what this kind of index suits: build the right one instead.
      if (
        indexKindFor(this.spec.settings, images, this.builtKind(), this.spec.context.dimension) ===
        this.builtKind()
      )
        return this.catchUp();
      await this.build(options);
      return true;
    }
    if (images === 0) {
      // Nothing to build yet: an empty index, written once images arrive.
      this.startEmpty();
      return false;
    }
    (options.onProgress ?? this.spec.onProgress)?.({
      type: 'rebuild',
      collection: this.spec.name,
      images,
      reason: why ?? `${INDEX} cannot be used`,
    });
    await this.build(options);
    return true;
  }

  /**
   * Applies to the in-memory index what the database changed since the generation it reflects: from the
   * changes log, or id by id when the log does not reach back that far. Runs on one snapshot.
   */
  private catchUp(): boolean {
    const index = this.current!;
    return this.db.snapshot(() => {
      const generation = this.db.generation();
      const stamp = this.currentStamp;
      if (stamp.data === generation && stamp.build > 0) return false;
      const changes =
        stamp.build > 0 && stamp.data <= generation
          ? this.db.changesSince(stamp.data, generation)
          : undefined;
      const gone = new Set<number>();
      const fresh = new Set<number>();
      if (changes) {
        for (const { id, op } of changes) {
          if (op === 1) fresh.add(id);
          else if (!fresh.delete(id)) gone.add(id); // added then removed since: nothing to do
        }
      } else {
        const stored = new Set(this.db.ids());
        for (const id of index.ids()) if (!stored.delete(id)) gone.add(id);
        for (const id of stored) fresh.add(id);
      }
      if (gone.size > 0) index.remove([...gone]);
      if (fresh.size > 0) {
        const { ids, vectors } = this.db.vectorsOf(
          [...fresh].sort((a, b) => a - b),
          this.spec.modelDimension,
        );
        index.add(this.spec.toIndexSpace(vectors), ids);
      }
      // A stamp that differs from the database is a change too, even with the same ids: it must not
      // stay on disk claiming another generation.
      const changed = gone.size > 0 || fresh.size > 0 || stamp.data !== generation;
      this.currentStamp = { ...stamp, data: generation, build: Math.max(stamp.build, 1) };
      return changed;
    });
  }

  /**
   * Writes the index under the collection's write lock, so saves of several processes queue. Inside the
   * lock the index is caught up with the database once more (so it never writes stale memory over a newer
   * file), and a file built later than this index (another process retrained) is continued from instead.
   * A new build bumps the generation, so every reader notices it.
   */
  private save(newBuild: boolean, candidate?: { index: VectorIndex; stamp: IndexStamp }): void {
    // A new build gets a generation of its own, committed before any file names it: a file never claims a
    // generation the database might roll back (a kill between the rename and the commit).
    const build = newBuild ? this.db.write((generation) => generation) : undefined;
    this.db.locked(() => {
      removeOrphanTempFiles(this.dir);
      if (candidate) {
        this.current = candidate.index;
        this.currentStamp = candidate.stamp;
      }
      const disk = peekStampSync(this.path);
      if (build === undefined && disk && disk.build > this.currentStamp.build) {
        try {
          ({ index: this.current, stamp: this.currentStamp } = openIndexFile(
            new Uint8Array(readFileSync(this.path)),
            this.path,
          ));
        } catch {
          // A damaged newer file: ours replaces it.
        }
      }
      // Under the lock no other writer can commit: this generation is the one the file will reflect.
      this.catchUp();
      if (build !== undefined) this.currentStamp = { ...this.currentStamp, build };
      else if (disk && disk.build === this.currentStamp.build && disk.data === this.currentStamp.data) return; // there already
      writeAtomicSync(this.path, stampedBytes(this.current!, this.currentStamp), this.dir);
      this.db.pruneLog(this.currentStamp.data);
      // Rows held only until written (IVF-RaBitQ's full vectors): read them from the file from now on.
      if ((this.current!.memoryUsage() as { unsaved?: number }).unsaved)
        this.current = reopenWrittenIndex(this.path);
    });
  }
}
