import {
  describeChanges,
  type FolderWatch,
  type FolderWatchOptions,
  type WatchProgress,
  watchableFolder,
  watchFolder,
} from '../collection/folder-watch.ts';
import type { ImageCollection } from '../collection/store.ts';
import { RisError } from '../errors.ts';
import type { EventHub } from './events.ts';
import type { CollectionRegistry } from './registry.ts';

interface Watched {
  collection: ImageCollection;
  /** The watch once its folders are watched (undefined if it could not start). */
  watch: Promise<FolderWatch | undefined>;
}

/**
 * `ris serve --watch`: every served collection that follows a folder of the user's is watched while it
 * is served: those served from the start, those that join later (made by another process), not those
 * that leave. Each batch is told to every open page, as progress (operation 'watch') and then as the
 * collection's new size, and to the log.
 */
export class ServedFolderWatches {
  private readonly watched = new Map<string, Watched>();
  private stopListening: (() => void) | undefined;

  constructor(
    private readonly registry: CollectionRegistry,
    private readonly hub: EventHub,
    private readonly options: Omit<FolderWatchOptions, 'onProgress'> & { log: (line: string) => void },
  ) {}

  /** Watches the collections served now and follows the registry from here on. */
  start(): void {
    for (const collection of this.registry.ready()) this.follow(collection);
    this.stopListening = this.registry.onChange((name, entry) => {
      if (entry?.state === 'ready') this.follow(entry.collection);
      else void this.stop(name);
    });
  }

  /** The collections watched now. */
  names(): string[] {
    return [...this.watched.keys()];
  }

  /** Resolves once every watch has its folders watched and has run its first full rescan. */
  async settled(): Promise<void> {
    const watches = await Promise.all([...this.watched.values()].map((w) => w.watch));
    await Promise.all(watches.map((w) => w?.started));
  }

  async close(): Promise<void> {
    this.stopListening?.();
    await Promise.all([...this.watched.keys()].map((name) => this.stop(name)));
  }

  private follow(collection: ImageCollection): void {
    if (this.watched.get(collection.name)?.collection === collection) return;
    void this.stop(collection.name);
    const { log } = this.options;
    try {
      watchableFolder(collection);
    } catch (error) {
      if (!(error instanceof RisError)) throw error;
      log(`not watching ${collection.name}: ${error.message}`);
      return;
    }
    const watch = watchFolder(collection, {
      ...this.options,
      onProgress: this.reporter(collection),
    }).catch((error: Error) => {
      log(`not watching ${collection.name}: ${error.message}`);
      return undefined;
    });
    this.watched.set(collection.name, { collection, watch });
  }

  private async stop(name: string): Promise<void> {
    const watched = this.watched.get(name);
    if (!watched) return;
    this.watched.delete(name);
    await (await watched.watch)?.close();
  }

  /** Tells the log and the pages what a collection's watch does. */
  private reporter(collection: ImageCollection): (event: WatchProgress) => void {
    const { log } = this.options;
    const name = collection.name;
    let batch = '';
    return (event) => {
      switch (event.type) {
        case 'watching':
          log(
            `watching ${name}: ${event.folders} folders under ${collection.manifest.root}` +
              (event.unwatched ? `; ${event.unwatched} folders not watched: ${event.reason ?? ''}` : ''),
          );
          break;
        case 'batch-start':
          batch = event.id;
          break;
        case 'embed':
          this.hub.publish({
            type: 'progress',
            collection: name,
            operation: 'watch',
            id: batch,
            done: event.done,
            total: event.total ?? event.done,
          });
          break;
        case 'batch': {
          const { added, reembedded, removed, moved, failures } = event.report;
          const changed = added + reembedded + removed + moved + failures.length > 0;
          if (event.cause === 'start')
            log(`${name}: rescanned in ${(event.ms / 1000).toFixed(1)} s: ${describeChanges(event.report)}`);
          else if (changed)
            log(`${name}: ${describeChanges(event.report)} (${event.cause}, ${Math.round(event.ms)} ms)`);
          for (const failure of failures) log(`  ${failure.path}: ${failure.error.message}`);
          if (changed) void this.announce(collection);
          break;
        }
        case 'problem':
          log(`watching ${name}: ${event.message}`);
          break;
        case 'folder-gone':
          log(
            `watching ${name}: its folder ${event.folder} is gone; nothing is removed, and it is watched again once back`,
          );
          break;
        case 'folder-back':
          log(`watching ${name}: its folder ${event.folder} is back`);
          break;
      }
    };
  }

  /** Tells the pages the collection's size now (they would hear it within the hub's poll anyway). */
  private async announce(collection: ImageCollection): Promise<void> {
    try {
      const [size, status] = await Promise.all([collection.count(), collection.status()]);
      this.hub.publish({
        type: 'changed',
        collection: collection.name,
        size,
        generation: status.databaseGeneration,
      });
    } catch {
      // Closed meanwhile (deleted, the server stopping).
    }
  }
}
