import { ArgumentError, StateError } from '../errors.ts';
import { CoarseQuantizer } from './coarse.ts';
import {
  type DecodedIndexFile,
  damaged,
  decodeIndex,
  distanceTypeOf,
  encodeIndex,
  type SectionData,
} from './format.ts';
import { IdSet, idsToRemove } from './id-set.ts';
import { type Column, type ColumnSpec, InvertedLists } from './inverted-lists.ts';
import {
  centroidDistances,
  type ExplainOptions,
  type IvfExplanation,
  partitionsForTraining,
  residuals,
  ScanRecorder,
} from './ivf.ts';
import type { Assigner } from './kmeans.ts';
import { checkDistanceType, type DistanceType, publicDistance } from './metric.ts';
import { checkPqOptions, PqCodec, sameFloats } from './pq-codec.ts';
import {
  checkRefineStorage,
  encodeRefine,
  REFINE_STORAGES,
  type RefineStorage,
  type RefineVectors,
  refineArrayType,
  refineSection,
  rerank,
} from './refine-store.ts';
import { fileStore } from './storage.ts';
import { TopK } from './topk.ts';
import type { TransformOptions } from './transform.ts';
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

export type { RefineStorage } from './refine-store.ts';

export interface IvfPqOptions {
  /** Length of every vector. */
  dimension: number;
  /**
   * Partitions (inverted lists) of the coarse quantizer. More partitions make each probe cheaper but
   * need more `nprobes` for the same recall and more training vectors. Default: about √n of the
   * training set, chosen at `train`.
   */
  numPartitions?: number;
  /**
   * Sub-vectors per vector for product quantization; must divide `dimension` (after any transform).
   * Each costs one byte per vector: more sub-vectors give better recall and slower, larger search.
   * Default: the largest divisor of the dimension at most dimension / 16 (so 80 for 1280, 128 for 2048).
   */
  numSubVectors?: number;
  /** Bits per sub-vector code. Only 8 (256 centroids per sub-space). */
  numBits?: number;
  /** Distance measure; see {@link DistanceType}. Default 'l2'. */
  distanceType?: DistanceType;
  /**
   * Keep a full copy of every vector so `refineFactor` can re-rank candidates exactly. 'float16' halves
   * the copy's memory (2 bytes per dimension) at a tiny loss of precision. Default 'none'.
   */
  refineStorage?: RefineStorage;
  /** Optional pre-transform: PCA to fewer dimensions, or an OPQ rotation that suits product quantization. */
  transform?: TransformOptions;
  /** Seed of all sampling and k-means initialisation; the same seed and data give the same index. Default 1. */
  seed?: number;
  /**
   * k-means iterations at most. Default: 10 for the coarse quantizer (as faiss's IVF: partitions need only
   * be roughly balanced) and 25 for each sub-quantizer (codes gain from the extra precision); a value given
   * here applies to both. Fewer train faster and quantize a little worse.
   */
  maxIterations?: number;
  /** Spreads k-means over threads; see `createParallelAssigner` (Node). Not saved with the index. */
  assigner?: Assigner;
}

/** Search options of IVF-PQ; the same for every kind (see SearchOptions). */
export type IvfPqSearchOptions = SearchOptions;

/**
 * IVF-PQ: vectors are partitioned by a coarse k-means quantizer; within its partition each vector is stored
 * as the product-quantized code of its residual (the vector minus its centroid). A search visits the
 * `nprobes` nearest partitions and ranks their codes with lookup tables (see PqCodec).
 */
export class IvfPqIndex implements VectorIndex {
  readonly kind = 'ivf-pq' as const;
  readonly dimension: number;
  readonly distanceType: DistanceType;
  readonly refineStorage: RefineStorage;
  readonly seed: number;
  private readonly options: IvfPqOptions;
  private coarse: CoarseQuantizer | undefined;
  private codec: PqCodec | undefined;
  /** Per partition: ids, codes (numSubVectors bytes per row) and, with refine, the vectors. */
  private lists: InvertedLists = new InvertedLists([], 0);
  private readonly idSet = new IdSet(() => this.lists.idChunks());

  constructor(options: IvfPqOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ArgumentError('INVALID_ARGUMENT', 'Expected an options object such as { dimension: 128 }');
    }
    checkInteger(options.dimension, 'dimension', 1, 65536);
    if (options.numPartitions !== undefined) checkInteger(options.numPartitions, 'numPartitions', 1, 1 << 20);
    checkPqOptions(options);
    this.dimension = options.dimension;
    this.distanceType = checkDistanceType(options.distanceType);
    this.refineStorage = checkRefineStorage(options.refineStorage);
    this.seed = options.seed ?? 1;
    this.options = options;
  }

  /** Number of vectors in the index. */
  get size(): number {
    return this.lists.count;
  }

  get trained(): boolean {
    return this.codec !== undefined;
  }

  get numPartitions(): number {
    return this.coarse?.numPartitions ?? this.options.numPartitions ?? 0;
  }

  get numSubVectors(): number {
    return this.codec?.numSubVectors ?? this.options.numSubVectors ?? 0;
  }

  /**
   * Learns the transform (if any), the coarse centroids and the sub-space codebooks from `vectors`
   * (n × dimension, row-major). Does not add them: call `add` for that. An index that holds vectors
   * cannot be trained again (ALREADY_TRAINED): build a new index, or remove every vector first.
   */
  async train(vectors: Float32Array): Promise<void> {
    const n = checkVectors(vectors, this.dimension);
    const numPartitions = partitionsForTraining(
      this,
      n,
      this.options.numPartitions,
      256,
      'IVF-PQ (8-bit codes)',
    );
    const common = {
      seed: this.seed,
      maxIterations: this.options.maxIterations,
      assigner: this.options.assigner,
    };
    let coarse: CoarseQuantizer | undefined;
    const codec = await PqCodec.train(
      { ...common, dimension: this.dimension, distanceType: this.distanceType, ...this.pqOptions() },
      PqCodec.originals(vectors, this.dimension, this.distanceType),
      async (inner, d) => {
        coarse = await CoarseQuantizer.train(inner, d, numPartitions, common);
        return residuals(inner, n, d, coarse.centroids, coarse.assign(inner, n, this.distanceType));
      },
      () => coarse!.centroids,
    );
    this.install(coarse!, codec, new InvertedLists(this.columnSpecs(codec), numPartitions));
  }

  private pqOptions(): { numSubVectors?: number; transform?: TransformOptions } {
    return { numSubVectors: this.options.numSubVectors, transform: this.options.transform };
  }

  private install(coarse: CoarseQuantizer, codec: PqCodec, lists: InvertedLists): void {
    this.coarse?.dispose();
    this.codec?.dispose();
    this.coarse = coarse;
    this.codec = codec;
    this.lists = lists;
  }

  private columnSpecs(codec: PqCodec): ColumnSpec[] {
    const specs: ColumnSpec[] = [{ width: codec.numSubVectors, type: Uint8Array }];
    const refine = refineArrayType(this.refineStorage);
    if (refine) specs.push({ width: this.dimension, type: refine });
    return specs;
  }

  private requireTrained(action: string): { coarse: CoarseQuantizer; codec: PqCodec } {
    const codec = checkTrained(this.codec, action);
    return { coarse: this.coarse!, codec };
  }

  add(vectors: Float32Array, ids?: Uint32Array): Uint32Array {
    const { coarse, codec } = this.requireTrained('add to');
    const n = checkVectors(vectors, this.dimension);
    const assigned = this.idSet.forAdd(ids, n);
    if (n === 0) return assigned;
    const original = PqCodec.originals(vectors, this.dimension, this.distanceType);
    const data = codec.inner(original, n);
    const d = codec.innerDimension;
    const labels = coarse.assign(data, n, this.distanceType);
    const columns: Column[] = [codec.encode(residuals(data, n, d, coarse.centroids, labels), n)];
    const refine = encodeRefine(original, this.refineStorage);
    if (refine) columns.push(refine);
    this.lists.append(labels, assigned, columns);
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
   * partitions probed (in order), then every code scanned in them (id, partition, and the
   * product-quantized distance the scan ranked by) and the k results, which are exactly `search`'s
   * (re-ranked by exact distance when refineFactor is given).
   */
  explainSearch(query: Float32Array, k: number, options: ExplainOptions = {}): IvfExplanation {
    const { coarse, codec } = this.requireTrained('search');
    checkQuery(query, this.dimension);
    const recorder = new ScanRecorder();
    const found = firstRow(this.run(query, k, options, recorder), k);
    const q = codec.inner(PqCodec.originals(query, this.dimension, this.distanceType), 1);
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
    const { coarse, codec } = this.requireTrained('search');
    const nq = checkVectors(queries, this.dimension, 'queries');
    checkInteger(k, 'k', 1, MAX_K);
    const checked = checkSearchOptions(options);
    const nprobes = checkInteger(
      checked.nprobes ?? Math.min(this.numPartitions, DEFAULT_NPROBES),
      'nprobes',
      1,
      this.numPartitions,
    );
    const { refineFactor } = checked;
    if (refineFactor > 0 && this.refineStorage === 'none') {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        "refineFactor needs the full vectors: create the index with refineStorage: 'float32' or 'float16'",
      );
    }
    const original = PqCodec.originals(queries, this.dimension, this.distanceType);
    const q = codec.inner(original, nq);
    const d = codec.innerDimension;
    const MK = codec.numSubVectors * 256;
    const products = coarse.products(q, nq);
    const tables = codec.queryTables(q, nq);

    const ids = new Uint32Array(nq * k).fill(NO_ID);
    const distances = new Float32Array(nq * k).fill(Number.POSITIVE_INFINITY);
    const probes = new TopK(nprobes);
    const candidates = new TopK(refineFactor > 0 ? k * refineFactor : k);
    const refined = new TopK(k);
    const scanner = codec.codeScanner();
    let scanned = new Float32Array(256);
    for (let row = 0; row < nq; row++) {
      let qNorm = 0;
      for (let j = row * d; j < (row + 1) * d; j++) qNorm += q[j]! * q[j]!;
      const probed = coarse.probe(products, row, qNorm, this.distanceType, probes);
      recorder?.probes(probes.a, probed);
      scanner.setQuery(tables.subarray(row * MK, (row + 1) * MK));
      candidates.reset();
      for (let p = 0; p < probed; p++) {
        const l = probes.a[p]!;
        const list = this.lists.list(l);
        const size = list.ids.length;
        if (size === 0) continue;
        if (scanned.length < size) scanned = new Float32Array(size * 2);
        // L2 adds the partition's precomputed term (row l); dot has none.
        scanner.scan(list.columns[0] as Uint8Array, size, codec.termsRow(l), probes.distances[p]!, scanned);
        let bound = candidates.bound;
        for (let i = 0; i < size; i++) {
          if (scanned[i]! < bound) {
            candidates.push(scanned[i]!, l, i);
            bound = candidates.bound;
          }
        }
        recorder?.scanned(l, list.ids, scanned, size);
      }
      const found = candidates.sort();
      const out =
        refineFactor > 0
          ? rerank(
              candidates,
              found,
              refined,
              original.subarray(row * this.dimension, (row + 1) * this.dimension),
              this.dimension,
              this.distanceType,
              (l) => this.lists.list(l).columns[1] as RefineVectors,
            )
          : candidates;
      for (let c = 0; c < out.size; c++) {
        ids[row * k + c] = this.lists.list(out.a[c]!).ids[out.b[c]!]!;
        distances[row * k + c] = publicDistance(this.distanceType, out.distances[c]!);
      }
    }
    return { ids, distances };
  }

  /** An index with the same trained quantizers and no vectors: build parts separately, then `merge` them. */
  emptyCopy(): IvfPqIndex {
    const { coarse, codec } = this.requireTrained('copy');
    const copy = new IvfPqIndex({
      ...this.options,
      numPartitions: coarse.numPartitions,
      numSubVectors: codec.numSubVectors,
    });
    copy.install(
      new CoarseQuantizer(coarse.centroids, coarse.dimension),
      codec.copy(coarse.centroids),
      new InvertedLists(this.lists.specs, coarse.numPartitions),
    );
    return copy;
  }

  /**
   * Moves every vector of `other` into this index without retraining. Both must share their quantizers
   * (one made from the other with `emptyCopy`, or loaded from such files). Ids must not overlap.
   */
  merge(other: IvfPqIndex): void {
    const { coarse, codec } = this.requireTrained('merge into');
    if (!(other instanceof IvfPqIndex) || !other.coarse || !other.codec) {
      throw new ArgumentError('INVALID_ARGUMENT', 'Expected a trained IvfPqIndex to merge');
    }
    const same =
      other.dimension === this.dimension &&
      other.refineStorage === this.refineStorage &&
      sameFloats(other.coarse.centroids, coarse.centroids) &&
      other.codec.sameAs(codec);
    if (!same) {
      throw new StateError(
        'INCOMPATIBLE_INDEX',
        'Cannot merge indexes trained separately (their quantizers, metric or refine storage differ); ' +
          'create the second one with first.emptyCopy() so both share the same quantizers',
      );
    }
    this.idSet.checkDisjoint(other.idSet);
    this.lists.merge(other.lists);
    this.idSet.nextId = Math.max(this.idSet.nextId, other.idSet.nextId);
  }

  /** Every id in the index, in list order. */
  ids(): Uint32Array {
    return this.lists.ids();
  }

  /** The coarse centroids, numPartitions × the inner dimension (after any transform); a copy. */
  centroids(): Float32Array {
    return this.requireTrained('read the centroids of').coarse.centroids.slice();
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

  /** Memory held by the index, in bytes: the per-vector payload (codes, ids, refine copies) and the quantizers. */
  memoryUsage(): { codes: number; ids: number; refineVectors: number; quantizers: number; total: number } {
    const { ids, columns } = this.lists.byteLengths();
    const codes = columns[0] ?? 0;
    const refineVectors = columns[1] ?? 0;
    const codec = this.codec;
    const quantizers =
      (this.coarse?.centroids.byteLength ?? 0) +
      (codec ? (codec.pq.codebooks?.byteLength ?? 0) + codec.termsByteLength : 0) +
      (codec?.transform?.byteLength ?? 0);
    return { codes, ids, refineVectors, quantizers, total: codes + ids + refineVectors + quantizers };
  }

  describe(): IndexDescription {
    // Before training: the parameters asked for (undefined ones are chosen from the data at train).
    return describeIndex(this, {
      numPartitions: this.coarse?.numPartitions ?? this.options.numPartitions,
      ...(this.codec?.describe() ?? { numSubVectors: this.options.numSubVectors }),
      refineStorage: this.refineStorage,
      seed: this.seed,
    });
  }

  /** The index as the bytes of its file (see src/ann/format.ts). */
  toBytes(): Uint8Array {
    const { coarse, codec } = this.requireTrained('save');
    const { sizes, ids, columns } = this.lists.concatenated();
    const sections = new Map<string, SectionData>([
      ['CENT', coarse.centroids],
      ['BOOK', codec.pq.codebooks!],
      ['SIZE', sizes],
      ['IDS ', ids],
      ['CODE', columns[0]!],
    ]);
    if (columns[1]) sections.set('VECS', columns[1]);
    for (const [tag, data] of codec.transformSections()) sections.set(tag, data);
    return encodeIndex(
      'ivf-pq',
      {
        dimension: this.dimension,
        distanceType: this.distanceType,
        numPartitions: coarse.numPartitions,
        refineStorage: REFINE_STORAGES.indexOf(this.refineStorage),
        count: this.size,
        nextId: this.idSet.nextId,
        seed: this.seed,
        ...codec.headerFields(),
      },
      sections,
    );
  }

  /**
   * Reads an index from its file bytes. The lists view the bytes without copying them: changes to the
   * index never write into them, but the caller must not change them while the index is in use.
   */
  static fromBytes(bytes: Uint8Array, name = 'index file'): IvfPqIndex {
    return IvfPqIndex.fromFile(decodeIndex(bytes, name, 'ivf-pq'));
  }

  /** @internal From a decoded file of this kind (see openIndex). */
  static fromFile(file: DecodedIndexFile): IvfPqIndex {
    const f = file.fields;
    const refineStorage = REFINE_STORAGES[f.refineStorage];
    if (!refineStorage) throw damaged(file.name, `its refine storage code (${f.refineStorage})`);
    const index = new IvfPqIndex({
      dimension: f.dimension,
      numPartitions: Math.max(1, f.numPartitions),
      distanceType: distanceTypeOf(file),
      refineStorage,
      seed: f.seed,
    });
    const centroids = file.section('CENT', Float32Array, f.numPartitions * f.innerDimension);
    const codec = PqCodec.fromFile(file, f, index.distanceType, centroids);
    const sizes = file.section('SIZE', Uint32Array, f.numPartitions);
    const columns: Column[] = [file.section('CODE', Uint8Array, f.count * f.numSubVectors)];
    const refine = refineSection(file, refineStorage, f.count * f.dimension);
    if (refine) columns.push(refine);
    const lists = InvertedLists.view(
      index.columnSpecs(codec),
      sizes,
      file.section('IDS ', Uint32Array, f.count),
      columns,
    );
    if (lists.count !== f.count) throw damaged(file.name, 'its partition sizes');
    index.install(new CoarseQuantizer(centroids, f.innerDimension), codec, lists);
    index.idSet.nextId = f.nextId;
    return index;
  }

  /** Writes the index to `path` atomically (temp file, fsync, rename). */
  async save(path: string): Promise<void> {
    await fileStore().write(path, this.toBytes());
  }

  static async load(path: string): Promise<IvfPqIndex> {
    return IvfPqIndex.fromBytes(await fileStore().read(path), path);
  }
}
