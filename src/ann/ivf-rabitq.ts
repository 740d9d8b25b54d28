import { ArgumentError } from '../errors.ts';
import {
  type DecodedIndexFile,
  damaged,
  decodeIndex,
  distanceTypeOf,
  encodeIndex,
  type ReadIndexOptions,
  readIndexFile,
  requireKind,
  streamIndex,
} from './format.ts';
import { IdSet, idsToRemove } from './id-set.ts';
import {
  centroidDistances,
  type ExplainOptions,
  type IvfExplanation,
  partitionsForTraining,
  ScanRecorder,
} from './ivf.ts';
import { ON_DEMAND, rabitqFileSections, readRabitqSections, rerankStorageOf } from './ivf-rabitq-file.ts';
import { kernels } from './kernels/index.ts';
import type { RabitqKernel } from './kernels/types.ts';
import { type Assigner, kmeans } from './kmeans.ts';
import { checkDistanceType, type DistanceType, normalizeRows, publicDistance } from './metric.ts';
import {
  type EncodedVector,
  emptyCode,
  encodeVector,
  makeRotation,
  paddedDimension,
  RABITQ_BITS,
  type RabitqBits,
  type Rotation,
  signFactors,
} from './rabitq.ts';
import { RabitqLists } from './rabitq-lists.ts';
import { RabitqSearcher, type RabitqState, type SearchPlan } from './rabitq-search.ts';
import { type RowStorage, RowStore } from './row-store.ts';
import { fileStore } from './storage.ts';
import type { TopK } from './topk.ts';
import { type BatchSearchResult, NO_ID, type SearchResult } from './types.ts';
import { checkInteger, checkOneOf, checkQuery, checkVectors } from './validate.ts';
import {
  checkSearchOptions,
  checkTrained,
  DEFAULT_NPROBES,
  describeIndex,
  type IndexDescription,
  MAX_K,
  type SearchOptions,
  type VectorIndex,
} from './vector-index.ts';

export interface IvfRabitqOptions {
  /** Length of every vector. */
  dimension: number;
  /** Distance measure; see {@link DistanceType}. Default 'l2'. */
  distanceType?: DistanceType;
  /**
   * Partitions of the coarse quantizer. More make each probe cheaper but need more `nprobes` for the
   * same recall, and cost D × 6 bytes each (the centroids stay in memory, as f32 and i16) and a
   * product with the query each. Default: one per 256 training vectors, kept between √n and 4√n (see `defaultPartitions`),
   * chosen at `train`.
   */
  numPartitions?: number;
  /**
   * How the full vectors that re-rank candidates are kept in the index file (read on demand, never
   * held in memory once saved): 'float32' gives exact distances; 'float16' halves the file at a tiny
   * loss of precision. Default 'float32'.
   */
  rerankStorage?: RowStorage;
  /**
   * Bits per dimension kept in memory: 1 (the sign of each rotated dimension) or 5 (the sign and a
   * 4-bit level: extended RaBitQ). Five cost D/2 bytes more per vector and tighten the error bound
   * about twelvefold, so fewer candidates are read from disk to re-rank; from 256 dimensions the rows
   * are read fast enough that one bit is nearly as fast for a fraction of the memory (200,000 × 256:
   * 0.94× five bits' queries per second at 10-recall@10 0.95, with 62 bytes per vector against 210).
   * Default: 5 below 256 dimensions (after padding to a multiple of 64), else 1.
   */
  bits?: RabitqBits;
  /** Seed of the rotation, sampling and k-means; the same seed and data give the same index. Default 1. */
  seed?: number;
  /** k-means iterations at most for the coarse quantizer. Default 10 (as faiss's IVF). */
  maxIterations?: number;
  /** Spreads k-means over threads; see `createParallelAssigner` (Node). Not saved with the index. */
  assigner?: Assigner;
}

/** Rows rotated and encoded per kernel call while adding. */
const ADD_BATCH = 256;
const RERANK_STORAGES: readonly RowStorage[] = ['float32', 'float16'];

/** Everything train learns: the rotation and the centroids (in the kernel's memory), and the lists. */
interface Trained extends RabitqState {
  centroidSums: Float32Array;
}

/** Bits by padded dimension: five below 256, where one bit's bound is too loose to read few rows. */
export function defaultBits(dimension: number): RabitqBits {
  return paddedDimension(dimension) < 256 ? 5 : 1;
}

/**
 * IVF-RaBitQ: vectors are partitioned by a coarse k-means quantizer and kept, relative to their
 * partition's centroid and after a random rotation, as one bit per dimension and three numbers (RaBitQ,
 * see src/ann/rabitq.ts), plus a 4-bit level per dimension and three more numbers with `bits: 5`. A
 * search visits the `nprobes` nearest partitions, estimates every distance there with a table lookup
 * per four dimensions (32 vectors at a time, in WebAssembly SIMD), each estimate with an error bound,
 * and re-ranks the candidates the bounds cannot rule out from their full vectors, in order of lower
 * bound, until no remaining one can beat the k-th distance found (see RabitqSearcher). The full vectors
 * are in the index file, read a row at a time when needed: after `loadIndex` only the codes, ids and
 * centroids are in memory (315 bytes per vector on bench (a): an eighth of float16 for 1,280 dimensions).
 */
export class IvfRabitqIndex implements VectorIndex {
  readonly kind = 'ivf-rabitq' as const;
  readonly dimension: number;
  readonly distanceType: DistanceType;
  readonly rerankStorage: RowStorage;
  readonly seed: number;
  private readonly options: IvfRabitqOptions;
  private readonly kernel: RabitqKernel;
  readonly bits: RabitqBits;
  private trainedState: Trained | undefined;
  private readonly rows: RowStore;
  private readonly searcher: RabitqSearcher;
  private readonly idSet = new IdSet(() => this.idChunks());
  private readonly encoded: EncodedVector;

  constructor(options: IvfRabitqOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ArgumentError('INVALID_ARGUMENT', 'Expected an options object such as { dimension: 128 }');
    }
    this.dimension = checkInteger(options.dimension, 'dimension', 2, 65536);
    if (options.numPartitions !== undefined) checkInteger(options.numPartitions, 'numPartitions', 1, 1 << 20);
    if (options.maxIterations !== undefined) checkInteger(options.maxIterations, 'maxIterations', 1, 1000);
    this.distanceType = checkDistanceType(options.distanceType);
    this.rerankStorage = checkOneOf(options.rerankStorage ?? 'float32', 'rerankStorage', RERANK_STORAGES);
    this.seed = checkInteger(options.seed ?? 1, 'seed', 0, 0xffffffff);
    this.bits = options.bits === undefined ? defaultBits(this.dimension) : checkBits(options.bits);
    this.options = options;
    this.kernel = kernels().rabitq();
    this.rows = new RowStore(this.dimension, this.rerankStorage);
    this.searcher = new RabitqSearcher(this.kernel, this.dimension, this.distanceType === 'dot', this.rows);
    this.encoded = emptyCode(paddedDimension(this.dimension), this.bits);
  }

  get size(): number {
    return this.trainedState?.lists.count ?? 0;
  }

  get trained(): boolean {
    return this.trainedState !== undefined;
  }

  get numPartitions(): number {
    return this.trainedState?.lists.numPartitions ?? this.options.numPartitions ?? 0;
  }

  private *idChunks(): Iterable<Uint32Array> {
    const lists = this.trainedState?.lists;
    if (!lists) return;
    for (let l = 0; l < lists.numPartitions; l++) yield lists.ids(l);
  }

  /**
   * Learns the rotation (from the seed) and the coarse centroids from `vectors` (n × dimension,
   * row-major). Does not add them: call `add` for that. An index that holds vectors cannot be trained
   * again (ALREADY_TRAINED).
   */
  async train(vectors: Float32Array): Promise<void> {
    const n = checkVectors(vectors, this.dimension);
    const L = partitionsForTraining(
      this,
      n,
      this.options.numPartitions ?? IvfRabitqIndex.defaultPartitions(n),
      1,
      'IVF-RaBitQ',
    );
    const data = this.distanceType === 'cosine' ? normalizeRows(vectors, this.dimension) : vectors;
    const { centroids } = await kmeans(data, this.dimension, {
      numCentroids: L,
      maxIterations: this.options.maxIterations ?? 10,
      // A sample of 64 per partition (faiss's IVF takes 256): partitions need only be roughly balanced,
      // the codes being relative to whichever centroid is nearest; on 1,000,000 vectors the k-means
      // takes a quarter of the time.
      maxPointsPerCentroid: 64,
      seed: this.seed,
      assigner: this.options.assigner,
    });
    if (this.trainedState) this.release(this.trainedState);
    const rotation = makeRotation(this.dimension, this.seed);
    const signs = this.signsOf(rotation);
    this.install(rotation, this.rotateRows(rotation, centroids, L, signs), signs);
  }

  /** Puts the rotation's signs in the kernel's memory: their address. */
  private signsOf(rotation: Rotation): number {
    const factors = signFactors(rotation);
    const at = this.kernel.alloc(factors.byteLength);
    this.kernel.floats(at, factors.length).set(factors);
    return at;
  }

  /** n rows of `dimension` values, padded to D and rotated (a copy). */
  private rotateRows(rotation: Rotation, rows: Float32Array, n: number, signs: number): Float32Array {
    const { D, P, rounds } = rotation;
    const d = this.dimension;
    const out = new Float32Array(n * D);
    const batch = Math.min(n, ADD_BATCH);
    const at = this.kernel.alloc(batch * D * 4);
    try {
      for (let start = 0; start < n; start += batch) {
        const count = Math.min(batch, n - start);
        const view = this.kernel.floats(at, count * D);
        view.fill(0);
        for (let i = 0; i < count; i++) view.set(rows.subarray((start + i) * d, (start + i + 1) * d), i * D);
        this.kernel.rotate(at, count, D, P, signs, rounds);
        out.set(this.kernel.floats(at, count * D), start * D);
      }
    } finally {
      this.kernel.free(at, batch * D * 4);
    }
    return out;
  }

  /**
   * Makes `centroids` (rotated, L × D) the quantizer's: in the kernel's memory as f32, and as i16 (each
   * centroid with its own scale) for ranking them against a query at twice the speed.
   */
  private install(rotation: Rotation, centroids: Float32Array, signs?: number): void {
    const { D } = rotation;
    const L = centroids.length / D;
    const centroidsAt = this.kernel.alloc(centroids.byteLength);
    this.kernel.floats(centroidsAt, centroids.length).set(centroids);
    const centroids16At = this.kernel.alloc(L * D * 2);
    const scalesAt = this.kernel.alloc(L * 4);
    this.kernel.quantize(centroidsAt, L, D, centroids16At, scalesAt);
    const centroidInverseScales = this.kernel.floats(scalesAt, L).map((scale) => 1 / scale);
    this.kernel.free(scalesAt, L * 4);
    const centroidNorms = new Float32Array(L);
    const centroidSums = new Float32Array(L);
    for (let l = 0; l < L; l++) {
      let norm = 0;
      let sum = 0;
      for (let j = l * D; j < (l + 1) * D; j++) {
        norm += centroids[j]! * centroids[j]!;
        sum += centroids[j]!;
      }
      centroidNorms[l] = norm;
      centroidSums[l] = sum;
    }
    const { exBytes, factorCount } = extendedShape(this.bits, D);
    this.trainedState = {
      rotation,
      bits: this.bits,
      signs: signs ?? this.signsOf(rotation),
      centroidsAt,
      centroids16At,
      centroidInverseScales,
      centroidNorms,
      centroidSums,
      lists: new RabitqLists(this.kernel, D, L, exBytes, factorCount),
    };
  }

  /** Gives back what an earlier training holds in the kernel's memory (an empty index trained again). */
  private release(state: Trained): void {
    this.searcher.reset();
    state.lists.dispose();
    this.kernel.free(state.signs, state.rotation.flips.length * 4);
    const { D } = state.rotation;
    const L = state.lists.numPartitions;
    this.kernel.free(state.centroidsAt, L * D * 4);
    this.kernel.free(state.centroids16At, L * D * 2);
    this.trainedState = undefined;
  }

  private requireTrained(action: string): Trained {
    return checkTrained(this.trainedState, action);
  }

  /**
   * Adds n vectors (n × dimension, row-major) with the given ids, or with the next free ids. Each is
   * encoded into its nearest partition at once; its full copy stays in memory until the next `save`,
   * which writes it into the file. Returns the ids.
   */
  add(vectors: Float32Array, ids?: Uint32Array): Uint32Array {
    const state = this.requireTrained('add to');
    const n = checkVectors(vectors, this.dimension);
    const assigned = this.idSet.forAdd(ids, n);
    if (n === 0) return assigned;
    const data = this.distanceType === 'cosine' ? normalizeRows(vectors, this.dimension) : vectors;
    const { D } = state.rotation;
    const L = state.lists.numPartitions;
    const dot = this.distanceType === 'dot';
    const firstRow = this.rows.append(data, n);
    // The nearest centroid (for dot, the largest inner product) by the shared kernels' blocked product,
    // over a copy of the centroids made resident there for this add only.
    const K = kernels();
    // A copy: the kernel's memory may grow (and its views detach) while the codes are pushed.
    const centroidsF32 = this.centroidsOf(state);
    const centroids = K.resident(centroidsF32);
    const norms = dot ? new Float32Array(L) : state.centroidNorms;
    const labels = new Int32Array(ADD_BATCH);
    const values = new Float32Array(ADD_BATCH);
    try {
      for (let start = 0; start < n; start += ADD_BATCH) {
        const count = Math.min(ADD_BATCH, n - start);
        const rotated = this.rotateRows(
          state.rotation,
          data.subarray(start * this.dimension, (start + count) * this.dimension),
          count,
          state.signs,
        );
        K.nearest({ source: rotated }, count, { source: centroids }, L, D, norms, labels, values);
        for (let i = 0; i < count; i++) {
          const best = labels[i]!;
          encodeVector(
            rotated,
            i * D,
            centroidsF32,
            best * D,
            state.centroidSums[best]!,
            D,
            dot,
            this.bits,
            this.encoded,
          );
          state.lists.push(best, assigned[start + i]!, firstRow + start + i, this.encoded);
        }
      }
    } finally {
      centroids.dispose();
    }
    this.idSet.added(assigned);
    return assigned;
  }

  /** A copy of the rotated centroids (L × D) from the kernel's memory. */
  private centroidsOf(state: Trained): Float32Array {
    return this.kernel.floats(state.centroidsAt, state.lists.numPartitions * state.rotation.D).slice();
  }

  /** Removes the vectors with these ids (ids not in the index are ignored); returns how many were removed. */
  remove(ids: Uint32Array | readonly number[]): number {
    const state = this.requireTrained('remove from');
    const gone = idsToRemove(ids);
    let removed = 0;
    for (let l = 0; l < state.lists.numPartitions; l++) {
      const listIds = state.lists.ids(l);
      for (let i = listIds.length - 1; i >= 0; i--) {
        if (!gone.has(listIds[i]!)) continue;
        state.lists.removeAt(l, i);
        removed++;
      }
    }
    return removed;
  }

  search(query: Float32Array, k: number, options: SearchOptions = {}): SearchResult {
    const state = this.requireTrained('search');
    checkQuery(query, this.dimension);
    const plan = this.plan(state, k, options);
    const q = this.distanceType === 'cosine' ? normalizeRows(query, this.dimension) : query;
    const out = this.searcher.search(state, q, plan);
    const ids = new Uint32Array(out.size);
    const distances = new Float32Array(out.size);
    this.readResults(state, out, ids, distances, 0);
    return { ids, distances };
  }

  /**
   * Searches as `search` does and records both steps: every partition's centroid distance and the
   * partitions probed (in order), then every vector scanned in them (id, partition, and its one-bit
   * RaBitQ estimate, the distance the scan keeps or drops it by) and the k results, exactly `search`'s.
   */
  explainSearch(query: Float32Array, k: number, options: ExplainOptions = {}): IvfExplanation {
    const state = this.requireTrained('search');
    checkQuery(query, this.dimension);
    const plan = this.plan(state, k, options);
    const q = this.distanceType === 'cosine' ? normalizeRows(query, this.dimension) : query;
    const recorder = new ScanRecorder();
    const out = this.searcher.search(state, q, plan, recorder);
    const ids = new Uint32Array(out.size);
    const distances = new Float32Array(out.size);
    this.readResults(state, out, ids, distances, 0);
    const { D } = state.rotation;
    const L = state.lists.numPartitions;
    const rotated = this.rotateRows(state.rotation, q, 1, state.signs);
    const centroids = this.centroidsOf(state);
    const products = new Float32Array(L);
    let queryNorm = 0;
    for (const v of q) queryNorm += v * v;
    for (let l = 0; l < L; l++) {
      let ip = 0;
      for (let j = 0; j < D; j++) ip += rotated[j]! * centroids[l * D + j]!;
      products[l] = ip;
    }
    const toPublic = (v: number) => publicDistance(this.distanceType, v);
    return {
      coarse: {
        distances: centroidDistances(
          products,
          queryNorm,
          state.centroidNorms,
          this.distanceType === 'dot',
        ).map(toPublic),
        probed: recorder.probed,
      },
      fine: { ...recorder.fine(toPublic), results: { ids, distances } },
    };
  }

  /**
   * Searches nq queries (see `search`). `nprobes` (default `defaultProbes(numPartitions)`) partitions are
   * scanned. `refineFactor` unset re-ranks every candidate the error bounds cannot rule out (about
   * twice k full vectors read on bench (a)); a number caps them at the k × refineFactor best estimates;
   * 0 returns the estimates themselves without reading any full vector.
   */
  searchBatch(queries: Float32Array, k: number, options: SearchOptions = {}): BatchSearchResult {
    const state = this.requireTrained('search');
    const nq = checkVectors(queries, this.dimension, 'queries');
    const plan = this.plan(state, k, options);
    const data = this.distanceType === 'cosine' ? normalizeRows(queries, this.dimension) : queries;
    const ids = new Uint32Array(nq * k).fill(NO_ID);
    const distances = new Float32Array(nq * k).fill(Number.POSITIVE_INFINITY);
    for (let row = 0; row < nq; row++) {
      const q = data.subarray(row * this.dimension, (row + 1) * this.dimension);
      this.readResults(state, this.searcher.search(state, q, plan), ids, distances, row * k);
    }
    return { ids, distances };
  }

  /**
   * Partitions trained on n vectors unless told: √n (as LanceDB's IVF) up to 65,536 vectors, then one
   * per 256 vectors up to 4√n (from 1,048,576; faiss advises 4–16√n at a million and beyond). A search
   * pays one product per centroid and a scan per vector probed: with few partitions the scan is most of
   * it (35 % of a search against 5 % for 447 centroids at 200,000 × 256), and finer partitions reach
   * the same recall scanning fewer vectors. Measured on 200,000 clustered 256-d vectors (bench:ann (c)):
   * 447 partitions (√n) need 24 probes for 10-recall@10 0.95, 0.81× usearch f16's QPS there; 781 (this
   * rule) need 15, 1.41×; 1,788 (4√n) 0.85× (the centroids cost more than they save). At 100,000: √n
   * 1.39×, 2√n 1.51×. At 1,000,000, 2√n (2,000, 500 vectors each) reached only 0.96× and needed 96
   * probes for 0.95. Caltech (8,144 × 1,280) keeps √n = 90.
   */
  static defaultPartitions(n: number): number {
    const root = Math.sqrt(n);
    return Math.max(1, Math.round(Math.min(4 * root, Math.max(root, n / 256))));
  }

  /**
   * Partitions a search visits unless told: 16, or 1.2·√numPartitions past 177 partitions, as a
   * collection grows its share of each partition's neighbours that live elsewhere grows too. Measured
   * with the default partitions (10-recall@10, clustered 256-d vectors of bench:ann (c)): 1,000,000
   * vectors (3,906 partitions) 48 probes 0.932, 64 0.946, 75 (this rule) about 0.954, 96 0.966; 200,000
   * (781) 16 probes 0.954, 34 (this rule) 0.978 (0.8·√L, 23, reached 0.967 there but 0.93 at a million);
   * 100,000 (391) 16 0.976; the 8,144 Caltech vectors (90) 16 0.968.
   */
  static defaultProbes(numPartitions: number): number {
    return Math.min(numPartitions, Math.max(DEFAULT_NPROBES, Math.ceil(1.2 * Math.sqrt(numPartitions))));
  }

  private plan(state: Trained, k: number, options: SearchOptions): SearchPlan {
    checkInteger(k, 'k', 1, MAX_K);
    const checked = checkSearchOptions(options);
    const L = state.lists.numPartitions;
    const nprobes = checkInteger(checked.nprobes ?? IvfRabitqIndex.defaultProbes(L), 'nprobes', 1, L);
    const cap = options.refineFactor === undefined ? Number.POSITIVE_INFINITY : k * checked.refineFactor;
    return { nprobes, k, cap };
  }

  private readResults(
    state: Trained,
    out: TopK,
    ids: Uint32Array,
    distances: Float32Array,
    at: number,
  ): void {
    for (let c = 0; c < out.size; c++) {
      ids[at + c] = state.lists.idAt(out.a[c]!, out.b[c]!);
      distances[at + c] = publicDistance(this.distanceType, out.distances[c]!);
    }
  }

  /**
   * The coarse centroids, numPartitions × the padded dimension, rotated as the codes are (the rotation
   * keeps their distances to one another); a copy.
   */
  centroids(): Float32Array {
    return this.centroidsOf(this.requireTrained('read the centroids of'));
  }

  /** The number of vectors in each partition. */
  partitionSizes(): Uint32Array {
    const { lists } = this.requireTrained('read the partitions of');
    return Uint32Array.from({ length: lists.numPartitions }, (_, l) => lists.size(l));
  }

  /** The ids in partition `l` (0 ≤ l < numPartitions); a copy. */
  partitionIds(l: number): Uint32Array {
    const { lists } = this.requireTrained('read the partitions of');
    checkInteger(l, 'partition', 0, lists.numPartitions - 1);
    return lists.ids(l).slice();
  }

  /** Every id in the index, partition by partition. */
  ids(): Uint32Array {
    const lists = this.trainedState?.lists;
    if (!lists) return new Uint32Array(0);
    const out = new Uint32Array(lists.count);
    let at = 0;
    for (let l = 0; l < lists.numPartitions; l++) {
      out.set(lists.ids(l), at);
      at += lists.size(l);
    }
    return out;
  }

  /**
   * Bytes held in memory, by part: the codes and factors (by list capacity: each list is a whole number
   * of 32-vector blocks), ids (with each vector's row number), the quantizer (rotated centroids with
   * their norms and sums, the rotation's signs), full vectors added since the file was written
   * (`unsaved`), and the rest of the kernel's memory (search scratch, free space, the module's own
   * page). `total` is their sum. `onDisk` is the full vectors left in the file and read on demand:
   * not held, not in `total`.
   */
  memoryUsage(): {
    codes: number;
    factors: number;
    ids: number;
    quantizer: number;
    unsaved: number;
    kernel: number;
    total: number;
    onDisk: number;
  } {
    const state = this.trainedState;
    const { codes, factors, ids } = state?.lists.byteLengths() ?? { codes: 0, factors: 0, ids: 0 };
    // The centroids as f32 and i16 and the signs are in the kernel's memory, their norms, sums and
    // scales beside it.
    const centroidsInKernel = state
      ? state.lists.numPartitions * state.rotation.D * 6 + state.rotation.flips.length * 4
      : 0;
    const quantizer = state
      ? centroidsInKernel +
        state.centroidNorms.byteLength +
        state.centroidSums.byteLength +
        state.centroidInverseScales.byteLength
      : 0;
    const unsaved = this.rows.memoryBytes;
    // The kernel's memory holds the codes, factors and quantizer: the rest of it is its own part.
    const kernel = Math.max(0, this.kernel.byteLength - codes - factors - centroidsInKernel);
    const total = codes + factors + ids + quantizer + unsaved + kernel;
    return { codes, factors, ids, quantizer, unsaved, kernel, total, onDisk: this.rows.onDiskBytes };
  }

  describe(): IndexDescription {
    return describeIndex(this, {
      numPartitions: this.trainedState?.lists.numPartitions ?? this.options.numPartitions,
      bits: this.bits,
      paddedDimension: this.trainedState?.rotation.D,
      rerankStorage: this.rerankStorage,
      seed: this.seed,
    });
  }

  private fileSections(): ReturnType<typeof rabitqFileSections> {
    const state = this.requireTrained('save');
    const { rows, ...lists } = state.lists.concatenated();
    return rabitqFileSections({
      dimension: this.dimension,
      distanceType: this.distanceType,
      bits: this.bits,
      rerankStorage: this.rerankStorage,
      seed: this.seed,
      nextId: this.idSet.nextId,
      rotation: state.rotation,
      centroids: this.centroidsOf(state),
      lists,
      rows: this.rows.section(rows),
    });
  }

  /** The index as the bytes of its file, full vectors included (see src/ann/format.ts). */
  toBytes(): Uint8Array {
    const { header, sections } = this.fileSections();
    return encodeIndex('ivf-rabitq', header, sections, ON_DEMAND);
  }

  /**
   * Writes the index to `path` atomically (temp file, fsync, rename), streaming the full vectors from
   * the file it was loaded from (or last saved to) and from memory; from then on it reads them from the
   * new file, and the ones that were in memory are given back.
   */
  async save(path: string): Promise<void> {
    const { header, sections } = this.fileSections();
    const store = fileStore();
    await store.write(path, streamIndex('ivf-rabitq', header, sections, ON_DEMAND));
    const file = await store.open(path);
    try {
      const decoded = readIndexFile(file, path, { verify: false });
      this.rows.attach(decoded.onDemand('VECS', this.rows.rowBytes, header.count), header.count);
      this.requireTrained('save').lists.renumberRows();
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /** Opens a file written by `save` (see `loadIndex`: the full vectors stay on disk). */
  static async load(path: string, options: ReadIndexOptions = {}): Promise<IvfRabitqIndex> {
    const file = await fileStore().open(path);
    try {
      return IvfRabitqIndex.fromFile(requireKind(readIndexFile(file, path, options), 'ivf-rabitq'));
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /** Reads an index from its file bytes (the full vectors are read from those bytes on demand). */
  static fromBytes(bytes: Uint8Array, name = 'index file'): IvfRabitqIndex {
    return IvfRabitqIndex.fromFile(decodeIndex(bytes, name, 'ivf-rabitq'));
  }

  /** @internal From a decoded file of this kind (see openIndex). */
  static fromFile(file: DecodedIndexFile): IvfRabitqIndex {
    const f = file.fields;
    const rerankStorage = rerankStorageOf(file);
    let index: IvfRabitqIndex;
    try {
      index = new IvfRabitqIndex({
        dimension: f.dimension,
        distanceType: distanceTypeOf(file),
        numPartitions: f.numPartitions,
        rerankStorage,
        bits: f.numBits as RabitqBits,
        seed: f.seed,
      });
    } catch {
      throw damaged(file.name, 'its parameters');
    }
    const shape = extendedShape(index.bits, paddedDimension(f.dimension));
    const { rotation, centroids, lists } = readRabitqSections(file, shape);
    index.install(rotation, centroids);
    index.trainedState!.lists.load(lists);
    index.rows.attach(file.onDemand('VECS', index.rows.rowBytes, f.count), f.count);
    index.idSet.nextId = f.nextId;
    return index;
  }
}

/** Bytes of extended code per vector and factors per vector, by bits: none and 3, or D/2 and 6. */
function extendedShape(bits: RabitqBits, D: number): { exBytes: number; factorCount: number } {
  return bits > 1 ? { exBytes: D / 2, factorCount: 6 } : { exBytes: 0, factorCount: 3 };
}

function checkBits(bits: unknown): RabitqBits {
  if (!(RABITQ_BITS as readonly unknown[]).includes(bits)) {
    throw new ArgumentError('INVALID_ARGUMENT', `Expected bits to be 1 or 5 but received ${String(bits)}`);
  }
  return bits as RabitqBits;
}
