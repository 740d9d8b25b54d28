import { resolve } from 'node:path';
import { createCollection, deleteCollection } from '../collection/library.ts';
import type { IndexSettingsInput } from '../collection/manifest.ts';
import { formatBytes } from '../collection/memory-plan.ts';
import { describePendingWork } from '../collection/pending-work.ts';
import type { ImageCollection } from '../collection/store.ts';
import { openStore } from '../collection/stores.ts';
import { ArgumentError, RisError } from '../errors.ts';
import { buildThreads, withCollection } from './commands.ts';
import type { StoreOption } from './options.ts';
import { padColumns, print } from './print.ts';
import { progressBars } from './progress.ts';
import { copyCommand, storeInfoLines } from './store-commands.ts';

/** `ris collections [list|info|create|delete|repair|copy] [NAME]`. */
export async function collectionsCommand(
  action: string | undefined,
  name: string | undefined,
  options: StoreOption & {
    to?: string;
    imagesUrl?: string;
    model?: string;
    index?: IndexSettingsInput['kind'];
    folder?: string;
  } = {},
): Promise<void> {
  if (action && !['list', 'info', 'create', 'delete', 'repair', 'copy'].includes(action)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Unknown action "${action}"; use list, info NAME, create NAME, repair NAME, delete NAME or copy NAME --to postgres://…`,
    );
  }
  if (action !== 'create' && (options.model ?? options.index ?? options.folder) !== undefined)
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      '--model, --index and --folder go with ris collections create NAME',
    );
  if (action && action !== 'list' && !name)
    throw new ArgumentError('INVALID_ARGUMENT', `ris collections ${action} needs a collection name`);
  if (action !== 'copy' && (options.to !== undefined || options.imagesUrl !== undefined))
    throw new ArgumentError('INVALID_ARGUMENT', '--to and --images-url go with ris collections copy NAME');
  if (action === 'copy') return copyCommand(name!, options);
  const store = await openStore(options.store);
  try {
    if (!action || action === 'list') await listCollections(store);
    else if (action === 'info') {
      await withCollection(name!, options, describeCollection);
      for (const line of await storeInfoLines(store, name!)) print(line);
    } else if (action === 'repair') {
      const bars = progressBars();
      const threads = await buildThreads();
      try {
        const done = await store.repair(name!, {
          assigner: threads.assigner,
          hnswBuilder: threads.hnswBuilder,
          onProgress: bars.onProgress,
        });
        bars.stop();
        print(`repaired ${name}:`);
        for (const line of done) print(`  ${line}`);
      } finally {
        bars.stop();
        await threads.close();
      }
    } else if (action === 'create') {
      const collection = await createCollection(store, name!, {
        model: options.model,
        index: options.index === undefined ? undefined : { kind: options.index },
        root: options.folder === undefined ? undefined : resolve(options.folder),
      });
      print(
        `created collection ${name} (${collection.manifest.model}); ` +
          (options.folder === undefined
            ? 'send it images from the page, or ris add them'
            : `ris rescan ${name} adds the images of ${collection.manifest.root}`),
      );
      await collection.close();
    } else {
      await deleteCollection(store, name!);
      print(`deleted collection ${name}`);
    }
  } finally {
    await store.close();
  }
}

/** One line per collection; a broken one is listed as broken, with the reason, and the others as they are. */
async function listCollections(store: Awaited<ReturnType<typeof openStore>>): Promise<void> {
  const names = await store.list();
  if (names.length === 0) {
    print(`no collections in ${store.location}; create one with ris index <folder> --collection NAME`);
    return;
  }
  for (const n of names) {
    try {
      const c = await store.open(n, { onProgress: progressBars().onProgress });
      const { kind, outdated } = await c.status();
      const count = await c.count();
      const work = await c.pendingWork();
      print(
        `${padColumns(n, 20)} ${String(count).padStart(7)} images  ${c.manifest.model}  (${kind} index${outdated ? `, outdated: run ris retrain ${n}` : ''})` +
          `${work ? `  ${describePendingWork(work, count)}` : ''}`,
      );
      await c.close();
    } catch (error) {
      if (!(error instanceof RisError)) throw error;
      print(`${padColumns(n, 20)} broken: ${error.message}`);
    }
  }
}

async function describeCollection(c: ImageCollection): Promise<void> {
  const labels = await c.labels();
  const state = await c.status();
  const count = await c.count();
  const work = await c.pendingWork();
  const settings = Object.entries(state.settings)
    .filter(([k, v]) => k !== 'memoryBudget' || v !== null)
    .map(([k, v]) => `${k} ${k === 'memoryBudget' ? formatBytes(Number(v)) : v}`)
    .join(', ');
  const built = Object.entries(state.built)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  print(
    [
      `name        ${c.name}`,
      `images      ${await c.count()}`,
      `model       ${c.manifest.model} (${c.manifest.modelId}, ${c.manifest.dimension} dimensions)`,
      `image root  ${c.manifest.root}`,
      ...(work ? [`state       ${describePendingWork(work, count)}`] : []),
      `index       ${state.kind}, ${state.indexed} vectors${state.kind === 'ivf-pq' || state.kind === 'ivf-rabitq' ? `, trained on ${state.trainedOn}` : ''}${built ? ` (${built})` : ''}`,
      ...(state.outdated ? [`            outdated: ${state.outdated}`] : []),
      ...(state.memoryBytes !== undefined
        ? [`memory      ${formatBytes(state.memoryBytes)} held by the index`]
        : []),
      `settings    ${settings}`,
      ...(c.manifest.projection
        ? [
            `projection  ${c.manifest.projection.method} to ${c.manifest.projection.outputDimension} dimensions`,
          ]
        : []),
      `labels      ${labels.length}${
        labels.length
          ? `: ${labels
              .slice(0, 8)
              .map((l) => `${l.label} (${l.count})`)
              .join(', ')}${labels.length > 8 ? ', …' : ''}`
          : ''
      }`,
      `folder      ${c.dir}`,
    ].join('\n'),
  );
}
