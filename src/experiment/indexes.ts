import { FlatIndex } from '../ann/flat.ts';
import { IvfFlatIndex } from '../ann/ivf-flat.ts';
import { IvfPqIndex } from '../ann/ivf-pq.ts';
import type { Assigner } from '../ann/kmeans.ts';
import type { DistanceType } from '../ann/metric.ts';
import { defaultNumSubVectors } from '../ann/pq.ts';
import { PqIndex } from '../ann/pq-index.ts';
import { Random } from '../ann/random.ts';
import { trainTransform, type VectorTransform } from '../ann/transform.ts';
import type { VectorIndex } from '../ann/vector-index.ts';
import { RisError } from '../errors.ts';
import { gather } from './data.ts';
import { notebookRecallAt5, percentile, precisionAtK, recallAtK } from './metrics.ts';
import { type ExperimentRow, emptyRow, type Preset } from './types.ts';

export type RowIndexKind = 'Flat' | 'IVF-Flat' | 'IVF-PQ' | 'OPQ+IVF-PQ' | 'PQ';

export interface SearchSpec {
  /** Partitions to visit; undefined: the index's default. */
  nprobes?: number;
  refineFactor?: number;
}

/** One index to build; each of its `searches` becomes a row. */
export interface BuildSpec {
  group: string;
  index: RowIndexKind;
  /** PCA to this many dimensions before the index (trained on the database). */
  pca?: number;
  numPartitions?: number;
  numSubVectors?: number;
  refineStorage?: 'float16' | 'float32';
  searches: SearchSpec[];
  /** Marks rows that use ris's own choices rather than the notebook's. */
  note?: string;
}

/** The sub-vectors a collection uses: the largest divisor of d at most d / 32 (see collection.ts). */
export function collectionSubVectors(d: number): number {
  for (let m = Math.max(1, Math.floor(d / 32)); m > 1; m--) if (d % m === 0) return m;
  return 1;
}

/** The partitions IVF indexes choose without being told: about √n. */
export function defaultPartitions(n: number): number {
  return Math.max(1, Math.round(Math.sqrt(n)));
}

export function buildLabel(spec: BuildSpec, dimension: number): string {
  const parts: string[] = [];
  if (spec.pca) parts.push(`PCA${spec.pca}`);
  const m = spec.numSubVectors ?? defaultNumSubVectors(spec.pca ?? dimension);
  if (spec.index === 'OPQ+IVF-PQ') parts.push(`OPQ${m}`);
  if (spec.index !== 'Flat' && spec.index !== 'PQ') parts.push(`IVF${spec.numPartitions ?? '√n'}`);
  parts.push(spec.index === 'Flat' || spec.index === 'IVF-Flat' ? 'Flat' : `PQ${m}`);
  if (spec.refineStorage) parts.push(`Refine(${spec.refineStorage === 'float16' ? 'f16' : 'f32'})`);
  return parts.join(',');
}

export function searchLabel(search: SearchSpec): string {
  const parts: string[] = [];
  if (search.nprobes !== undefined) parts.push(`nprobes ${search.nprobes}`);
  if (search.refineFactor) parts.push(`refine×${search.refineFactor}`);
  return parts.join(', ');
}

/** The vectors of one space (the original, or after PCA to some dimension), made once and shared. */
interface Space {
  dimension: number;
  transform: VectorTransform | undefined;
  trainSeconds: number;
  applySeconds: number;
  base: Float32Array;
  queries: Float32Array;
  seedQueries: Float32Array;
  /** Exact rank-2 ids of the seed queries in this space (the notebook's ground truth). */
  seedTruth: Uint32Array;
}

/** What every row of one experiment is measured against. */
export interface Bench {
  preset: Preset;
  dimension: number;
  distanceType: DistanceType;
  seed: number;
  base: Float32Array;
  n: number;
  queries: Float32Array;
  nq: number;
  baseLabels: Int32Array | undefined;
  queryLabels: Int32Array | undefined;
  /** Exact 10 nearest of each held-out query in the original space. */
  truth: Uint32Array;
  /** Database rows used as the notebook's queries (it used 100 random database vectors). */
  seedRows: Uint32Array;
  assigner: Assigner | undefined;
  /** Single queries are timed over at most this many queries, and stop after the time budget. */
  maxTimedQueries: number;
  timeBudgetSeconds: number;
  spaces: Map<number, Space>;
}

const K = 10;

export function makeBench(init: {
  preset: Preset;
  dimension: number;
  distanceType: DistanceType;
  seed: number;
  base: Float32Array;
  queries: Float32Array;
  baseLabels: Int32Array | undefined;
  queryLabels: Int32Array | undefined;
  assigner?: Assigner;
  seedQueries?: number;
  maxTimedQueries?: number;
  timeBudgetSeconds?: number;
}): Bench {
  const d = init.dimension;
  const n = init.base.length / d;
  const exact = new FlatIndex({ dimension: d, distanceType: init.distanceType });
  exact.add(init.base);
  const truth = exact.searchBatch(init.queries, K).ids;
  return {
    ...init,
    n,
    nq: init.queries.length / d,
    truth,
    seedRows: new Random(init.seed + 1).sample(n, Math.min(init.seedQueries ?? 100, n)),
    assigner: init.assigner,
    maxTimedQueries: init.maxTimedQueries ?? 1000,
    timeBudgetSeconds: init.timeBudgetSeconds ?? 5,
    spaces: new Map(),
  };
}

async function space(bench: Bench, pca: number | undefined): Promise<Space> {
  const key = pca ?? 0;
  const known = bench.spaces.get(key);
  if (known) return known;
  const d = bench.dimension;
  let transform: VectorTransform | undefined;
  let trainSeconds = 0;
  let applySeconds = 0;
  let base = bench.base;
  let queries = bench.queries;
  if (pca) {
    let t = performance.now();
    transform = await trainTransform({ type: 'pca', outputDimension: pca }, bench.base, d, undefined, {
      seed: bench.seed,
    });
    trainSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    base = transform.apply(bench.base, bench.n);
    applySeconds = (performance.now() - t) / 1000;
    queries = transform.apply(bench.queries, bench.nq);
  }
  const dimension = transform?.outputDimension ?? d;
  const seedQueries = gather(base, dimension, bench.seedRows);
  const exact = new FlatIndex({ dimension, distanceType: bench.distanceType });
  exact.add(base);
  const top2 = exact.searchBatch(seedQueries, 2).ids;
  const seedTruth = Uint32Array.from({ length: bench.seedRows.length }, (_, i) => top2[i * 2 + 1]!);
  const made = { dimension, transform, trainSeconds, applySeconds, base, queries, seedQueries, seedTruth };
  bench.spaces.set(key, made);
  return made;
}

function create(spec: BuildSpec, dimension: number, bench: Bench): VectorIndex {
  const common = { dimension, distanceType: bench.distanceType, seed: bench.seed, assigner: bench.assigner };
  switch (spec.index) {
    case 'Flat':
      return new FlatIndex(common);
    case 'IVF-Flat':
      return new IvfFlatIndex({ ...common, numPartitions: spec.numPartitions });
    case 'IVF-PQ':
    case 'OPQ+IVF-PQ':
      return new IvfPqIndex({
        ...common,
        numPartitions: spec.numPartitions,
        numSubVectors: spec.numSubVectors,
        refineStorage: spec.refineStorage,
        transform: spec.index === 'OPQ+IVF-PQ' ? { type: 'opq' } : undefined,
      });
    case 'PQ':
      return new PqIndex({ ...common, numSubVectors: spec.numSubVectors });
  }
}

/** Memory of an index: per vector (what adding one more costs: everything but the quantizers) and in all. */
function memoryOf(index: VectorIndex, n: number) {
  const usage = index.memoryUsage();
  return { perVector: (usage.total - (usage.quantizers ?? 0)) / n, total: usage.total };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface BuildOutcome {
  rows: ExperimentRow[];
}

/**
 * Builds one index (train on the database, add it) and measures each of its search settings the same
 * way: single queries (QPS, p50, p99), one batch, 10-recall@10 against exact search in the original
 * space, same-label P@5, and the notebook's recall@5. A build the data cannot support (too few vectors,
 * a dimension limit) becomes skipped rows that say why.
 */
export async function measureBuild(
  bench: Bench,
  spec: BuildSpec,
  onPhase: (phase: 'train' | 'add' | 'search') => void,
): Promise<BuildOutcome> {
  const label = buildLabel(spec, bench.dimension);
  const baseRow = (search: SearchSpec): ExperimentRow => {
    const size = bench.preset === 'runtime' ? `n=${bench.n}` : '';
    const row = emptyRow(
      bench.preset,
      spec.group,
      [label, searchLabel(search), size].filter(Boolean).join(' '),
    );
    row.index = spec.index;
    row.params = {
      build: label,
      pca: spec.pca ?? null,
      numPartitions: spec.numPartitions ?? null,
      numSubVectors: spec.numSubVectors ?? null,
      refineStorage: spec.refineStorage ?? null,
      nprobes: search.nprobes ?? null,
      refineFactor: search.refineFactor ?? null,
      note: spec.note ?? null,
    };
    row.dimension = spec.pca ?? bench.dimension;
    row.n = bench.n;
    row.queries = bench.nq;
    return row;
  };
  if (spec.pca !== undefined && spec.pca >= bench.dimension) {
    return {
      rows: spec.searches.map((s) => ({
        ...baseRow(s),
        skipped: `PCA to ${spec.pca} needs vectors of more than ${spec.pca} dimensions; these have ${bench.dimension}`,
      })),
    };
  }
  let sp: Space;
  let index: VectorIndex;
  let trainSeconds: number;
  let addSeconds: number;
  try {
    onPhase('train');
    await tick();
    sp = await space(bench, spec.pca);
    index = create(spec, sp.dimension, bench);
    let t = performance.now();
    await index.train(sp.base);
    trainSeconds = (performance.now() - t) / 1000 + sp.trainSeconds;
    onPhase('add');
    await tick();
    t = performance.now();
    index.add(sp.base);
    addSeconds = (performance.now() - t) / 1000 + sp.applySeconds;
  } catch (error) {
    if (!(error instanceof RisError)) throw error;
    return { rows: spec.searches.map((s) => ({ ...baseRow(s), skipped: error.message })) };
  }
  const memory = memoryOf(index, bench.n);
  const transformBytes = sp.transform?.byteLength ?? 0;
  const fileBytes = index.toBytes().length + transformBytes;
  const rows: ExperimentRow[] = [];
  for (const search of spec.searches) {
    onPhase('search');
    await tick();
    const row = baseRow(search);
    row.trainSeconds = trainSeconds;
    row.addSeconds = addSeconds;
    row.bytesPerVector = memory.perVector;
    row.memoryBytes = memory.total + transformBytes;
    row.fileBytes = fileBytes;
    Object.assign(row, timeQueries(bench, sp, index, search));
    const found = index.searchBatch(sp.queries, K, search).ids;
    row.recall10At10 = recallAtK(found, K, bench.truth, K, bench.nq, K);
    row.precisionAt5 =
      bench.queryLabels && bench.baseLabels
        ? precisionAtK(found, K, 5, bench.queryLabels, bench.baseLabels)
        : null;
    const approx = index.searchBatch(sp.seedQueries, 6, search).ids;
    row.recallAt5Seed = notebookRecallAt5(approx, 6, sp.seedTruth);
    rows.push(row);
  }
  return { rows };
}

/**
 * Single queries as an interactive search makes them (the PCA of the query included), then all at once.
 * At most maxTimedQueries are timed, and timing stops once the budget is spent (after 20 at least), so a
 * slow exact search over a million vectors still finishes.
 */
function timeQueries(
  bench: Bench,
  sp: Space,
  index: VectorIndex,
  search: SearchSpec,
): Pick<ExperimentRow, 'qps' | 'p50Ms' | 'p99Ms' | 'batchQps'> {
  const d = bench.dimension;
  const one = (i: number) => {
    const q = bench.queries.subarray(i * d, (i + 1) * d);
    return index.search(sp.transform ? sp.transform.apply(q, 1) : q, K, search);
  };
  // Warm-up (resident matrices, the JIT's optimised code): a few queries or 0.2 s, whichever comes first.
  const warm = performance.now();
  for (let i = 0; i < Math.min(bench.nq, 20) && performance.now() - warm < 200; i++) one(i);
  const limit = Math.min(bench.nq, bench.maxTimedQueries);
  const latencies = new Float64Array(limit);
  let timed = 0;
  const started = performance.now();
  while (timed < limit) {
    const t = performance.now();
    one(timed);
    latencies[timed++] = performance.now() - t;
    if (timed >= 20 && performance.now() - started > bench.timeBudgetSeconds * 1000) break;
  }
  const spent = latencies.subarray(0, timed);
  let total = 0;
  for (const v of spent) total += v;
  const t = performance.now();
  const q = sp.transform ? sp.transform.apply(bench.queries, bench.nq) : bench.queries;
  index.searchBatch(q, K, search);
  const batchMs = performance.now() - t;
  return {
    qps: timed / (total / 1000),
    p50Ms: percentile(spent, 50),
    p99Ms: percentile(spent, 99),
    batchQps: bench.nq / (batchMs / 1000),
  };
}
