/**
 * `npm run bench:index`: indexing throughput of all 9,144 Caltech101 images (../shared/data) with
 * mobilenetv2-int8, against the embedding pipeline's own images/s in the same run (target ≥ 0.9×), plus
 * the time to open the collection and answer the first search.
 */

import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { indexCollection } from '../src/collection/build.ts';
import { Collection, walkImages } from '../src/collection/collection.ts';
import { createParallelAssigner, Embedder, MODEL_REGISTRY } from '../src/index.ts';

const shared = join(import.meta.dirname, '..', '..', 'shared', 'data');
if (!existsSync(join(shared, 'caltech101'))) {
  console.log('bench:index needs ../shared/data/caltech101; skipped');
  process.exit(0);
}
const work = await mkdtemp(join(tmpdir(), 'ris-bench-index-'));
const cacheDir = join(work, 'models');
await mkdir(cacheDir);
const entry = MODEL_REGISTRY['mobilenetv2-int8']!;
await copyFile(join(shared, 'models', entry.fileName), join(cacheDir, entry.fileName));

const images = await walkImages(join(shared, 'caltech101'));
const files = images.map((i) => i.path);

// 1. The embedding pipeline alone.
const embedder = await Embedder.create({ model: 'mobilenetv2-int8', cacheDir });
for await (const _ of embedder.embedMany(files.slice(0, 32))) {
  // warm-up
}
let start = performance.now();
for await (const _ of embedder.embedMany(files)) {
  // vectors are dropped: only the pipeline's speed counts here
}
const pipelineSeconds = (performance.now() - start) / 1000;
await embedder.close();

// 2. The same images into a new collection: embed, store in SQLite, train and save the index.
const home = join(work, 'home');
const assigner = createParallelAssigner();
await assigner.ready();
let embedEnd = 0;
start = performance.now();
const { collection, report } = await indexCollection('bench', join(shared, 'caltech101'), {
  model: 'mobilenetv2-int8',
  home,
  embedder: { cacheDir },
  assigner,
  onProgress: (e) => {
    if (e.type === 'train') embedEnd = performance.now();
  },
});
const indexSeconds = (performance.now() - start) / 1000;
const trainSeconds = (performance.now() - embedEnd) / 1000;
await collection.close();
await assigner.close();

// 3. Open and first search, as a new process would.
start = performance.now();
const opened = await Collection.open('bench', { home, embedder: { cacheDir } });
const openMs = performance.now() - start;
start = performance.now();
const hits = await opened.search(files[0]!, { k: 5 });
const firstSearchMs = performance.now() - start;
start = performance.now();
await opened.search(files[1]!, { k: 5 });
const secondSearchMs = performance.now() - start;
await opened.close();

const n = report.added;
console.log(`images                      ${n}`);
console.log(`embedding pipeline alone    ${(files.length / pipelineSeconds).toFixed(1)} img/s`);
console.log(
  `ris index, whole run         ${(n / indexSeconds).toFixed(1)} img/s = ${(pipelineSeconds / files.length / (indexSeconds / n)).toFixed(2)}× the pipeline ` +
    `(embed + store ${(indexSeconds - trainSeconds).toFixed(1)} s, train + save the index ${trainSeconds.toFixed(1)} s)`,
);
console.log(`open collection             ${openMs.toFixed(0)} ms`);
console.log(
  `first search (loads model)  ${firstSearchMs.toFixed(0)} ms, next search ${secondSearchMs.toFixed(0)} ms; top hit ${hits[0]?.path}`,
);
await rm(work, { recursive: true, force: true });
