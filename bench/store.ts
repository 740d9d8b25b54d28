/**
 * `npm run bench:store`: the local store against the Postgres store on the Caltech101 collection
 * (../shared/data, mobilenetv2-int8), in one run on this machine:
 *
 * 1. Indexing throughput: `ris index` into the local store; `ris index --enqueue` then 1 `ris worker`, and
 *    then 2 workers at once, into PostgreSQL (each run a new collection of the same images); and
 *    `ris collections copy` of the local collection (vectors reused, thumbnails made).
 * 2. Search: p50 / p95 latency of `searchVector` (the query already embedded) and 10-recall@10 against
 *    exact search over the stored vectors, for the local store (IVF-PQ past 2,048 images) and the Postgres
 *    store (pgvector HNSW at several ef_search, and exact search in the database).
 *
 * The database is PGlite (Postgres 18 compiled to WebAssembly, with pgvector 0.8.7) served over the wire
 * protocol from a process of its own (test/fixtures/pg-server.ts), or RIS_BENCH_DATABASE_URL. PGlite runs
 * one session: connections take turns, so its figures are a floor, not what a PostgreSQL server does.
 *
 * `--quick` uses 2,200 of the images (enough to pass the exact-search threshold) and 100 queries.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { FlatIndex } from '../src/ann/flat.ts';
import { Random } from '../src/ann/random.ts';
import { Collection } from '../src/collection/collection.ts';
import { postgresStore } from '../src/collection/postgres/store.ts';
import { exactSearchSql, vectorParam } from '../src/collection/postgres/vectors.ts';
import type { ImageCollection } from '../src/collection/store.ts';
import { walkImages } from '../src/collection/walk.ts';
import { DEFAULT_EF_SEARCH, DEFAULT_NPROBES, MODEL_REGISTRY } from '../src/index.ts';

const shared = join(import.meta.dirname, '..', '..', 'shared', 'data');
if (!existsSync(join(shared, 'caltech101'))) {
  console.log('bench:store needs ../shared/data/caltech101; skipped');
  process.exit(0);
}
const quick = process.argv.includes('--quick');
const QUERIES = quick ? 100 : 500;
const K = 10;
const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'ris.js');

const work = await mkdtemp(join(tmpdir(), 'ris-bench-store-'));
const cache = join(work, 'cache');
const entry = MODEL_REGISTRY['mobilenetv2-int8']!;
await mkdir(join(cache, 'ris', 'models'), { recursive: true });
await copyFile(join(shared, 'models', entry.fileName), join(cache, 'ris', 'models', entry.fileName));
const env = {
  ...process.env,
  XDG_CACHE_HOME: cache,
  RIS_HOME: join(work, 'home'),
  RIS_DATASET_MIRROR: 'http://127.0.0.1:9',
};

// The images: all of Caltech101, or (quick) a copy of the first 2,200.
let images = join(shared, 'caltech101');
if (quick) {
  const subset = join(work, 'caltech-subset');
  for (const image of (await walkImages(images)).slice(0, 2200)) {
    const target = join(subset, relative(images, image.path));
    await mkdir(join(target, '..'), { recursive: true });
    await copyFile(image.path, target);
  }
  images = subset;
}
const total = (await walkImages(images)).length;

/** A `ris` process to its end; the time from start to exit, and when a stderr line first matched. */
function ris(args: string[], marks: RegExp[] = []) {
  const started = performance.now();
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const at = new Map<RegExp, number>();
  child.stdout.on('data', (c) => {
    stdout += c;
  });
  child.stderr.on('data', (c) => {
    stderr += c;
    for (const mark of marks)
      if (!at.has(mark) && mark.test(stderr)) at.set(mark, performance.now() - started);
  });
  return new Promise<{ seconds: number; stdout: string; stderr: string; at: Map<RegExp, number> }>(
    (resolve, reject) =>
      child.once('exit', (code) => {
        if (code !== 0) reject(new Error(`ris ${args.join(' ')} exited with ${code}:\n${stderr}`));
        else resolve({ seconds: (performance.now() - started) / 1000, stdout, stderr, at });
      }),
  );
}

// The database: PGlite in a process of its own (so its work does not share this process's event loop).
let server: ChildProcess | undefined;
let url = process.env.RIS_BENCH_DATABASE_URL;
if (!url) {
  server = spawn(process.execPath, ['--import', 'tsx', join(root, 'test', 'fixtures', 'pg-server.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  url = await new Promise<string>((resolve) => {
    let out = '';
    server!.stdout!.on('data', (c) => {
      out += c;
      if (out.includes('\n')) resolve(out.trim());
    });
  });
}
const database = process.env.RIS_BENCH_DATABASE_URL
  ? 'PostgreSQL (RIS_BENCH_DATABASE_URL)'
  : 'PGlite 0.5.14 over pglite-socket';
console.log(`bench:store: ${total} images, mobilenetv2-int8, database ${database}`);

try {
  // 1. Indexing.
  const building = /building the HNSW index|indexing \d+ images/;
  const local = await ris(
    ['index', images, '--collection', 'bench', '--model', 'mobilenetv2-int8'],
    [building],
  );
  console.log(
    `local ris index            ${(total / local.seconds).toFixed(1)} img/s (${local.seconds.toFixed(1)} s)`,
  );
  const workers: { workers: number; seconds: number; buildSeconds: number }[] = [];
  for (const count of [1, 2]) {
    const name = `w${count}`;
    await ris([
      'index',
      images,
      '--collection',
      name,
      '--model',
      'mobilenetv2-int8',
      '--store',
      url,
      '--enqueue',
    ]);
    const threads = count === 1 ? [] : ['--threads', '1'];
    const runs = await Promise.all(
      Array.from({ length: count }, () =>
        ris(['worker', '--store', url!, '--collections', name, '--until-done', ...threads], [building]),
      ),
    );
    const seconds = Math.max(...runs.map((r) => r.seconds));
    const buildStart = Math.min(...runs.map((r) => r.at.get(building) ?? Number.POSITIVE_INFINITY)) / 1000;
    const buildSeconds = Number.isFinite(buildStart) ? seconds - buildStart : 0;
    workers.push({ workers: count, seconds, buildSeconds });
    console.log(
      `postgres, ${count} worker${count > 1 ? 's' : ' '}        ${(total / seconds).toFixed(1)} img/s (${seconds.toFixed(1)} s; embed + store ${(total / (seconds - buildSeconds)).toFixed(1)} img/s, HNSW build ${buildSeconds.toFixed(1)} s)`,
    );
  }
  const copied = await ris(['collections', 'copy', 'bench', '--to', url]);
  console.log(
    `collections copy           ${(total / copied.seconds).toFixed(1)} img/s (${copied.seconds.toFixed(1)} s, thumbnails made, nothing embedded)`,
  );

  // 2. Search. Queries: stored vectors of a seeded sample; the truth: exact cosine search over all of them.
  const localCollection = await Collection.open('bench', {
    home: join(work, 'home'),
    embedder: { cacheDir: join(cache, 'ris', 'models') },
  });
  const store = postgresStore(url, { home: join(work, 'home') });
  const pgCollection = await store.open('w1');
  const stored = await localCollection.storedVectors();
  const d = localCollection.manifest.dimension;
  const exact = new FlatIndex({ dimension: d, distanceType: 'cosine' });
  exact.add(stored.vectors, stored.ids);
  const sample = new Random(1).sample(stored.ids.length, QUERIES);
  const truth = Array.from(sample, (row) => {
    const { ids } = exact.search(stored.vectors.subarray(row * d, (row + 1) * d), K);
    return new Set(Array.from(ids, (id) => stored.paths[stored.ids.indexOf(id)]!));
  });
  const pgVectors = await pgCollection.storedVectors();
  const pgRow = new Map(pgVectors.paths.map((p, i) => [p, i]));

  type Searcher = (row: number) => Promise<string[]>;
  const measure = async (label: string, search: Searcher) => {
    for (let i = 0; i < 20; i++) await search(sample[i]!); // warm-up
    const times: number[] = [];
    let hits = 0;
    for (const [q, row] of sample.entries()) {
      const started = performance.now();
      const paths = await search(row);
      times.push(performance.now() - started);
      hits += paths.filter((p) => truth[q]!.has(p)).length;
    }
    times.sort((a, b) => a - b);
    const result = {
      label,
      p50: times[Math.floor(times.length * 0.5)]!,
      p95: times[Math.floor(times.length * 0.95)]!,
      recall: hits / (QUERIES * K),
    };
    console.log(
      `${label.padEnd(42)} p50 ${result.p50.toFixed(2).padStart(7)} ms  p95 ${result.p95.toFixed(2).padStart(7)} ms  10-recall@10 ${result.recall.toFixed(3)}`,
    );
    return result;
  };
  const byVector =
    (
      collection: ImageCollection,
      vectors: Float32Array,
      rowOf: (row: number) => number,
      options: { nprobes?: number; efSearch?: number } = {},
    ): Searcher =>
    async (row) => {
      const r = rowOf(row);
      const hits = await collection.searchVector(vectors.subarray(r * d, (r + 1) * d), { k: K, ...options });
      return hits.map((h) => h.path);
    };
  const localRow = (row: number) => row;
  const pgRowOf = (row: number) => pgRow.get(stored.paths[row]!)!;
  console.log(`search (${QUERIES} queries, k = ${K}, one client, the query vector given):`);
  const localKind = (await localCollection.status()).kind;
  // The local index's breadth at its default and wider: efSearch for HNSW, nprobes for IVF-PQ.
  const wider =
    localKind === 'hnsw'
      ? { label: `efSearch ${DEFAULT_EF_SEARCH} (default)`, wide: 'efSearch 200', options: { efSearch: 200 } }
      : {
          label: `nprobes ${DEFAULT_NPROBES} (default)`,
          wide: 'nprobes 64',
          options: {
            nprobes: Math.min(64, Number((await localCollection.status()).built.numPartitions ?? 64)),
          },
        };
  const results = [
    await measure(`local, ${localKind}, ${wider.label}`, byVector(localCollection, stored.vectors, localRow)),
    await measure(
      `local, ${localKind}, ${wider.wide}`,
      byVector(localCollection, stored.vectors, localRow, wider.options),
    ),
    await measure(
      `postgres, ${(await pgCollection.status()).kind}, ef_search 40 (default)`,
      byVector(pgCollection, pgVectors.vectors, pgRowOf),
    ),
    await measure(
      'postgres, hnsw, ef_search 100',
      byVector(pgCollection, pgVectors.vectors, pgRowOf, { efSearch: 100 }),
    ),
    await measure(
      'postgres, hnsw, ef_search 200',
      byVector(pgCollection, pgVectors.vectors, pgRowOf, { efSearch: 200 }),
    ),
    await measure('postgres, exact (the path below 2,048)', async (row) => {
      const r = pgRowOf(row);
      const { rows } = await store.db.query<{ path: string }>(exactSearchSql('id, path'), [
        vectorParam(pgVectors.vectors.subarray(r * d, (r + 1) * d)),
        K,
        pgCollection.id,
      ]);
      return rows.map((x) => x.path);
    }),
  ];
  await localCollection.close();
  await pgCollection.close();
  await store.close();
  await mkdir(join(root, 'bench', 'results'), { recursive: true });
  await writeFile(
    join(root, 'bench', 'results', 'store.json'),
    `${JSON.stringify({ images: total, database, localIndexSeconds: local.seconds, workers, copySeconds: copied.seconds, search: results }, null, 2)}\n`,
  );
} finally {
  server?.kill('SIGTERM');
  await rm(work, { recursive: true, force: true });
}
