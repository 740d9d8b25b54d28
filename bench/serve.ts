/**
 * `npm run bench:serve`: latency of upload-search over HTTP (p50, p95) with 1 and 8 concurrent clients,
 * against the time of one model forward pass (batch 1, ready tensor) in the same run. The collection is
 * 1,000 Caltech101 images (every 9th) embedded with ResNet50 (a random-weight torchvision export, same
 * cost as the zoo model; `npm run bench:embed` makes it) or with mobilenetv2-int8 (`--model mobilenetv2-int8`).
 * Targets: p50 at 1 client ≤ 1.3× one forward pass; no errors at 8 clients.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Collection } from '../src/collection/collection.ts';
import { MODEL_REGISTRY } from '../src/index.ts';
import { listen } from '../src/server/serve.ts';
import { caltechFiles, forwardOnly, shared } from './lib.ts';

if (!existsSync(join(shared, 'caltech101'))) {
  console.log('bench:serve needs ../shared/data/caltech101; skipped');
  process.exit(0);
}
const wanted = process.argv.includes('--model')
  ? process.argv[process.argv.indexOf('--model') + 1]
  : 'resnet50';
const work = await mkdtemp(join(tmpdir(), 'ris-bench-serve-'));
const resnet = join(import.meta.dirname, 'results', 'resnet50-random.onnx');
let model: string;
const cacheDir = join(work, 'models');
await mkdir(cacheDir);
if (wanted === 'resnet50' && existsSync(resnet)) {
  model = join(work, 'resnet50-random.onnx');
  await copyFile(resnet, model);
  const config = MODEL_REGISTRY['resnet50']!.config;
  await writeFile(
    join(work, 'resnet50-random.json'),
    JSON.stringify({
      ...config,
      name: 'resnet50-random',
      input: { ...config.input, name: 'input' },
      output: { tensor: 'features', pooling: 'none' },
    }),
  );
} else {
  if (wanted === 'resnet50')
    console.log(
      'no bench/results/resnet50-random.onnx (run npm run bench:embed first): using mobilenetv2-int8',
    );
  model = 'mobilenetv2-int8';
  const entry = MODEL_REGISTRY['mobilenetv2-int8']!;
  await copyFile(join(shared, 'models', entry.fileName), join(cacheDir, entry.fileName));
}

const home = join(work, 'home');
const files = await caltechFiles(1000);
const collection = await Collection.create(
  'bench',
  { model, root: join(shared, 'caltech101') },
  { home, embedder: { cacheDir } },
);
await collection.addImages(files.map((path) => ({ path })));
await collection.updateIndex();
const embedder = await collection.embedder();
const modelFile = model.endsWith('.onnx')
  ? model
  : join(cacheDir, MODEL_REGISTRY['mobilenetv2-int8']!.fileName);
await collection.close();

const forward = await forwardOnly(modelFile, embedder.config, 40, availableParallelism(), 1);
const forwardMs = (forward.seconds / 40) * 1000;

const server = await listen({
  port: 0,
  collections: ['bench'],
  collectionOptions: { home, embedder: { cacheDir } },
});
const queries = await Promise.all(files.slice(0, 64).map((f) => readFile(f)));
async function search(bytes: Buffer): Promise<{ ms: number; ok: boolean }> {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(bytes)]), 'q.jpg');
  form.append('k', '5');
  const start = performance.now();
  const response = await fetch(`${server.url}/api/collections/bench/search`, { method: 'POST', body: form });
  await response.arrayBuffer();
  return { ms: performance.now() - start, ok: response.ok };
}
for (const q of queries.slice(0, 4)) await search(q); // warm-up

async function load(clients: number, perClient: number) {
  const latencies: number[] = [];
  let errors = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; i < perClient; i++) {
        const r = await search(queries[(c * perClient + i) % queries.length]!);
        latencies.push(r.ms);
        if (!r.ok) errors++;
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { p50: pct(0.5), p95: pct(0.95), errors, n: latencies.length };
}
const one = await load(1, 60);
const eight = await load(8, 20);
await server.close();
await rm(work, { recursive: true, force: true });

console.log(`model ${embedder.config.name}, ${files.length} images, ${availableParallelism()} threads`);
console.log(`one forward pass (batch 1, ready tensor)   ${forwardMs.toFixed(1)} ms`);
console.log(
  `1 client:  p50 ${one.p50.toFixed(1)} ms (${(one.p50 / forwardMs).toFixed(2)}× the forward pass), p95 ${one.p95.toFixed(1)} ms, errors ${one.errors}/${one.n}`,
);
console.log(
  `8 clients: p50 ${eight.p50.toFixed(1)} ms, p95 ${eight.p95.toFixed(1)} ms, errors ${eight.errors}/${eight.n}`,
);
