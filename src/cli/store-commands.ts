import { resolveSource } from '../collection/build.ts';
import type { OutageEvent } from '../collection/postgres/outage.ts';
import type { PgStore } from '../collection/postgres/store.ts';
import type { CollectionStore } from '../collection/store.ts';
import { openStore } from '../collection/stores.ts';
import { DEFAULT_MODEL } from '../embed/config.ts';
import { ArgumentError, CollectionError } from '../errors.ts';
import type { IndexCommandOptions } from './options.ts';
import { progressBars } from './progress.ts';

// The Postgres modules (and pg) load only when a command needs them: other commands start as fast as before.
const postgres = () => import('../collection/postgres/store.ts');

/** Opens the store a command names, which must be a Postgres one. */
async function postgresStoreFor(location: string | undefined, command: string): Promise<PgStore> {
  const store = await openStore(location);
  const { PgStore } = await postgres();
  if (store instanceof PgStore) return store;
  await store.close();
  throw new ArgumentError(
    'INVALID_ARGUMENT',
    `${command} works on collections in PostgreSQL: give --store postgres://user:password@host/database or set $RIS_DATABASE_URL (the collections in ${store.location} are indexed by ris index)`,
  );
}

/**
 * `ris index`, with what only a Postgres store has: `--enqueue` lists the images as work for `ris worker`
 * instead of embedding them here; `--images-url` records where machines without the images folder read
 * them. Without either it is the ordinary `ris index` (`index`).
 */
export async function indexInStore(
  source: string,
  options: IndexCommandOptions,
  extra: { enqueue?: boolean; imagesUrl?: string },
  index: (source: string, options: IndexCommandOptions) => Promise<void>,
): Promise<void> {
  if (!extra.enqueue && extra.imagesUrl === undefined) return index(source, options);
  if (extra.enqueue) return enqueueCommand(source, { ...options, imagesUrl: extra.imagesUrl });
  // Checked before the work: --images-url means nothing for a local collection.
  await (await postgresStoreFor(options.store, 'ris index --images-url')).close();
  await index(source, options);
  const store = await postgresStoreFor(options.store, 'ris index --images-url');
  try {
    await store.setImagesUrl(options.collection, extra.imagesUrl);
    print(`images of ${options.collection} are also read from ${extra.imagesUrl}`);
  } finally {
    await store.close();
  }
}

/** `ris index … --enqueue`: creates the collection if needed and queues the images not stored yet. */
export async function enqueueCommand(
  source: string,
  options: IndexCommandOptions & { imagesUrl?: string },
): Promise<void> {
  const store = await postgresStoreFor(options.store, 'ris index --enqueue');
  const bars = progressBars();
  try {
    const { enqueueImages } = await import('../collection/postgres/enqueue.ts');
    const { root, images } = await resolveSource(source, {
      from: options.from,
      datasetsDir: options.dir,
      onProgress: bars.onProgress,
    });
    bars.stop();
    if (images.length === 0)
      throw new CollectionError(
        'NO_IMAGES',
        `No images (jpg, jpeg, png, webp, gif, tiff, avif) found under ${root}; point ris at a folder of images`,
      );
    const collection = (await store.exists(options.collection))
      ? await store.open(options.collection)
      : await store.create(options.collection, {
          model: options.model ?? DEFAULT_MODEL,
          root,
          imagesUrl: options.imagesUrl,
          index: {
            kind: options.index,
            numPartitions: options.partitions,
            numSubVectors: options.subVectors,
          },
        });
    try {
      if (options.imagesUrl !== undefined) await store.setImagesUrl(collection.name, options.imagesUrl);
      const report = await enqueueImages(store.db, collection, images, { onProgress: printOutage });
      print(
        `collection ${collection.name}: ${report.queued} images queued of ${images.length} found` +
          ` (${report.alreadyStored} already stored, ${report.alreadyQueued} already queued);` +
          ` run ris worker with the same --store on any machine that reads ${collection.manifest.root} to embed them`,
      );
    } finally {
      await collection.close();
    }
  } finally {
    bars.stop();
    await store.close();
  }
}

export interface WorkerCommandOptions {
  store?: string;
  collections?: string[];
  model?: string;
  batchSize?: number;
  leaseSeconds?: number;
  untilDone?: boolean;
  threads?: number;
}

/** `ris worker`: claims, embeds and stores queued images until stopped; SIGTERM finishes the batch in hand. */
export async function workerCommand(options: WorkerCommandOptions): Promise<void> {
  const store = await postgresStoreFor(options.store, 'ris worker');
  const { runWorker } = await import('../collection/postgres/worker.ts');
  const stop = new AbortController();
  const onSignal = (signal: string) => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    console.error(`${signal}: stopping after the batch in hand (again to stop at once)`);
    stop.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const started = performance.now();
  try {
    const report = await runWorker(store, {
      collections: options.collections,
      model: options.model,
      batchSize: options.batchSize,
      leaseSeconds: options.leaseSeconds,
      untilDone: options.untilDone,
      signal: stop.signal,
      collectionOptions: { embedder: options.threads ? { threads: options.threads } : undefined },
      onProgress: (event) => {
        switch (event.type) {
          case 'worker-start':
            console.error(
              `worker ${event.worker} on ${store.location}: ${event.collections.length ? `working for ${event.collections.join(', ')}` : 'no collection to work for yet'}${options.untilDone ? ', until the queue is empty' : '; SIGTERM or Ctrl-C stops it after the batch in hand'}`,
            );
            break;
          case 'worker-refused':
            console.error(`not working for ${event.collection}: ${event.reason}`);
            break;
          case 'worker-batch':
            console.error(
              `${event.collection}: stored ${event.stored}${event.failed ? `, ${event.failed} failed` : ''}${event.skipped ? `, ${event.skipped} already stored` : ''}${event.lost ? `, ${event.lost} taken over by another worker` : ''}; ${event.pending} pending`,
            );
            for (const d of event.duplicates)
              console.error(`  ${d.path} = ${d.sameAs} (exact duplicate, same bytes)`);
            break;
          case 'train':
            console.error(`building the HNSW index over ${event.images} images…`);
            break;
          case 'database-unreachable':
          case 'database-back':
            printOutage(event);
            break;
        }
      },
    });
    print(
      `worker ${report.worker}: stored ${report.stored} images` +
        `${report.failed ? `, ${report.failed} failed (ris collections info shows why)` : ''}` +
        `${report.skipped ? `, ${report.skipped} were already stored` : ''}` +
        `${report.lost ? `, ${report.lost} taken over by another worker` : ''}` +
        `${report.duplicates ? `, ${report.duplicates} exact duplicates of stored images` : ''}` +
        ` in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await store.close();
  }
}

/** A database that went away while a command works, and came back. */
function printOutage(event: OutageEvent): void {
  console.error(
    event.type === 'database-unreachable'
      ? `database unreachable, waiting up to ${event.patienceSeconds} s for it: ${event.reason}`
      : `database back after ${event.afterSeconds} s; going on`,
  );
}

/** `ris migrate`: creates or upgrades the schema (each process also does it on first use). */
export async function migrateCommand(options: { store?: string }): Promise<void> {
  const store = await postgresStoreFor(options.store, 'ris migrate');
  try {
    const { from, to, applied } = await store.migrate();
    if (applied.length === 0) print(`schema at ${store.location}: version ${to}, up to date`);
    else {
      print(`schema at ${store.location}: version ${to} (was ${from})`);
      for (const line of applied) print(`  applied ${line}`);
    }
  } finally {
    await store.close();
  }
}

/** `ris collections copy NAME --to postgres://…`: the collection, its vectors reused, into a database. */
export async function copyCommand(
  name: string,
  options: { store?: string; to?: string; imagesUrl?: string },
): Promise<void> {
  if (!options.to)
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      'ris collections copy needs --to postgres://user:password@host/database (where to copy the collection)',
    );
  const target = await postgresStoreFor(options.to, 'ris collections copy --to');
  const source = await openStore(options.store);
  const started = performance.now();
  try {
    const { copyCollection } = await import('../collection/postgres/copy.ts');
    const collection = await source.open(name, { onProgress: progressBars().onProgress });
    let lastLine = 0;
    try {
      const report = await copyCollection(collection, target, {
        imagesUrl: options.imagesUrl,
        onProgress: (event) => {
          if (event.type === 'copy' && (performance.now() - lastLine > 2000 || event.done === event.total)) {
            lastLine = performance.now();
            console.error(`copied ${event.done} of ${event.total}`);
          } else if (event.type === 'train')
            console.error(`building the HNSW index over ${event.images} images…`);
        },
      });
      await report.collection.close();
      print(
        `copied ${name} from ${source.location} to ${target.location}: ${report.copied} images` +
          `${report.alreadyThere ? ` (${report.alreadyThere} were already there)` : ''}` +
          ` in ${((performance.now() - started) / 1000).toFixed(1)} s; vectors reused, nothing embedded again`,
      );
      if (report.withoutThumbnail)
        print(
          `${report.withoutThumbnail} images without a thumbnail (their file is not readable here): made on first view`,
        );
    } finally {
      await collection.close();
    }
  } finally {
    await source.close();
    await target.close();
  }
}

/** What `ris collections info` adds for a Postgres collection: the database, the images URL, the queue. */
export async function storeInfoLines(store: CollectionStore, name: string): Promise<string[]> {
  const { PgStore } = await postgres();
  if (!(store instanceof PgStore)) return [];
  const { queueStatus } = await import('../collection/postgres/enqueue.ts');
  const row = await store.row(name);
  if (!row) return [];
  const queue = await queueStatus(store.db, row.id, 10);
  const lines = [`database    ${store.location}`];
  if (row.images_url) lines.push(`images url  ${row.images_url}`);
  lines.push(
    `queue       ${queue.pending} pending${queue.inProgress ? ` (${queue.inProgress} being embedded)` : ''}, ${queue.failed} failed`,
  );
  for (const failure of queue.failures)
    lines.push(
      `  ${failure.path}: ${failure.error} (${failure.code ?? 'error'}, ${failure.attempts} attempts)`,
    );
  if (queue.failed > queue.failures.length)
    lines.push(`  … and ${queue.failed - queue.failures.length} more`);
  return lines;
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
