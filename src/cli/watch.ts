import {
  describeChanges,
  type FolderWatch,
  type WatchProgress,
  watchableFolder,
  watchFolder,
} from '../collection/folder-watch.ts';
import type { ImageCollection } from '../collection/store.ts';
import { openStore } from '../collection/stores.ts';
import { buildThreads } from './commands.ts';
import type { StoreOption } from './options.ts';
import { progressBars } from './progress.ts';

export interface WatchCommandOptions extends StoreOption {
  /** Minutes between full rescans (0: none). Default 10. */
  sweepMinutes?: number;
}

/**
 * `ris watch NAME…`: follows the folders of collections without a server until Ctrl-C: a full rescan
 * first (what changed while nothing watched), then each change as it settles. Progress goes to stderr.
 * Refuses, before any work, collections that have no folder of their own, are kept where ris cannot
 * follow a folder, or whose folder is not there.
 */
export async function watchCommand(names: string[], options: WatchCommandOptions = {}): Promise<void> {
  const store = await openStore(options.store);
  const threads = await buildThreads();
  const bars = progressBars();
  const collections: ImageCollection[] = [];
  const watches: FolderWatch[] = [];
  const closeAll = async () => {
    bars.stop();
    await Promise.all(watches.map((w) => w.close()));
    await Promise.all(collections.map((c) => c.close()));
    await threads.close();
    await store.close();
  };
  try {
    for (const name of new Set(names)) {
      const collection = await store.open(name, {
        assigner: threads.assigner,
        hnswBuilder: threads.hnswBuilder,
        onProgress: bars.onProgress,
        // A long-running writer, as a server: index.ris is written for builds, not for every batch (the
        // next process catches up from the database).
        persistIndex: 'builds',
      });
      collections.push(collection);
      watchableFolder(collection, { mustExist: true });
    }
    const sweepMinutes = options.sweepMinutes ?? 10;
    for (const collection of collections) {
      watches.push(
        await watchFolder(collection, {
          sweepIntervalMs: sweepMinutes * 60_000,
          onProgress: reporter(collection, bars),
        }),
      );
    }
  } catch (error) {
    await closeAll();
    throw error;
  }
  log(
    `watching ${collections.map((c) => c.name).join(', ')}` +
      (options.sweepMinutes === 0 ? '' : ` (a full rescan every ${options.sweepMinutes ?? 10} min)`) +
      '; Ctrl-C stops',
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      bars.stop();
      log('stopping: what was embedded so far is kept');
      // A second Ctrl-C ends it at once (committed batches are kept, as after a kill).
      process.once('SIGINT', () => process.exit(130));
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await closeAll();
}

/** Lines on stderr for what a collection's watch does (bars for a long embedding). */
function reporter(collection: ImageCollection, bars: ReturnType<typeof progressBars>) {
  const name = collection.name;
  return (event: WatchProgress) => {
    switch (event.type) {
      case 'embed':
        bars.onProgress(event);
        break;
      case 'watching':
        log(
          `${name}: ${event.folders} folders watched under ${collection.manifest.root}` +
            (event.unwatched ? `; ${event.unwatched} not watched: ${event.reason ?? ''}` : ''),
        );
        break;
      case 'batch': {
        bars.stop();
        const { report } = event;
        const changed = report.added + report.reembedded + report.removed + report.moved;
        if (event.cause === 'start')
          log(`${name}: rescanned in ${(event.ms / 1000).toFixed(1)} s: ${describeChanges(report)}`);
        else if (changed + report.failures.length > 0)
          log(`${name}: ${describeChanges(report)}${event.cause === 'sweep' ? ' (sweep)' : ''}`);
        for (const failure of report.failures) log(`  ${failure.path}: ${failure.error.message}`);
        break;
      }
      case 'problem':
        bars.stop();
        log(`${name}: ${event.message}`);
        break;
      case 'folder-gone':
        log(`${name}: its folder ${event.folder} is gone; nothing is removed, it is watched again once back`);
        break;
      case 'folder-back':
        log(`${name}: its folder ${event.folder} is back`);
        break;
    }
  };
}

function log(line: string): void {
  process.stderr.write(`${new Date().toTimeString().slice(0, 8)} ${line}\n`);
}
