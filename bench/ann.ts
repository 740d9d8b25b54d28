/**
 * `npm run bench:ann`: ris's IVF-PQ side by side with faiss 1.7.3 (the reference app's engine, Debian
 * python3-faiss), hnswlib-node, usearch and exact search, in one run on the same files.
 *
 *   (a) Caltech101 MobileNetV2 embeddings (../shared/data/vectors), 9,144 × 1280: shuffled (seed 0),
 *       1,000 queries held out, IVF100,PQ8 (the reference's setting) and IVF100,PQ32.
 *   (b) 200,000 × 128 synthetic clustered vectors of intrinsic dimension 16, IVF1024,PQ16.
 *
 * Prints a table and writes bench/results/ann.json. Options: --quick (dataset b at 50,000 vectors),
 * --only a|b. faiss needs `apt-get install python3-faiss libopenblas0-pthread`; peers that are missing
 * are reported and skipped.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Random } from '../src/ann/random.ts';
import { createParallelAssigner, FlatIndex, IvfPqIndex, NO_ID, readFvecs, writeFvecs } from '../src/index.ts';

const root = join(import.meta.dirname, '..');
const out = join(root, 'bench', 'results');
const args = new Set(process.argv.slice(2));
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const NPROBES = [1, 4, 16, 64];
/** Refine factors shown beside plain IVF-PQ: a cheap one, and one that reaches recall ≥ 0.95 on (a). */
const REFINE_FACTORS = [4, 16];

interface Row {
  engine: string;
  config: string;
  trainSeconds?: number;
  addSeconds?: number;
  nprobes?: number | string;
  qps: number;
  recall1: number;
  recall10: number;
  bytesPerVector?: number;
  bytesPerVectorRefine?: number;
  diskBytesPerVector?: number;
}

interface Dataset {
  name: string;
  d: number;
  base: Float32Array;
  queries: Float32Array;
  configs: { numPartitions: number; numSubVectors: number }[];
  /** Training runs per configuration, the fastest reported (both engines): this machine is shared and noisy. */
  trainRuns: number;
}

async function caltech(): Promise<Dataset | undefined> {
  const file = join(root, '..', 'shared', 'data', 'vectors', 'caltech101-mobilenetv2.fvecs');
  if (!existsSync(file)) {
    console.log(`dataset (a) skipped: ${file} not found`);
    return undefined;
  }
  const { vectors, dimension: d, count } = await readFvecs(file);
  const order = new Random(0).sample(count, count);
  const shuffled = new Float32Array(vectors.length);
  order.forEach((row, i) => {
    shuffled.set(vectors.subarray(row * d, (row + 1) * d), i * d);
  });
  return {
    name: 'a: caltech101-mobilenetv2 (8,144 × 1280, 1,000 queries)',
    d,
    queries: shuffled.subarray(0, 1000 * d),
    base: shuffled.subarray(1000 * d),
    configs: [
      { numPartitions: 100, numSubVectors: 8 },
      { numPartitions: 100, numSubVectors: 32 },
    ],
    trainRuns: 3,
  };
}

/** Clustered vectors on a 16-dimensional subspace of R^128, plus a little full-rank noise. */
function synthetic(n: number): Dataset {
  const d = 128;
  const latent = 16;
  const random = new Random(2024);
  const mixing = new Float32Array(latent * d).map(() => random.gaussian() / Math.sqrt(latent));
  const centres = new Float32Array(2000 * latent).map(() => random.gaussian());
  const total = n + 1000;
  const data = new Float32Array(total * d);
  const z = new Float32Array(latent);
  for (let i = 0; i < total; i++) {
    const c = random.int(2000);
    for (let t = 0; t < latent; t++) z[t] = centres[c * latent + t]! + 0.3 * random.gaussian();
    for (let j = 0; j < d; j++) {
      let s = 0.02 * random.gaussian();
      for (let t = 0; t < latent; t++) s += z[t]! * mixing[t * d + j]!;
      data[i * d + j] = s;
    }
  }
  return {
    name: `b: synthetic clustered (${n.toLocaleString('en')} × 128, 1,000 queries)`,
    d,
    base: data.subarray(0, n * d),
    queries: data.subarray(n * d),
    configs: [{ numPartitions: 1024, numSubVectors: 16 }],
    trainRuns: 1,
  };
}

function recall(found: Uint32Array, truth: Uint32Array, nq: number): { recall1: number; recall10: number } {
  let r1 = 0;
  let r10 = 0;
  for (let i = 0; i < nq; i++) {
    if (found[i * 10] === truth[i * 10]) r1++;
    const expected = new Set(truth.subarray(i * 10, i * 10 + 10));
    for (const id of found.subarray(i * 10, i * 10 + 10)) if (id !== NO_ID && expected.has(id)) r10++;
  }
  return { recall1: r1 / nq, recall10: r10 / (nq * 10) };
}

/** Single-query throughput: one call per query, as an interactive search does. */
function singleQueries(
  nq: number,
  d: number,
  queries: Float32Array,
  search: (q: Float32Array) => ArrayLike<number | bigint>,
) {
  const found = new Uint32Array(nq * 10).fill(NO_ID);
  const start = performance.now();
  for (let i = 0; i < nq; i++) {
    const ids = search(queries.subarray(i * d, (i + 1) * d));
    for (let j = 0; j < Math.min(10, ids.length); j++) found[i * 10 + j] = Number(ids[j]);
  }
  return { found, qps: nq / ((performance.now() - start) / 1000) };
}

async function runDataset(ds: Dataset, rows: Row[]): Promise<void> {
  const { d, base, queries } = ds;
  const nb = base.length / d;
  const nq = queries.length / d;
  console.log(`\n## ${ds.name}`);

  const exact = new FlatIndex({ dimension: d });
  exact.add(base);
  const truth = exact.searchBatch(queries, 10).ids;
  const exactRun = singleQueries(Math.min(nq, 200), d, queries, (q) => exact.search(q, 10).ids);
  rows.push({
    engine: 'exact (ris FlatIndex)',
    config: 'Flat',
    qps: exactRun.qps,
    recall1: 1,
    recall10: 1,
    bytesPerVector: 4 * d + 4,
  });

  // Files for the Python peer.
  const dir = join(out, ds.name[0]!);
  await mkdir(dir, { recursive: true });
  await writeFvecs(join(dir, 'base.fvecs'), base, d);
  await writeFvecs(join(dir, 'query.fvecs'), queries, d);
  await writeFvecs(join(dir, 'truth.ivecs'), new Float32Array(new Int32Array(truth).buffer), 10);

  const assigner = createParallelAssigner();
  // Worker start-up (loading code) is a once-per-process cost, as faiss's import is for Python.
  await assigner.ready();
  try {
    for (const { numPartitions, numSubVectors } of ds.configs) {
      const config = `IVF${numPartitions},PQ${numSubVectors}`;
      const options = {
        dimension: d,
        numPartitions,
        numSubVectors,
        refineStorage: 'float16',
        seed: 1,
        assigner,
      } as const;
      let index = new IvfPqIndex(options);
      let trainSeconds = Number.POSITIVE_INFINITY;
      for (let run = 0; run < ds.trainRuns; run++) {
        index = new IvfPqIndex(options);
        const start = performance.now();
        await index.train(base);
        trainSeconds = Math.min(trainSeconds, (performance.now() - start) / 1000);
      }
      const t = performance.now();
      index.add(base);
      const addSeconds = (performance.now() - t) / 1000;
      const memory = index.memoryUsage();
      const bytesPerVector = (memory.codes + memory.ids) / nb;
      const diskBytesPerVector = (index.toBytes().length - memory.refineVectors) / nb;
      for (const nprobes of NPROBES.filter((p) => p <= numPartitions)) {
        for (const refineFactor of [0, ...REFINE_FACTORS]) {
          const run = singleQueries(
            nq,
            d,
            queries,
            (q) => index.search(q, 10, { nprobes, refineFactor }).ids,
          );
          rows.push({
            engine: refineFactor ? `ris IVF-PQ + refine×${refineFactor} (f16)` : 'ris IVF-PQ',
            config,
            trainSeconds,
            addSeconds,
            nprobes,
            qps: run.qps,
            ...recall(run.found, truth, nq),
            bytesPerVector: refineFactor ? bytesPerVector + memory.refineVectors / nb : bytesPerVector,
            diskBytesPerVector,
          });
        }
      }
    }
  } finally {
    await assigner.close();
  }

  const factories = ds.configs.map((c) => `IVF${c.numPartitions},PQ${c.numSubVectors}np`);
  try {
    const { stdout } = await promisify(execFile)(
      '/usr/bin/python3',
      [join(root, 'bench', 'faiss_ivfpq.py'), dir, String(ds.trainRuns), ...factories],
      {
        maxBuffer: 1 << 24,
      },
    );
    for (const line of stdout.trim().split('\n')) {
      const r = JSON.parse(line) as {
        factory: string;
        trainSeconds: number;
        addSeconds: number;
        bytesPerVector: number;
        rows: Row[];
      };
      for (const row of r.rows) {
        rows.push({
          ...row,
          engine: 'faiss 1.7.3',
          config: r.factory,
          trainSeconds: r.trainSeconds,
          addSeconds: r.addSeconds,
          bytesPerVector: r.bytesPerVector,
        });
      }
    }
  } catch (error) {
    console.log(`faiss skipped: ${(error as Error).message.split('\n')[0]}`);
  }

  await hnswPeers(ds, truth, rows);
}

async function hnswPeers(ds: Dataset, truth: Uint32Array, rows: Row[]): Promise<void> {
  const { d, base, queries } = ds;
  const nb = base.length / d;
  const nq = queries.length / d;
  const require = createRequire(import.meta.url);
  try {
    const { HierarchicalNSW } = require('hnswlib-node') as typeof import('hnswlib-node');
    const index = new HierarchicalNSW('l2', d);
    index.initIndex({ maxElements: nb, m: 16, efConstruction: 100, randomSeed: 1 });
    const t = performance.now();
    for (let i = 0; i < nb; i++) index.addPoint(Array.from(base.subarray(i * d, (i + 1) * d)), i);
    const addSeconds = (performance.now() - t) / 1000;
    for (const ef of [16, 64]) {
      index.setEf(ef);
      const run = singleQueries(nq, d, queries, (q) => index.searchKnn(Array.from(q), 10).neighbors);
      rows.push(hnswRow('hnswlib-node (M16)', d, addSeconds, ef, run, truth, nq));
    }
  } catch (error) {
    console.log(`hnswlib-node skipped: ${(error as Error).message.split('\n')[0]}`);
  }
  try {
    const usearch = require('usearch') as typeof import('usearch');
    for (const ef of [16, 64]) {
      const index = new usearch.Index({
        dimensions: d,
        metric: usearch.MetricKind.L2sq,
        quantization: usearch.ScalarKind.F32,
        multi: false,
        connectivity: 16,
        expansion_add: 100,
        expansion_search: ef,
      });
      const t = performance.now();
      index.add(
        BigUint64Array.from({ length: nb }, (_, i) => BigInt(i)),
        base,
        1,
      );
      const addSeconds = (performance.now() - t) / 1000;
      const run = singleQueries(nq, d, queries, (q) => index.search(q, 10, 1).keys);
      rows.push(hnswRow('usearch (M16, f32)', d, addSeconds, ef, run, truth, nq));
    }
  } catch (error) {
    console.log(`usearch skipped: ${(error as Error).message.split('\n')[0]}`);
  }
}

/** A table row for an HNSW peer (M = 16): memory is the float32 vector, 2·M links of 4 bytes, and a label. */
function hnswRow(
  engine: string,
  d: number,
  addSeconds: number,
  ef: number,
  run: { found: Uint32Array; qps: number },
  truth: Uint32Array,
  nq: number,
): Row {
  const { qps, found } = run;
  return {
    engine,
    config: 'HNSW',
    addSeconds,
    nprobes: `ef ${ef}`,
    qps,
    ...recall(found, truth, nq),
    bytesPerVector: 4 * d + 16 * 2 * 4 + 8,
  };
}

function table(rows: Row[]): string {
  const header = [
    'engine',
    'config',
    'train s',
    'add s',
    'nprobes',
    'QPS',
    'R@1',
    '10R@10',
    'B/vec mem',
    'B/vec disk',
  ];
  const lines = rows.map((r) => [
    r.engine,
    r.config,
    r.trainSeconds?.toFixed(2) ?? '',
    r.addSeconds?.toFixed(2) ?? '',
    String(r.nprobes ?? ''),
    r.qps.toFixed(0),
    r.recall1.toFixed(3),
    r.recall10.toFixed(3),
    r.bytesPerVector?.toFixed(1) ?? '',
    r.diskBytesPerVector?.toFixed(1) ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

/** Ratios the issue sets targets on: ris against faiss at the same configuration and nprobes. */
function ratios(rows: Row[]): string[] {
  const lines: string[] = [];
  for (const f of rows.filter((r) => r.engine === 'faiss 1.7.3')) {
    const config = f.config.replace(/np$/, '');
    const ours = rows.find(
      (r) => r.engine === 'ris IVF-PQ' && r.config === config && r.nprobes === f.nprobes,
    );
    if (!ours) continue;
    lines.push(
      `${config} nprobes ${f.nprobes}: train ${(ours.trainSeconds! / f.trainSeconds!).toFixed(2)}× faiss's time, ` +
        `QPS ${(ours.qps / f.qps).toFixed(2)}× faiss, 10R@10 ${ours.recall10.toFixed(3)} vs ${f.recall10.toFixed(3)} ` +
        `(Δ ${(ours.recall10 - f.recall10).toFixed(3)}), memory ${ours.bytesPerVector!.toFixed(1)} vs ${f.bytesPerVector} B/vector`,
    );
  }
  return lines;
}

const datasets: Dataset[] = [];
if (only !== 'b') {
  const a = await caltech();
  if (a) datasets.push(a);
}
if (only !== 'a') datasets.push(synthetic(args.has('--quick') ? 50_000 : 200_000));
// A run of one dataset (--only) replaces that dataset's results and keeps the other's.
const jsonFile = join(out, 'ann.json');
const results: Record<string, { date: string; rows: Row[] }> = existsSync(jsonFile)
  ? (
      JSON.parse(await readFile(jsonFile, 'utf8')) as {
        results: Record<string, { date: string; rows: Row[] }>;
      }
    ).results
  : {};
for (const ds of datasets) {
  const rows: Row[] = [];
  await runDataset(ds, rows);
  results[ds.name] = { date: new Date().toISOString(), rows };
  console.log(table(rows));
  console.log(
    `\nRatios (same run):\n${ratios(rows)
      .map((l) => `- ${l}`)
      .join('\n')}`,
  );
}
await mkdir(out, { recursive: true });
await writeFile(jsonFile, `${JSON.stringify({ results }, null, 2)}\n`);
console.log(`\nwrote ${jsonFile}`);
