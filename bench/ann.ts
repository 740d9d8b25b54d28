/**
 * `npm run bench:ann`: ris's IVF-PQ side by side with faiss 1.7.3 (the reference app's engine, Debian
 * python3-faiss), and ris's HNSW side by side with hnswlib-node and usearch (M 16, efConstruction 200,
 * single-thread builds, then usearch on both cores), with exact search, in one run on the same files.
 *
 *   (a) Caltech101 MobileNetV2 embeddings (../shared/data/vectors), 9,144 × 1280: 1,000 random queries
 *       held out (seed 0), the rest indexed class by class as in the file (as a folder is indexed),
 *       IVF100,PQ8 (the reference's setting) and IVF100,PQ32.
 *   (b) 200,000 × 128 synthetic clustered vectors of intrinsic dimension 16, IVF1024,PQ16.
 *
 *   (c) 1,000,000 × 256 synthetic clustered vectors (seeded; see clusteredSynthetic): the memory-limit
 *       comparison only.
 *
 * HNSW rows sweep efSearch (single queries, best of a few passes) until 10-recall@10 reaches 0.995; the
 * ratios give QPS at 10-recall@10 0.90, 0.95 and 0.99, interpolated along efSearch.
 *
 * The memory-limit comparison (issue 25, bench/ann-memory.ts) runs on (a) and (c): IvfRabitqIndex and
 * ris HNSW int8 (with and without a float16 re-rank copy on disk) against usearch f16/f32 and
 * hnswlib-node, M 16, expansion_add 128, one thread each: recall, QPS, bytes per vector in RAM, build.
 *
 * Prints tables and writes bench/results/ann.json. Options: --quick (dataset b at 50,000 vectors, c at
 * 100,000), --c-size N (dataset c at N vectors), --only a|b|c, --hnsw-only (skip IVF-PQ and faiss), --memory-only (only the memory-limit
 * comparison), --memory-engines KEYS (only these in it, e.g. ivf-rabitq,usearch-f16), --build-runs N (HNSW builds
 * per engine; default 3 on (a), 2 on (b)). faiss needs `apt-get install python3-faiss
 * libopenblas0-pthread`; peers that are missing are reported and skipped.
 */
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { kernels } from '../src/ann/kernels/index.ts';
import { Random } from '../src/ann/random.ts';
import {
  createParallelAssigner,
  FlatIndex,
  HnswIndex,
  type HnswStorage,
  IvfPqIndex,
  NO_ID,
  readFvecs,
  writeFvecs,
} from '../src/index.ts';
import { createNodeHnswBuilder } from '../src/node/hnsw-builder.ts';
import { type MemoryEngine, memoryLimitComparison, memoryRatios, memoryTable } from './ann-memory.ts';

const root = join(import.meta.dirname, '..');
const out = join(root, 'bench', 'results');
const args = new Set(process.argv.slice(2));
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const NPROBES = [1, 4, 16, 64];
/** --build-runs N: HNSW builds per engine (the fastest reported). */
const buildRuns = process.argv.includes('--build-runs')
  ? Number(process.argv[process.argv.indexOf('--build-runs') + 1])
  : undefined;
/** --memory-engines a,b: only these engines in the memory-limit comparison (keys in bench/ann-memory.ts). */
const memoryEngines = process.argv.includes('--memory-engines')
  ? process.argv[process.argv.indexOf('--memory-engines') + 1]!.split(',')
  : undefined;
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
  /** HNSW builds per engine and passes over the queries per efSearch, the fastest reported. */
  buildRuns: number;
  searchPasses: number;
  /** ris HNSW storages benchmarked (float32 always; int8 for the memory target). */
  hnswStorages: HnswStorage[];
  /** Which comparisons run on it. */
  sections: ('ivf' | 'hnsw' | 'memory')[];
}

async function caltech(): Promise<Dataset | undefined> {
  const file = join(root, '..', 'shared', 'data', 'vectors', 'caltech101-mobilenetv2.fvecs');
  if (!existsSync(file)) {
    console.log(`dataset (a) skipped: ${file} not found`);
    return undefined;
  }
  const { vectors, dimension: d, count } = await readFvecs(file);
  // Queries: 1,000 rows drawn at random (seed 0). Base: the others in the file's order, class by class,
  // as a collection indexes a folder: the order a batched (parallel) HNSW build finds hardest.
  const held = new Random(0).sample(count, 1000);
  const isQuery = new Uint8Array(count);
  for (const row of held) isQuery[row] = 1;
  const queries = new Float32Array(1000 * d);
  held.forEach((row, i) => {
    queries.set(vectors.subarray(row * d, (row + 1) * d), i * d);
  });
  const base = new Float32Array((count - 1000) * d);
  for (let row = 0, i = 0; row < count; row++)
    if (!isQuery[row]) base.set(vectors.subarray(row * d, (row + 1) * d), d * i++);
  return {
    name: 'a: caltech101-mobilenetv2 (8,144 × 1280, 1,000 queries)',
    d,
    queries,
    base,
    configs: [
      { numPartitions: 100, numSubVectors: 8 },
      { numPartitions: 100, numSubVectors: 32 },
    ],
    trainRuns: 3,
    buildRuns: buildRuns ?? 3,
    searchPasses: 3,
    hnswStorages: ['float32', 'float16', 'int8'],
    sections: ['ivf', 'hnsw', 'memory'],
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
    buildRuns: buildRuns ?? 2,
    searchPasses: 3,
    hnswStorages: ['float32', 'int8'],
    sections: ['ivf', 'hnsw'],
  };
}

/**
 * (c): n + 1,000 vectors of 256 dimensions, clustered as embeddings are: clusters of about 200 around
 * centres on a 32-dimensional subspace, spread 0.8 within (the centres are N(0, 1)), then full-rank
 * noise of 0.2 — harder than (b): IVF-Flat needs 16 of 316 partitions for 10-recall@10 0.978 at
 * 100,000. Seeded; the mixing runs through the kernels' matrix product.
 */
function clusteredSynthetic(n: number): Dataset {
  const d = 256;
  const latent = 32;
  const total = n + 1000;
  const random = new Random(2025);
  const clusters = Math.max(16, Math.round(total / 200));
  const mixingT = new Float32Array(d * latent).map(() => random.gaussian() / Math.sqrt(latent));
  const centres = new Float32Array(clusters * latent).map(() => random.gaussian());
  const data = new Float32Array(total * d);
  const batch = 16384;
  const z = new Float32Array(batch * latent);
  const mixed = new Float32Array(batch * d);
  for (let start = 0; start < total; start += batch) {
    const rows = Math.min(batch, total - start);
    for (let i = 0; i < rows; i++) {
      const c = random.int(clusters);
      for (let t = 0; t < latent; t++) z[i * latent + t] = centres[c * latent + t]! + 0.8 * random.gaussian();
    }
    kernels().gemmNT({ source: z }, rows, { source: mixingT }, d, latent, mixed);
    for (let j = 0; j < rows * d; j++) data[start * d + j] = mixed[j]! + 0.2 * random.gaussian();
  }
  return {
    name: `c: synthetic clustered (${n.toLocaleString('en')} × 256, 1,000 queries)`,
    d,
    base: data.subarray(0, n * d),
    queries: data.subarray(n * d),
    configs: [],
    trainRuns: 1,
    buildRuns: buildRuns ?? 1,
    searchPasses: 3,
    hnswStorages: [],
    sections: ['memory'],
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

async function runDataset(
  ds: Dataset,
  rows: Row[],
  engines: HnswEngine[],
  memory: MemoryEngine[],
): Promise<void> {
  const { d, base, queries } = ds;
  const nq = queries.length / d;
  console.log(`\n## ${ds.name}`);

  const exact = new FlatIndex({ dimension: d });
  exact.add(base);
  const truth = exact.searchBatch(queries, 10).ids;
  const sections = args.has('--memory-only') ? ds.sections.filter((s) => s === 'memory') : ds.sections;
  if (sections.includes('memory')) {
    memory.push(
      ...(await memoryLimitComparison({
        name: ds.name,
        d,
        base,
        queries,
        truth,
        buildRuns: base.length / d > 100_000 ? 1 : (buildRuns ?? 2),
        rounds: 5,
        engines: memoryEngines,
      })),
    );
  }
  if (!sections.includes('hnsw')) return;
  const exactRun = singleQueries(Math.min(nq, 200), d, queries, (q) => exact.search(q, 10).ids);
  rows.push({
    engine: 'exact (ris FlatIndex)',
    config: 'Flat',
    qps: exactRun.qps,
    recall1: 1,
    recall10: 1,
    bytesPerVector: 4 * d + 4,
  });

  if (!args.has('--hnsw-only') && sections.includes('ivf')) await ivfComparison(ds, truth, rows);
  await hnswComparison(ds, truth, rows, engines);
}

/** HNSW parameters shared by every engine (the issue's: hnswlib's and LanceDB's defaults). */
const HNSW = { m: 16, efConstruction: 200 };
/** efSearch values swept (k = 10, so 10 is the least); a sweep stops once 10-recall@10 reaches STOP_RECALL. */
const EF_SWEEP = [
  10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256, 320, 384, 512,
];
const STOP_RECALL = 0.995;
/** The recalls the issue sets QPS targets at. */
const TARGET_RECALLS = [0.9, 0.95, 0.99];

interface CurvePoint {
  ef: number;
  qps: number;
  recall1: number;
  recall10: number;
}

interface HnswEngine {
  engine: string;
  /** Fastest single-thread build, and (where the engine builds on several threads) the fastest on both cores. */
  buildSeconds: number;
  buildSeconds2?: number;
  bytesPerVector: number;
  curve: CurvePoint[];
}

/**
 * QPS at a recall, interpolated linearly (in recall) between the two efSearch values around it; the
 * least efSearch's QPS when even that one is above it; undefined when no efSearch reaches it.
 */
function qpsAtRecall(curve: CurvePoint[], target: number): number | undefined {
  const i = curve.findIndex((p) => p.recall10 >= target);
  if (i < 0) return undefined;
  if (i === 0) return curve[0]!.qps;
  const a = curve[i - 1]!;
  const b = curve[i]!;
  const t = (target - a.recall10) / (b.recall10 - a.recall10);
  return a.qps + t * (b.qps - a.qps);
}

/** ris IVF-PQ against faiss (and its refine variants), as before. */
async function ivfComparison(ds: Dataset, truth: Uint32Array, rows: Row[]): Promise<void> {
  const { d, base, queries } = ds;
  const nb = base.length / d;
  const nq = queries.length / d;
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
}

/** One HNSW engine of the comparison: how to build it, and a search function for each efSearch. */
interface Contender {
  engine: string;
  /** Builds the index anew (the last build is the one searched). */
  build(): void;
  searcher(ef: number): (q: Float32Array) => ArrayLike<number | bigint>;
  bytesPerVector(): number;
  /** Another contender whose build is this one's on both cores (its time goes in buildSeconds2). */
  bothCoresOf?: string;
}

/**
 * ris's HNSW against hnswlib-node and usearch, same M and efConstruction, in this process. Builds and
 * searches take turns round-robin (build after build, then at each efSearch pass after pass), keeping
 * the best of each, so a burst of load from elsewhere on this shared machine hits every engine alike.
 * hnswlib-node takes number[] rows: they are converted before the clocks start (its best case).
 * Memory: ris's memoryUsage() (everything it holds), the peers' index files (their vectors, links and
 * labels: less than they hold in memory).
 */
async function hnswComparison(
  ds: Dataset,
  truth: Uint32Array,
  rows: Row[],
  engines: HnswEngine[],
): Promise<void> {
  const { d, base, queries } = ds;
  const nb = base.length / d;
  const nq = queries.length / d;
  const require = createRequire(import.meta.url);
  const scratch = await mkdtemp(join(tmpdir(), 'ris-bench-hnsw-'));
  const builder = await createNodeHnswBuilder({ threads: 2 });
  const contenders: Contender[] = [];
  try {
    // The workers attach to a graph on its first parallel add: once here, outside the clocks.
    new HnswIndex({ dimension: d, ...HNSW, builder }).add(base.subarray(0, Math.min(nb, 4000) * d));
    for (const storage of ds.hnswStorages) {
      for (const both of storage === 'float32' ? [false, true] : [false]) {
        let index = new HnswIndex({ dimension: d, storage, ...HNSW });
        contenders.push({
          engine: both ? `ris HNSW (${storage}, built on both cores)` : `ris HNSW (${storage})`,
          build() {
            index = new HnswIndex({ dimension: d, storage, ...HNSW, seed: 1, ...(both ? { builder } : {}) });
            index.add(base);
          },
          searcher: (efSearch) => (q) => index.search(q, 10, { efSearch }).ids,
          bytesPerVector: () => index.memoryUsage().total / nb,
          ...(both ? { bothCoresOf: `ris HNSW (${storage})` } : {}),
        });
      }
    }
    try {
      const { HierarchicalNSW } = require('hnswlib-node') as typeof import('hnswlib-node');
      const arrays = Array.from({ length: nb }, (_, i) => Array.from(base.subarray(i * d, (i + 1) * d)));
      const queryArrays = Array.from({ length: nq }, (_, i) =>
        Array.from(queries.subarray(i * d, (i + 1) * d)),
      );
      let index = new HierarchicalNSW('l2', d);
      const file = join(scratch, 'hnswlib.bin');
      contenders.push({
        engine: 'hnswlib-node (f32)',
        build() {
          index = new HierarchicalNSW('l2', d);
          index.initIndex({ maxElements: nb, m: HNSW.m, efConstruction: HNSW.efConstruction, randomSeed: 1 });
          for (let i = 0; i < nb; i++) index.addPoint(arrays[i]!, i);
        },
        searcher(ef) {
          // Queries by position: the number[] copies were made before the clock started.
          let next = 0;
          return () => {
            index.setEf(ef);
            return index.searchKnn(queryArrays[next++ % nq]!, 10).neighbors;
          };
        },
        bytesPerVector() {
          index.writeIndexSync(file);
          return statSync(file).size / nb;
        },
      });
    } catch (error) {
      console.log(`hnswlib-node skipped: ${(error as Error).message.split('\n')[0]}`);
    }
    try {
      const usearch = require('usearch') as typeof import('usearch');
      const make = (ef: number) =>
        new usearch.Index({
          dimensions: d,
          metric: usearch.MetricKind.L2sq,
          quantization: usearch.ScalarKind.F32,
          multi: false,
          connectivity: HNSW.m,
          expansion_add: HNSW.efConstruction,
          expansion_search: ef,
        });
      const keys = BigUint64Array.from({ length: nb }, (_, i) => BigInt(i));
      for (const threads of [1, 2]) {
        let index = make(10);
        const file = join(scratch, `usearch-${threads}.bin`);
        contenders.push({
          engine: threads === 1 ? 'usearch (f32)' : 'usearch (f32, built on both cores)',
          build() {
            index = make(10);
            index.add(keys, base, threads);
            index.save(file);
          },
          searcher(ef) {
            // expansion_search is fixed at construction: each ef loads the saved graph into a new index.
            const at = make(ef);
            at.load(file);
            return (q) => at.search(q, 10, 1).keys;
          },
          bytesPerVector: () => statSync(file).size / nb,
          ...(threads === 2 ? { bothCoresOf: 'usearch (f32)' } : {}),
        });
      }
    } catch (error) {
      console.log(`usearch skipped: ${(error as Error).message.split('\n')[0]}`);
    }

    const seconds = new Map<Contender, number>();
    for (let run = 0; run < ds.buildRuns; run++) {
      for (const c of contenders) {
        const start = performance.now();
        c.build();
        seconds.set(
          c,
          Math.min(seconds.get(c) ?? Number.POSITIVE_INFINITY, (performance.now() - start) / 1000),
        );
      }
    }
    const curves = new Map<Contender, CurvePoint[]>(contenders.map((c) => [c, []]));
    let active = [...contenders];
    for (const ef of EF_SWEEP) {
      if (active.length === 0) break;
      const searches = new Map(active.map((c) => [c, c.searcher(ef)]));
      const best = new Map<Contender, { found: Uint32Array; qps: number }>();
      for (let pass = 0; pass < ds.searchPasses; pass++) {
        for (const c of active) {
          const run = singleQueries(nq, d, queries, searches.get(c)!);
          if (run.qps > (best.get(c)?.qps ?? 0)) best.set(c, run);
        }
      }
      for (const c of active) {
        const run = best.get(c)!;
        curves.get(c)!.push({ ef, qps: run.qps, ...recall(run.found, truth, nq) });
      }
      active = active.filter((c) => curves.get(c)!.at(-1)!.recall10 < STOP_RECALL);
    }

    for (const c of contenders) {
      const engine: HnswEngine = {
        engine: c.engine,
        buildSeconds: seconds.get(c)!,
        bytesPerVector: c.bytesPerVector(),
        curve: curves.get(c)!,
      };
      const both = contenders.find((o) => o.bothCoresOf === c.engine);
      if (both) engine.buildSeconds2 = seconds.get(both);
      engines.push(engine);
      for (const p of engine.curve) {
        rows.push({
          engine: engine.engine,
          config: `HNSW M${HNSW.m} efC${HNSW.efConstruction}`,
          addSeconds: engine.buildSeconds,
          nprobes: `ef ${p.ef}`,
          qps: p.qps,
          recall1: p.recall1,
          recall10: p.recall10,
          bytesPerVector: engine.bytesPerVector,
        });
      }
      console.log(
        `${engine.engine}: build ${engine.buildSeconds.toFixed(2)} s` +
          (engine.buildSeconds2 ? ` (both cores ${engine.buildSeconds2.toFixed(2)} s)` : '') +
          `, ${engine.bytesPerVector.toFixed(0)} B/vector, ` +
          TARGET_RECALLS.map((r) => `${qpsAtRecall(engine.curve, r)?.toFixed(0) ?? '—'} QPS at ${r}`).join(
            ', ',
          ),
      );
    }
  } finally {
    await builder.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The HNSW ratios the issue sets targets on: ris against hnswlib-node (and usearch) in the same run. */
function hnswRatios(engines: HnswEngine[]): string[] {
  const lines: string[] = [];
  const ours = engines.find((e) => e.engine === 'ris HNSW (float32)');
  const int8 = engines.find((e) => e.engine === 'ris HNSW (int8)');
  if (ours?.buildSeconds2) {
    lines.push(
      `HNSW build on both cores: ${(ours.buildSeconds / ours.buildSeconds2).toFixed(2)}× faster than on one`,
    );
  }
  for (const peer of engines.filter((e) => !e.engine.startsWith('ris') && !e.engine.includes('both cores'))) {
    if (!ours) break;
    const qps = TARGET_RECALLS.map((r) => {
      const a = qpsAtRecall(ours.curve, r);
      const b = qpsAtRecall(peer.curve, r);
      return `${r}: ${a && b ? `${(a / b).toFixed(2)}×` : '—'}`;
    });
    // Both cores against both cores where the peer builds on several threads, else against its one.
    const both = ours.buildSeconds2
      ? `, on both cores ${(ours.buildSeconds2 / (peer.buildSeconds2 ?? peer.buildSeconds)).toFixed(2)}× its ` +
        `${peer.buildSeconds2 ? 'both-core' : 'single-thread'} time`
      : '';
    lines.push(
      `HNSW vs ${peer.engine}: build ${(ours.buildSeconds / peer.buildSeconds).toFixed(2)}× its time${both}` +
        `; QPS at 10-recall@10 ${qps.join(', ')}; memory float32 ${(ours.bytesPerVector / peer.bytesPerVector).toFixed(2)}×` +
        (int8 ? `, int8 ${(int8.bytesPerVector / peer.bytesPerVector).toFixed(2)}×` : ''),
    );
  }
  return lines;
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

/** Dataset (c)'s size: --c-size N (a slow or small machine), else 100,000 with --quick, else 1,000,000. */
function clusteredSize(): number {
  const at = process.argv.indexOf('--c-size');
  if (at < 0) return args.has('--quick') ? 100_000 : 1_000_000;
  const n = Number(process.argv[at + 1]);
  if (!Number.isInteger(n) || n < 1000) throw new Error('--c-size takes a number of vectors (at least 1000)');
  return n;
}

/** The benchmark itself (worker threads of a parallel HNSW build import this file too, see below). */
async function main(): Promise<void> {
  const datasets: Dataset[] = [];
  if (only === undefined || only === 'a') {
    const a = await caltech();
    if (a) datasets.push(a);
  }
  if (only === undefined || only === 'b') datasets.push(synthetic(args.has('--quick') ? 50_000 : 200_000));
  if (only === undefined || only === 'c') datasets.push(clusteredSynthetic(clusteredSize()));
  // A run of one dataset (--only) replaces that dataset's results and keeps the other's.
  const jsonFile = join(out, 'ann.json');
  type Results = Record<string, { date: string; rows: Row[]; hnsw?: HnswEngine[]; memory?: MemoryEngine[] }>;
  const results: Results = existsSync(jsonFile)
    ? (JSON.parse(await readFile(jsonFile, 'utf8')) as { results: Results }).results
    : {};
  for (const ds of datasets) {
    const rows: Row[] = [];
    const engines: HnswEngine[] = [];
    const memory: MemoryEngine[] = [];
    await runDataset(ds, rows, engines, memory);
    results[ds.name] = { date: new Date().toISOString(), rows, hnsw: engines, memory };
    if (rows.length > 0) console.log(table(rows));
    if (memory.length > 0) console.log(`\nAt the memory limit (issue 25):\n${memoryTable(memory)}`);
    const lines = [...ratios(rows), ...hnswRatios(engines), ...memoryRatios(memory)];
    console.log(`\nRatios (same run):\n${lines.map((l) => `- ${l}`).join('\n')}`);
  }
  await mkdir(out, { recursive: true });
  await writeFile(jsonFile, `${JSON.stringify({ results }, null, 2)}\n`);
  console.log(`\nwrote ${jsonFile}`);
}

await main();
