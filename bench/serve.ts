/**
 * `npm run bench:serve`: latency of upload-search over HTTP (p50, p95) with 1 and 8 concurrent clients,
 * against the time of one model forward pass (batch 1, ready tensor) in the same run. The collection is
 * 1,000 Caltech101 images (every 9th; `--images N` for another count) embedded with ResNet50 (a random-weight torchvision export, same
 * cost as the zoo model; `npm run bench:embed` makes it) or with mobilenetv2-int8 (`--model mobilenetv2-int8`).
 * Targets: p50 at 1 client ≤ 1.3× one forward pass; no errors at 8 clients.
 *
 * Then the server following other processes: a real `ris add` of one new image while a client searches
 * without pause; how long until the server finds the new image, and the search p99 meanwhile (and the same
 * during a `ris retrain`).
 *
 * Then the library's write path: the same 500 other Caltech101 images added to a new collection through
 * the API (5 requests of 100 files, one after the other) and with `ris add` (a process: start, model,
 * embedding), images/s of each (target: the API ≥ 0.8× ris add), with the library's own addPaths in this
 * process (warm model) beside them; and the search p50 while 1,000 more are uploaded into the collection
 * searched, against the p50 with nothing else running.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Collection } from '../src/collection/collection.ts';
import { addPaths } from '../src/collection/library.ts';
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
// Where `ris` looks for built-in models ($XDG_CACHE_HOME/ris/models), for the CLI processes below too.
const xdgCache = join(work, 'xdg');
const cacheDir = join(xdgCache, 'ris', 'models');
await mkdir(cacheDir, { recursive: true });
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
const imageCount = process.argv.includes('--images')
  ? Number(process.argv[process.argv.indexOf('--images') + 1])
  : 1000;
const files = await caltechFiles(imageCount);
const collection = await Collection.create(
  'bench',
  { model, root: join(shared, 'caltech101') },
  { home, embedder: { cacheDir } },
);
await collection.addImages(files.map((path) => ({ path })));
const embedder = await collection.embedder();
const modelFile = model.endsWith('.onnx')
  ? model
  : join(cacheDir, MODEL_REGISTRY['mobilenetv2-int8']!.fileName);
await collection.close();

const forward = await forwardOnly(modelFile, embedder.config, 40, availableParallelism(), 1);
const forwardMs = (forward.seconds / 40) * 1000;

const TOKEN = 'bench-serve-token-0123456789';
const server = await listen({
  port: 0,
  collections: ['bench'],
  collectionOptions: { home, embedder: { cacheDir } },
  access: { writeToken: TOKEN },
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

/** Runs the real CLI on the bench's collection. */
function cli(...args: string[]): Promise<number | null> {
  const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'bin', 'ris.js'), ...args], {
    env: { ...process.env, RIS_HOME: home, XDG_CACHE_HOME: xdgCache },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      if (code !== 0)
        console.error(`ris ${args.slice(0, 2).join(' ')} … (${code ?? signal}): ${stderr.trim()}`);
      resolve(code);
    }),
  );
}

/** One client searching without pause while `work` runs; latencies of those searches. */
async function during(
  work: () => Promise<void>,
): Promise<{ p50: number; p99: number; n: number; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  let done = false;
  const client = (async () => {
    for (let i = 0; !done; i++) {
      const r = await search(queries[i % queries.length]!);
      latencies.push(r.ms);
      if (!r.ok) errors++;
    }
  })();
  await work();
  done = true;
  await client;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { p50: pct(0.5), p99: pct(0.99), n: latencies.length, errors };
}

const quiet = await during(() => new Promise((r) => setTimeout(r, 4000)));
const taken = new Set(files);
const newImage = (await caltechFiles(9144)).find((f) => !taken.has(f));
if (!newImage) throw new Error('every Caltech101 image is in the collection: use fewer --images');
const newBytes = await readFile(newImage);
let visibleAfterExitMs = 0;
let visibleAfterStartMs = 0;
const adding = await during(async () => {
  const started = performance.now();
  if ((await cli('add', 'bench', newImage)) !== 0) throw new Error('ris add failed');
  const exited = performance.now();
  for (;;) {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(newBytes)]), 'q.jpg');
    form.append('k', '1');
    const response = await fetch(`${server.url}/api/collections/bench/search`, {
      method: 'POST',
      body: form,
    });
    const body = (await response.json()) as { results: { similarity: number }[] };
    if ((body.results[0]?.similarity ?? 0) > 0.999) break;
  }
  visibleAfterExitMs = performance.now() - exited;
  visibleAfterStartMs = performance.now() - started;
});
const retraining = await during(async () => {
  if ((await cli('retrain', 'bench')) !== 0) throw new Error('ris retrain failed');
});

// The library's write path.
const others = (await caltechFiles(9144)).filter((f) => !taken.has(f) && f !== newImage);
const spread = others.filter((_, i) => i % 5 === 0);
const fiveHundred = spread.slice(0, 500);
const thousand = spread.slice(500, 1500);
const auth = { authorization: `Bearer ${TOKEN}` };
/** Sends files to a collection in requests of 100, one after the other; seconds. */
async function upload(collection: string, paths: string[]): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < paths.length; i += 100) {
    const body = new FormData();
    for (const path of paths.slice(i, i + 100))
      body.append('image', new Blob([new Uint8Array(await readFile(path))]), basename(path));
    const response = await fetch(`${server.url}/api/collections/${collection}/images`, {
      method: 'POST',
      headers: auth,
      body,
    });
    const report = (await response.json()) as { added?: unknown[]; failed?: unknown[] };
    if (!response.ok || report.failed?.length) throw new Error(`upload failed: ${JSON.stringify(report)}`);
  }
  return (performance.now() - start) / 1000;
}
const models = (await (await fetch(`${server.url}/api/models`)).json()) as { name: string; label: string }[];
const choice = models.find((m) => m.name === model || m.label === basename(model))!;
const created = await fetch(`${server.url}/api/collections`, {
  method: 'POST',
  headers: { ...auth, 'content-type': 'application/json' },
  body: JSON.stringify({ name: 'via-api', model: choice.name }),
});
if (created.status !== 201) throw new Error(`creating via-api failed: ${await created.text()}`);
const apiSeconds = await upload('via-api', fiveHundred);
if ((await cli('collections', 'create', 'via-cli', '--model', model)) !== 0) throw new Error('create failed');
let start = performance.now();
if ((await cli('add', 'via-cli', ...fiveHundred)) !== 0) throw new Error('ris add failed');
const cliSeconds = (performance.now() - start) / 1000;
const local = await Collection.create('via-lib', { model }, { home, embedder: { cacheDir } });
await local.embedder();
start = performance.now();
await addPaths(local, fiveHundred);
const libSeconds = (performance.now() - start) / 1000;
await local.close();
let duringSeconds = 0;
const uploading = await during(async () => {
  duringSeconds = await upload('bench', thousand);
});
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
const row = (name: string, r: { p50: number; p99: number; n: number; errors: number }) =>
  `${name.padEnd(30)} p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms (${(r.p99 / quiet.p99).toFixed(2)}× quiet p99), errors ${r.errors}/${r.n}`;
console.log(row('1 client, nothing else', quiet));
console.log(row('1 client during ris add', adding));
console.log(row('1 client during ris retrain', retraining));
console.log(
  `a ris add of one image is found by the server ${visibleAfterExitMs.toFixed(0)} ms after the command exits ` +
    `(${visibleAfterStartMs.toFixed(0)} ms after it starts: process start, model load, embedding, commit)`,
);
const rate = (seconds: number) => `${(500 / seconds).toFixed(1)} images/s (${seconds.toFixed(1)} s)`;
console.log(
  `500 images through the API (5 × 100 files): ${rate(apiSeconds)}; ris add: ${rate(cliSeconds)}; ` +
    `API / ris add = ${(cliSeconds / apiSeconds).toFixed(2)} (target ≥ 0.8)`,
);
console.log(
  `  the library's addPaths in this process, model loaded: ${rate(libSeconds)}; API / addPaths = ${(libSeconds / apiSeconds).toFixed(2)}`,
);
console.log(
  `${row('1 client during a 1,000-image upload', uploading)}; p50 ${(uploading.p50 / quiet.p50).toFixed(2)}× quiet p50 ` +
    `(the upload: ${(1000 / duringSeconds).toFixed(1)} images/s)`,
);
