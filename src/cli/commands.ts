import { readFile } from 'node:fs/promises';
import { decodeIndexFile } from '../ann/format.ts';
import { DISTANCE_TYPES } from '../ann/metric.ts';
import { indexCollection } from '../collection/build.ts';
import { Collection, risHome } from '../collection/collection.ts';
import { DATASETS, type DatasetName, datasetsDir, downloadDataset } from '../collection/datasets.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { ArgumentError, ImageError } from '../errors.ts';
import { createParallelAssigner } from '../node/parallel-assigner.ts';
import type { ListenOptions } from '../server/serve.ts';
import { progressBars } from './progress.ts';

const KINDS = ['unknown', 'flat', 'ivf-flat', 'ivf-pq'];

/** One line per fact about an index file, after verifying its checksum. */
export async function describeIndexFile(path: string): Promise<string> {
  const bytes = new Uint8Array(await readFile(path));
  const { fields } = decodeIndexFile(bytes, path);
  return [
    `kind          ${KINDS[fields.kind] ?? fields.kind}`,
    `vectors       ${fields.count}`,
    `dimension     ${fields.dimension}${fields.innerDimension !== fields.dimension ? ` (→ ${fields.innerDimension} after transform)` : ''}`,
    `distance      ${DISTANCE_TYPES[fields.distanceType]}`,
    fields.numPartitions ? `partitions    ${fields.numPartitions}` : '',
    fields.numSubVectors ? `sub-vectors   ${fields.numSubVectors} × ${fields.numBits} bits` : '',
    `file size     ${bytes.length} bytes (checksum ok)`,
  ]
    .filter(Boolean)
    .join('\n');
}

export interface IndexCommandOptions {
  collection: string;
  model?: string;
  partitions?: number;
  subVectors?: number;
  from?: string;
  dir?: string;
}

export async function indexCommand(source: string, options: IndexCommandOptions): Promise<void> {
  const bars = progressBars();
  const started = performance.now();
  const assigner = createParallelAssigner();
  try {
    const { collection, report, total } = await indexCollection(options.collection, source, {
      assigner,
      model: options.model,
      numPartitions: options.partitions,
      numSubVectors: options.subVectors,
      from: options.from,
      datasetsDir: options.dir,
      onProgress: bars.onProgress,
    });
    bars.stop();
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `collection ${collection.name}: ${collection.size} images (${report.added} added${report.alreadyPresent ? `, ${report.alreadyPresent} already there` : ''} of ${total} found) in ${seconds.toFixed(1)} s`,
    );
    printProblems(report);
    await collection.close();
  } finally {
    bars.stop();
    await assigner.close();
  }
}

function printProblems(report: {
  failures: { path: string; error: Error }[];
  duplicates: { path: string; sameAs: string }[];
}): void {
  if (report.failures.length) {
    console.log(`skipped ${report.failures.length} unreadable images:`);
    for (const f of report.failures) console.log(`  ${f.path}: ${f.error.message}`);
  }
  if (report.duplicates.length) {
    console.log(`${report.duplicates.length} exact duplicates (same bytes):`);
    for (const d of report.duplicates) console.log(`  ${d.path} = ${d.sameAs}`);
  }
}

export async function addCommand(name: string, paths: string[]): Promise<void> {
  const { resolveSource } = await import('../collection/build.ts');
  const { statSync } = await import('node:fs');
  const assigner = createParallelAssigner();
  const collection = await Collection.open(name, { assigner });
  const bars = progressBars();
  try {
    const images = [];
    for (const path of paths) {
      if (statSync(path, { throwIfNoEntry: false })?.isDirectory())
        images.push(...(await resolveSource(path)).images);
      else images.push({ path, labels: [] });
    }
    const report = await collection.addImages(images, { onProgress: bars.onProgress });
    bars.stop();
    await collection.updateIndex();
    console.log(
      `added ${report.added} images to ${name} (now ${collection.size}), ids ${formatIds(report.ids)}`,
    );
    printProblems(report);
    const { indexed, trainedOn } = collection.indexState;
    if (collection.indexState.kind === 'ivf-pq' && indexed > 2 * trainedOn) {
      console.log(
        `the index was trained on ${trainedOn} images and now holds ${indexed}: run ris retrain ${name} for the best recall`,
      );
    }
  } finally {
    bars.stop();
    await collection.close();
    await assigner.close();
  }
}

export async function removeCommand(name: string, targets: string[]): Promise<void> {
  const collection = await Collection.open(name);
  try {
    const parsed = targets.map((t) => (/^\d+$/.test(t) ? Number(t) : t));
    const removed = await collection.removeImages(parsed);
    console.log(`removed ${removed} of ${targets.length} from ${name} (now ${collection.size})`);
  } finally {
    await collection.close();
  }
}

export async function retrainCommand(name: string): Promise<void> {
  const assigner = createParallelAssigner();
  const collection = await Collection.open(name, { assigner });
  try {
    const started = performance.now();
    await collection.retrain();
    console.log(
      `retrained ${name}: ${collection.indexState.kind} index of ${collection.size} images in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    await collection.close();
    await assigner.close();
  }
}

export interface SearchCommandOptions {
  k: number;
  crop?: string;
  nprobes?: number;
  json?: boolean;
}

export async function searchCommand(
  name: string,
  image: string,
  options: SearchCommandOptions,
): Promise<void> {
  const collection = await Collection.open(name);
  try {
    const started = performance.now();
    const hits = await collection.search(await loadQuery(image), {
      k: options.k,
      crop: parseCrop(options.crop),
      nprobes: options.nprobes,
    });
    const ms = performance.now() - started;
    if (options.json) {
      console.log(
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
    console.log(`${hits.length} most similar in ${name} (${ms.toFixed(0)} ms):`);
    hits.forEach((hit, i) => {
      console.log(
        `${String(i + 1).padStart(3)}. ${hit.similarity.toFixed(3)}  #${hit.id}  ${(hit.labels.join(',') || '-').padEnd(18)} ${hit.path}`,
      );
    });
  } finally {
    await collection.close();
  }
}

async function loadQuery(image: string): Promise<ImageInput> {
  if (/^https?:\/\//i.test(image)) {
    const response = await fetch(image, { signal: AbortSignal.timeout(10_000) }).catch((error: Error) => {
      throw new ImageError('CORRUPT_IMAGE', `Cannot fetch ${image}: ${error.message}`);
    });
    if (!response.ok) throw new ImageError('CORRUPT_IMAGE', `Cannot fetch ${image}: HTTP ${response.status}`);
    return Buffer.from(await response.arrayBuffer());
  }
  return image;
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

export async function collectionsCommand(
  action: string | undefined,
  name: string | undefined,
): Promise<void> {
  if (!action || action === 'list') {
    const names = await Collection.list();
    if (names.length === 0) {
      console.log(`no collections in ${risHome()}; create one with ris index <folder> --collection NAME`);
      return;
    }
    for (const n of names) {
      const c = await Collection.open(n);
      console.log(
        `${n.padEnd(20)} ${String(c.size).padStart(7)} images  ${c.manifest.model}  (${c.indexState.kind} index)`,
      );
      await c.close();
    }
    return;
  }
  if (!name) throw new ArgumentError('INVALID_ARGUMENT', `ris collections ${action} needs a collection name`);
  if (action === 'info') {
    const c = await Collection.open(name);
    const labels = c.labels();
    const state = c.indexState;
    console.log(
      [
        `name        ${c.name}`,
        `images      ${c.size}`,
        `model       ${c.manifest.model} (${c.manifest.modelId}, ${c.manifest.dimension} dimensions)`,
        `image root  ${c.manifest.root}`,
        `index       ${state.kind}, ${state.indexed} vectors${state.kind === 'ivf-pq' ? `, trained on ${state.trainedOn}` : ''}`,
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
    await c.close();
    return;
  }
  if (action === 'delete') {
    await Collection.delete(name);
    console.log(`deleted collection ${name}`);
    return;
  }
  throw new ArgumentError(
    'INVALID_ARGUMENT',
    `Unknown action "${action}"; use list, info NAME or delete NAME`,
  );
}

export async function datasetsDownloadCommand(which: string, options: { dir?: string }): Promise<void> {
  const names = which === 'all' ? (Object.keys(DATASETS) as DatasetName[]) : [which];
  for (const name of names) {
    if (!(name in DATASETS))
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Unknown dataset "${name}"; use caltech101, voc2012 or all`,
      );
    const bars = progressBars();
    try {
      const root = await downloadDataset(name as DatasetName, {
        dir: options.dir,
        onProgress: bars.onProgress,
      });
      bars.stop();
      console.log(`${name}: ${root}`);
    } finally {
      bars.stop();
    }
  }
  if (!options.dir) console.log(`(datasets folder: ${datasetsDir()})`);
}

/** `npm start`: prepare the Caltech101 collection if there is none, then serve the page over all collections. */
export async function startCommand(options: {
  from?: string;
  model?: string;
  port?: number;
  host?: string;
}): Promise<void> {
  let names = await Collection.list();
  if (names.length === 0) {
    console.log('no collection yet: preparing caltech101 (download, embed, index)');
    await indexCommand('caltech101', {
      collection: 'caltech101',
      from: options.from ?? fromEnv(),
      model: options.model,
    });
    names = await Collection.list();
  }
  // caltech101 is the default collection: the page shows the first one served.
  const ordered = names.includes('caltech101')
    ? ['caltech101', ...names.filter((n) => n !== 'caltech101')]
    : names;
  await serveCommand({ port: options.port, host: options.host, collections: ordered });
}

/** Serves the page and the API until the process is stopped (Ctrl-C closes the collections). */
export async function serveCommand(options: ListenOptions): Promise<void> {
  const { listen } = await import('../server/serve.ts');
  const server = await listen(options);
  console.log(`ris is serving ${server.collections.join(', ')}`);
  console.log(`open ${server.url}/ in a browser (API: ${server.url}/api/collections); Ctrl-C stops it`);
  const stop = () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    void server.close();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

function fromEnv(): string | undefined {
  const dir = process.env.RIS_DATASETS_DIR;
  return dir ? `${dir}/caltech101` : undefined;
}

function formatIds(ids: number[]): string {
  if (ids.length === 0) return '-';
  return ids.length <= 6 ? ids.join(', ') : `${ids.slice(0, 3).join(', ')} … ${ids.at(-1)}`;
}
