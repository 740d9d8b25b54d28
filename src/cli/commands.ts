import { readFile } from 'node:fs/promises';
import type { HnswBuilder } from '../ann/hnsw-parallel.ts';
import { openIndex } from '../ann/registry.ts';
import { indexCollection } from '../collection/build.ts';
import {
  DATASETS,
  type DatasetName,
  datasetNamed,
  datasetsDir,
  downloadDataset,
} from '../collection/datasets.ts';
import { risHome } from '../collection/home.ts';
import { addPaths, removeImages, rescan } from '../collection/library.ts';
import { budgetReport, formatBytes } from '../collection/memory-plan.ts';
import { searchQuery } from '../collection/query-search.ts';
import type { ImageCollection } from '../collection/store.ts';
import { openStore } from '../collection/stores.ts';
import type { CropBox } from '../embed/image.ts';
import { loadProjection } from '../embed/projection.ts';
import { ArgumentError } from '../errors.ts';
import { createNodeHnswBuilder } from '../node/hnsw-builder.ts';
import { createParallelAssigner, type ParallelAssigner } from '../node/parallel-assigner.ts';
import type { ListenOptions } from '../server/serve.ts';
import type { IndexCommandOptions, StoreOption } from './options.ts';
import { padColumns, print } from './print.ts';
import { progressBars } from './progress.ts';
import { searchTerms } from './search-terms.ts';

/** One line per fact about an index file of any kind, after verifying its checksum. */
export async function describeIndexFile(path: string): Promise<string> {
  const bytes = new Uint8Array(await readFile(path));
  const {
    kind,
    size,
    dimension,
    distanceType,
    parameters: p,
    memoryBytes,
  } = openIndex(bytes, path).describe();
  const inner = p.innerDimension !== undefined && p.innerDimension !== dimension;
  return [
    `kind          ${kind}`,
    `vectors       ${size}`,
    `dimension     ${dimension}${inner ? ` (→ ${p.innerDimension} after transform)` : ''}`,
    `distance      ${distanceType}`,
    p.numPartitions !== undefined ? `partitions    ${p.numPartitions}` : '',
    p.numSubVectors !== undefined ? `sub-vectors   ${p.numSubVectors} × ${p.numBits} bits` : '',
    p.transform !== undefined && p.transform !== 'none' ? `transform     ${p.transform}` : '',
    p.refineStorage !== undefined && p.refineStorage !== 'none'
      ? `refine        ${p.refineStorage} copy of each vector`
      : '',
    `memory        ${memoryBytes} bytes once loaded`,
    `file size     ${bytes.length} bytes (checksum ok)`,
  ]
    .filter(Boolean)
    .join('\n');
}

/**
 * The threads of index builds (k-means for IVF-PQ, graph searches for HNSW), for the commands that build:
 * every core works, and the workers are stopped at the end.
 */
export async function buildThreads(): Promise<{
  assigner: ParallelAssigner;
  hnswBuilder: HnswBuilder;
  close(): Promise<void>;
}> {
  const assigner = createParallelAssigner();
  const hnswBuilder = await createNodeHnswBuilder().catch(async (error) => {
    await assigner.close();
    throw error;
  });
  return {
    assigner,
    hnswBuilder,
    close: async () => {
      await Promise.all([assigner.close(), hnswBuilder.close()]);
    },
  };
}

/**
 * While `work` runs, Ctrl-C ends the process at once (every committed batch is kept, as after a kill) with
 * a line saying so, instead of silently.
 */
async function resumableOnInterrupt<T>(
  what: string,
  bars: { stop: () => void },
  work: () => Promise<T>,
): Promise<T> {
  const interrupted = () => {
    bars.stop();
    process.stderr.write(
      `\nris: interrupted; the images ${what} so far are kept: run the same command again to go on\n`,
    );
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  try {
    return await work();
  } finally {
    process.off('SIGINT', interrupted);
  }
}

export async function indexCommand(source: string, options: IndexCommandOptions): Promise<void> {
  const bars = progressBars();
  await resumableOnInterrupt('indexed', bars, () => indexWithBars(source, options, bars));
}

async function indexWithBars(
  source: string,
  options: IndexCommandOptions,
  bars: ReturnType<typeof progressBars>,
): Promise<void> {
  const started = performance.now();
  const store = await openStore(options.store);
  const threads = await buildThreads();
  try {
    const projection = options.projection ? await loadProjection(options.projection) : undefined;
    const { collection, report, total } = await indexCollection(options.collection, source, {
      store,
      projection,
      assigner: threads.assigner,
      hnswBuilder: threads.hnswBuilder,
      model: options.model,
      index: {
        kind: options.index,
        memoryBudget: options.memoryBudget,
        numPartitions: options.partitions,
        numSubVectors: options.subVectors,
      },
      from: options.from,
      datasetsDir: options.dir,
      onProgress: bars.onProgress,
    });
    bars.stop();
    const seconds = (performance.now() - started) / 1000;
    print(
      `collection ${collection.name}: ${await collection.count()} images (${report.added} added${report.alreadyPresent ? `, ${report.alreadyPresent} already there` : ''} of ${total} found) in ${seconds.toFixed(1)} s`,
    );
    printProblems(report);
    const status = await collection.status();
    const { settings } = status;
    // An existing collection keeps the index settings it was made with: say so, rather than seem to
    // have taken the ones just typed.
    if (
      (options.memoryBudget !== undefined && options.memoryBudget !== settings.memoryBudget) ||
      (options.index !== undefined && options.index !== settings.kind)
    )
      print(
        `${collection.name} keeps the index settings it was made with (${settings.kind}${settings.memoryBudget === null ? '' : `, memory budget ${formatBytes(settings.memoryBudget)}`}): --index and --memory-budget set up a new collection`,
      );
    if (settings.memoryBudget !== null) print(budgetReport(status, settings.memoryBudget));
    await collection.close();
  } finally {
    bars.stop();
    await threads.close();
    await store.close();
  }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function printProblems(report: {
  failures: { path: string; error: Error }[];
  duplicates: { path: string; sameAs: string }[];
}): void {
  if (report.failures.length) {
    print(`skipped ${plural(report.failures.length, 'unreadable image')}:`);
    for (const f of report.failures) print(`  ${f.path}: ${f.error.message}`);
  }
  if (report.duplicates.length) {
    print(`${plural(report.duplicates.length, 'exact duplicate')} (same bytes):`);
    for (const d of report.duplicates) print(`  ${d.path} = ${d.sameAs}`);
  }
}

/** Opens the store and one collection in it; `work` runs, then both are closed whatever happens. */
export async function withCollection<T>(
  name: string,
  options: StoreOption & { assigner?: boolean },
  work: (collection: ImageCollection) => Promise<T>,
): Promise<T> {
  const store = await openStore(options.store);
  const threads = options.assigner ? await buildThreads() : undefined;
  try {
    const collection = await store.open(name, {
      assigner: threads?.assigner,
      hnswBuilder: threads?.hnswBuilder,
      onProgress: progressBars().onProgress,
    });
    try {
      return await work(collection);
    } finally {
      await collection.close();
    }
  } finally {
    await threads?.close();
    await store.close();
  }
}

export async function addCommand(
  name: string,
  paths: string[],
  options: StoreOption & { labels?: string[] } = {},
): Promise<void> {
  const bars = progressBars();
  await resumableOnInterrupt('added', bars, () =>
    withCollection(name, { ...options, assigner: true }, async (collection) => {
      const report = await addPaths(collection, paths, {
        labels: options.labels,
        onProgress: bars.onProgress,
      });
      bars.stop();
      print(
        `added ${report.added} images to ${name} (now ${await collection.count()})` +
          `${report.added ? `, ids ${formatIds(report.ids)}` : ''}` +
          `${report.alreadyPresent ? `; ${report.alreadyPresent} already there` : ''}`,
      );
      printProblems(report);
      const { kind, indexed, trainedOn } = await collection.status();
      if ((kind === 'ivf-pq' || kind === 'ivf-rabitq') && indexed > 2 * trainedOn) {
        print(
          `the index was trained on ${trainedOn} images and now holds ${indexed}: run ris retrain ${name} for the best recall`,
        );
      }
    }),
  ).finally(() => bars.stop());
}

export async function removeCommand(
  name: string,
  targets: string[],
  options: StoreOption = {},
): Promise<void> {
  await withCollection(name, options, async (collection) => {
    const parsed = targets.map((t) => (/^\d+$/.test(t) ? Number(t) : t));
    const { removed, notFound } = await removeImages(collection, parsed);
    print(`removed ${removed} of ${targets.length} from ${name} (now ${await collection.count()})`);
    if (notFound.length) print(`not in ${name}: ${notFound.join(', ')}`);
  });
}

export async function rescanCommand(name: string, options: StoreOption = {}): Promise<void> {
  const bars = progressBars();
  await resumableOnInterrupt('embedded', bars, () =>
    withCollection(name, { ...options, assigner: true }, async (collection) => {
      const started = performance.now();
      const report = await rescan(collection, { onProgress: bars.onProgress });
      bars.stop();
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      print(
        `rescanned ${name} in ${seconds} s: ${report.added} added, ${report.reembedded} embedded again (changed), ` +
          `${report.removed} removed (gone), ${report.moved} moved, ${report.unchanged} unchanged` +
          (report.excluded ? `, ${report.excluded} left out (removed by hand)` : '') +
          ` (now ${await collection.count()})`,
      );
      printProblems({ failures: report.failures, duplicates: [] });
    }),
  ).finally(() => bars.stop());
}

export async function retrainCommand(name: string, options: StoreOption = {}): Promise<void> {
  const bars = progressBars();
  await withCollection(name, { ...options, assigner: true }, async (collection) => {
    const started = performance.now();
    await collection.retrain({ onProgress: bars.onProgress });
    const { kind } = await collection.status();
    print(
      `retrained ${name}: ${kind} index of ${await collection.count()} images in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  }).finally(() => bars.stop());
}

export interface SearchCommandOptions extends StoreOption {
  k: number;
  crop?: string;
  nprobes?: number;
  efSearch?: number;
  minSimilarity?: number;
  json?: boolean;
  /** Words to search for, and words to search away from (rclip's "2:words" weights). */
  text?: string[];
  not?: string[];
}

export async function searchCommand(
  name: string,
  image: string | undefined,
  options: SearchCommandOptions,
): Promise<void> {
  const crop = parseCrop(options.crop);
  const terms = await searchTerms(image, { text: options.text, not: options.not, crop });
  await withCollection(name, options, async (collection) => {
    const started = performance.now();
    const { hits, truncatedTexts } = await searchQuery(collection, terms, {
      k: options.k,
      nprobes: options.nprobes,
      efSearch: options.efSearch,
      minSimilarity: options.minSimilarity,
    });
    const ms = performance.now() - started;
    for (const i of truncatedTexts) {
      const term = terms[i] as { text: string };
      process.stderr.write(
        `note: "${term.text.slice(0, 40)}…" is longer than the model reads (77 tokens); its end was left out\n`,
      );
    }
    if (options.json) {
      print(
        JSON.stringify(
          hits.map(({ id, path, absolutePath, labels, distance, similarity }) => ({
            id,
            path,
            absolutePath,
            labels,
            distance,
            similarity,
          })),
          null,
          2,
        ),
      );
      return;
    }
    if (hits.length === 0 && options.minSimilarity !== undefined) {
      print(
        `no close match in ${name}: nothing is at least ${options.minSimilarity} similar (${ms.toFixed(0)} ms)`,
      );
      return;
    }
    print(`${hits.length} most similar in ${name} (${ms.toFixed(0)} ms):`);
    const idWidth = Math.max(0, ...hits.map((hit) => String(hit.id).length));
    hits.forEach((hit, i) => {
      print(
        `${String(i + 1).padStart(3)}. ${hit.similarity.toFixed(3)}  ${`#${hit.id}`.padEnd(idWidth + 1)}  ${padColumns(hit.labels.join(',') || '-', 18)} ${hit.path}`,
      );
    });
  });
}

export function parseCrop(value: string | undefined): CropBox | undefined {
  if (value === undefined) return undefined;
  const parts = String(value).split(',').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected --crop as x,y,width,height in pixels (for example 10,20,200,150) but received "${value}"`,
    );
  }
  const [left, top, width, height] = parts as [number, number, number, number];
  return { left, top, width, height };
}

export async function datasetsDownloadCommand(which: string, options: { dir?: string }): Promise<void> {
  const names = which === 'all' ? (Object.keys(DATASETS) as DatasetName[]) : [datasetNamed(which)];
  for (const name of names) {
    const bars = progressBars();
    try {
      const root = await downloadDataset(name, { dir: options.dir, onProgress: bars.onProgress });
      bars.stop();
      print(`${name}: ${root}`);
    } finally {
      bars.stop();
    }
  }
  if (!options.dir) print(`(datasets folder: ${datasetsDir()})`);
}

/**
 * `npm start`: prepares the Caltech101 collection if there is none (download, embed, index), serves the
 * page over every collection, then prepares the other datasets asked for in the background: the page
 * shows them as "preparing" until they are ready, and they join without a restart.
 */
export async function startCommand(
  options: StoreOption & {
    from?: string;
    model?: string;
    port?: number;
    host?: string;
    datasets?: string[];
  },
): Promise<void> {
  const datasets = (options.datasets ?? ['caltech101', 'voc2012']).map(datasetNamed);
  const store = await openStore(options.store);
  let names = await store.list();
  if (!names.includes('caltech101') && (datasets.includes('caltech101') || names.length === 0)) {
    print('preparing the caltech101 collection (download, embed, index)');
    await indexCommand('caltech101', {
      collection: 'caltech101',
      from: options.from,
      model: options.model,
      store: options.store,
    });
    names = await store.list();
  }
  await store.close();
  // caltech101 is the default collection: the page shows the first one served.
  const ordered = names.includes('caltech101')
    ? ['caltech101', ...names.filter((n) => n !== 'caltech101')]
    : names;
  const later = datasets.filter((d) => !names.includes(d));
  await serveCommand({
    port: options.port,
    host: options.host,
    collections: ordered,
    prepare: later.map((dataset) => ({ dataset, model: options.model })),
    storeLocation: options.store,
  });
}

/** How `ris serve` and `ris start` guard the library, and whether they follow the collections' folders. */
export interface ServeAccessOptions {
  /** A file holding the write token; else $RIS_TOKEN; else one made and kept in ris's data folder. */
  tokenFile?: string;
  /** Reads need a token too: $RIS_READ_TOKEN, else one made and kept beside the write token. */
  readToken?: boolean;
  /** Minutes between full rescans of watched folders (with `watch`; 0: none). Default 10. */
  sweepMinutes?: number;
}

/** Serves the page and the API until the process is stopped (Ctrl-C closes the collections). */
export async function serveCommand(
  options: ListenOptions & ServeAccessOptions & { storeLocation?: string },
): Promise<void> {
  const { listen } = await import('../server/serve.ts');
  const { READ_TOKEN_FILE, writeToken } = await import('../server/auth.ts');
  const { storeLocation, tokenFile, readToken: readTokenWanted, sweepMinutes, ...listenOptions } = options;
  const home = risHome();
  const write = writeToken({ tokenFile, envToken: process.env.RIS_TOKEN, home });
  const read = readTokenWanted
    ? writeToken({ envToken: process.env.RIS_READ_TOKEN, home, file: READ_TOKEN_FILE })
    : undefined;
  const store = await openStore(storeLocation);
  const server = await listen({
    ...listenOptions,
    access: { writeToken: write.token, readToken: read?.token },
    store,
    watch:
      options.watch && sweepMinutes !== undefined
        ? { sweepIntervalMs: sweepMinutes * 60_000 }
        : options.watch,
    log: (line) => console.error(line),
    collectionOptions: { ...options.collectionOptions, onProgress: progressBars().onProgress },
  }).catch(async (error) => {
    await store.close();
    throw error;
  });
  for (const warning of [...write.warnings, ...(read?.warnings ?? []), ...server.warnings])
    console.error(`ris: warning: ${warning}`);
  print(`ris is serving ${server.collections.join(', ') || 'no collection yet'}`);
  for (const [name, reason] of server.broken) print(`not serving ${name}: ${reason}`);
  // As Jupyter does: the address with the token, once, so the page can write (it keeps the token).
  const printed = write.source === 'new' || write.source === 'stored';
  print(
    `open ${server.url}/${printed ? `?token=${write.token}` : ''} in a browser to search and change the library` +
      (printed
        ? ` (the token is kept in ${write.path})`
        : ` (with the token of ${write.source === 'env' ? '$RIS_TOKEN' : write.path})`),
  );
  if (read && (read.source === 'new' || read.source === 'stored'))
    print(`to let others search without changing anything: ${server.url}/?token=${read.token}`);
  print(`API: ${server.url}/api/collections; Ctrl-C stops it`);
  const stop = () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    void server.close().finally(() => store.close());
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

function formatIds(ids: number[]): string {
  if (ids.length === 0) return '-';
  return ids.length <= 6 ? ids.join(', ') : `${ids.slice(0, 3).join(', ')} … ${ids.at(-1)}`;
}
