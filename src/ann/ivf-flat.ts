import { CoarseQuantizer } from './coarse.ts';
import { type DecodedIndexFile, damaged, decodeIndex, distanceTypeOf, encodeIndex } from './format.ts';
import { IdSet, idsToRemove } from './id-set.ts';
import { type ColumnSpec, InvertedLists } from './inverted-lists.ts';
import {
  centroidDistances,
  type ExplainOptions,
  type IvfExplanation,
  partitionsForTraining,
  ScanRecorder,
} from './ivf.ts';
import { kernels } from './kernels/index.ts';
import { type Assigner, rowNorms } from './kmeans.ts';
import { checkDistanceType, type DistanceType, normalizeRows, publicDistance } from './metric.ts';
import { fileStore } from './storage.ts';
import { TopK } from './topk.ts';
import { type BatchSearchResult, firstRow, NO_ID, type SearchResult } from './types.ts';
import { checkInteger, checkQuery, checkVectors } from './validate.ts';
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

export interface IvfFlatOptions {
  /** Length of every vector. */
  dimension: number;
  /**
   * Partitions of the coarse quantizer. More make each probe cheaper but need more `nprobes` for the
   * same recall. Default: about √n of the training set, chosen at `train`.
   */
  numPartitions?: number;
  /** Distance measure; see {@link DistanceType}. Default 'l2'. */
  distanceType?: DistanceType;
  /** Seed of k-means; the same seed and data give the same index. Default 1. */
  seed?: number;
  /** k-means iterations at most for the coarse quantizer. Default 10 (as faiss's IVF); fewer train faster. */
  maxIterations?: number;
  /** Spreads k-means over threads; see `createParallelAssigner` (Node). Not saved with the index. */
  assigner?: Assigner;
}

/** Per partition: the vectors (unit length for cosine) and ‖x‖² of each, so L2 costs one dot product. */
const COLUMNS = (d: number): ColumnSpec[] => [
  { width: d, type: Float32Array },
  { width: 1, type: Float32Array },
];

/**
 * IVF-Flat: partitions as in IVF-PQ, but each partition keeps its vectors whole, so the distances are
 * exact and only the partitions not probed cost recall. 4 × dimension bytes per vector.
 */
export class IvfFlatIndex implements VectorIndex {
  readonly kind = 'ivf-flat' as const;
  readonly dimension: number;
  readonly distanceType: DistanceType;
  readonly seed: number;
  private readonly options: IvfFlatOptions;
  private coarse: CoarseQuantizer | undefined;
  private lists: InvertedLists;
  private readonly idSet = new IdSet(() => this.lists.idChunks());

  constructor(options: IvfFlatOptions) {
    this.dimension = checkInteger(options?.dimension, 'dimension', 1, 65536);
    this.distanceType = checkDistanceType(options.distanceType);
    if (options.numPartitions !== undefined) checkInteger(options.numPartitions, 'numPartitions', 1, 1 << 20);
    this.seed = options.seed ?? 1;
    this.options = options;
    this.lists = new InvertedLists(COLUMNS(this.dimension), 0);
  }

  get size(): number {
    return this.lists.count;
  }

  get trained(): boolean {
    return this.coarse !== undefined;
  }

  get numPartitions(): number {
    return this.coarse?.numPartitions ?? this.options.numPartitions ?? 0;
  }

  /**
   * Learns the partitions' centroids from `vectors` (n × dimension). Does not add them. An index that
   * holds vectors cannot be trained again (ALREADY_TRAINED): build a new one, or remove every vector first.
   */
  async train(vectors: Float32Array): Promise<void> {
    const n = checkVectors(vectors, this.dimension);
    const numPartitions = partitionsForTraining(this, n, this.options.numPartitions, 1, 'IVF-Flat');
    const data = this.distanceType === 'cosine' ? normalizeRows(vectors, this.dimension) : vectors;
    this.coarse = await CoarseQuantizer.train(data, this.dimension, numPartitions, {
      seed: this.seed,
      maxIterations: this.options.maxIterations,
      assigner: this.options.assigner,
    });
    this.lists = new InvertedLists(COLUMNS(this.dimension), numPartitions);
  }

  private requireTrained(action: string): CoarseQuantizer {
    return checkTrained(this.coarse, action);
  }

  add(vectors: Float32Array, ids?: Uint32Array): Uint32Array {
    const coarse = this.requireTrained('add to');
    const d = this.dimension;
    const n = checkVectors(vectors, d);
    const assigned = this.idSet.forAdd(ids, n);
    if (n === 0) return assigned;
    const data = this.distanceType === 'cosine' ? normalizeRows(vectors, d) : vectors;
    const labels = coarse.assign(data, n, this.distanceType);
    this.lists.append(labels, assigned, [data, rowNorms(data, n, d)]);
    this.idSet.added(assigned);
    return assigned;
  }

  remove(ids: Uint32Array | readonly number[]): number {
    this.requireTrained('remove from');
    return this.lists.remove(idsToRemove(ids));
  }

  search(query: Float32Array, k: number, options: SearchOptions = {}): SearchResult {
    this.requireTrained('search');
    checkQuery(query, this.dimension);
    return firstRow(this.searchBatch(query, k, options), k);
  }

  searchBatch(queries: Float32Array, k: number, options: SearchOptions = {}): BatchSearchResult {
    return this.run(queries, k, options);
  }

  /**
   * Searches as `search` does and records both steps: every partition's centroid distance and the
   * partitions probed (in order), then every vector scanned in them (id, partition, distance) and the k
   * results, which are exactly `search`'s.
   */
  explainSearch(query: Float32Array, k: number, options: ExplainOptions = {}): IvfExplanation {
    const coarse = this.requireTrained('search');
    checkQuery(query, this.dimension);
    const recorder = new ScanRecorder();
    const found = firstRow(this.run(query, k, options, recorder), k);
    const q = this.distanceType === 'cosine' ? normalizeRows(query, this.dimension) : query;
    let qNorm = 0;
    for (const v of q) qNorm += v * v;
    const internal = centroidDistances(
      coarse.products(q, 1),
      qNorm,
      coarse.norms,
      this.distanceType === 'dot',
    );
    const toPublic = (v: number) => publicDistance(this.distanceType, v);
    return {
      coarse: { distances: internal.map(toPublic), probed: recorder.probed },
      fine: {
        ...recorder.fine(toPublic),
        results: { ids: found.ids.slice(), distances: found.distances.slice() },
      },
    };
  }

  private run(
    queries: Float32Array,
    k: number,
    options: SearchOptions,
    recorder?: ScanRecorder,
  ): BatchSearchResult {
    const coarse = this.requireTrained('search');
    const d = this.dimension;
    const nq = checkVectors(queries, d, 'queries');
    checkInteger(k, 'k', 1, MAX_K);
    // refineFactor is accepted and ignored: the distances are exact already.
    const nprobes = checkInteger(
      checkSearchOptions(options).nprobes ?? Math.min(this.numPartitions, DEFAULT_NPROBES),
      'nprobes',
      1,
      this.numPartitions,
    );
    const q = this.distanceType === 'cosine' ? normalizeRows(queries, d) : queries;
    const products = coarse.products(q, nq);
    const ids = new Uint32Array(nq * k).fill(NO_ID);
    const distances = new Float32Array(nq * k).fill(Number.POSITIVE_INFINITY);
    const probes = new TopK(nprobes);
    const heap = new TopK(k);
    const K = kernels();
    const dot = this.distanceType === 'dot';
    let scratch = new Float32Array(0);
    for (let row = 0; row < nq; row++) {
      const qi = q.subarray(row * d, (row + 1) * d);
      let qNorm = 0;
      for (const v of qi) qNorm += v * v;
      const probed = coarse.probe(products, row, qNorm, this.distanceType, probes);
      recorder?.probes(probes.a, probed);
      heap.reset();
      for (let p = 0; p < probed; p++) {
        const l = probes.a[p]!;
        const list = this.lists.list(l);
        const size = list.ids.length;
        if (size === 0) continue;
        const [vectors, norms] = list.columns as [Float32Array, Float32Array];
        if (scratch.length < size) scratch = new Float32Array(size);
        K.gemmNT({ source: vectors }, size, { source: qi }, 1, d, scratch, 1);
        for (let i = 0; i < size; i++) {
          const ip = scratch[i]!;
          const dist = dot ? -ip : Math.max(0, qNorm + norms[i]! - 2 * ip);
          scratch[i] = dist;
          if (dist < heap.bound) heap.push(dist, l, i);
        }
        recorder?.scanned(l, list.ids, scratch, size);
      }
      const found = heap.sort();
      for (let c = 0; c < found; c++) {
        ids[row * k + c] = this.lists.list(heap.a[c]!).ids[heap.b[c]!]!;
        distances[row * k + c] = publicDistance(this.distanceType, heap.distances[c]!);
      }
    }
    return { ids, distances };
  }

  /** Every id in the index, in list order. */
  ids(): Uint32Array {
    return this.lists.ids();
  }

  /** The coarse centroids, numPartitions × dimension; a copy. */
  centroids(): Float32Array {
    return this.requireTrained('read the centroids of').centroids.slice();
  }

  /** The number of vectors in each partition. */
  partitionSizes(): Uint32Array {
    this.requireTrained('read the partitions of');
    return this.lists.sizes();
  }

  /** The ids in partition `l` (0 ≤ l < numPartitions); a copy. */
  partitionIds(l: number): Uint32Array {
    this.requireTrained('read the partitions of');
    return this.lists.idsOf(l);
  }

  /** Memory held by the index, in bytes: vectors, their norms, ids and the centroids. */
  memoryUsage(): { vectors: number; norms: number; ids: number; quantizers: number; total: number } {
    const { ids, columns } = this.lists.byteLengths();
    const [vectors = 0, norms = 0] = columns;
    const quantizers = this.coarse?.centroids.byteLength ?? 0;
    return { vectors, norms, ids, quantizers, total: vectors + norms + ids + quantizers };
  }

  describe(): IndexDescription {
    return describeIndex(this, {
      numPartitions: this.coarse?.numPartitions ?? this.options.numPartitions,
      seed: this.seed,
    });
  }

  toBytes(): Uint8Array {
    const coarse = this.requireTrained('save');
    const { sizes, ids, columns } = this.lists.concatenated();
    return encodeIndex(
      'ivf-flat',
      {
        dimension: this.dimension,
        distanceType: this.distanceType,
        numPartitions: coarse.numPartitions,
        count: this.size,
        nextId: this.idSet.nextId,
        seed: this.seed,
      },
      new Map<string, Float32Array | Uint32Array>([
        ['CENT', coarse.centroids],
        ['SIZE', sizes],
        ['IDS ', ids],
        ['VECS', columns[0] as Float32Array],
      ]),
    );
  }

  /**
   * Reads an index from its file bytes. The lists view the bytes without copying them: changes to the
   * index never write into them, but the caller must not change them while the index is in use.
   */
  static fromBytes(bytes: Uint8Array, name = 'index file'): IvfFlatIndex {
    return IvfFlatIndex.fromFile(decodeIndex(bytes, name, 'ivf-flat'));
  }

  /** @internal From a decoded file of this kind (see openIndex). */
  static fromFile(file: DecodedIndexFile): IvfFlatIndex {
    const f = file.fields;
    const d = f.dimension;
    const index = new IvfFlatIndex({ dimension: d, distanceType: distanceTypeOf(file), seed: f.seed });
    index.coarse = new CoarseQuantizer(file.section('CENT', Float32Array, f.numPartitions * d), d);
    const vectors = file.section('VECS', Float32Array, f.count * d);
    index.lists = InvertedLists.view(
      COLUMNS(d),
      file.section('SIZE', Uint32Array, f.numPartitions),
      file.section('IDS ', Uint32Array, f.count),
      [vectors, rowNorms(vectors, f.count, d)],
    );
    if (index.lists.count !== f.count) throw damaged(file.name, 'its partition sizes');
    index.idSet.nextId = f.nextId;
    return index;
  }

  async save(path: string): Promise<void> {
    await fileStore().write(path, this.toBytes());
  }

  static async load(path: string): Promise<IvfFlatIndex> {
    return IvfFlatIndex.fromBytes(await fileStore().read(path), path);
  }
}
