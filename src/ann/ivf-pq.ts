import { ArgumentError, StateError } from '../errors.ts';
import { CoarseQuantizer } from './coarse.ts';
import { float16Table, toFloat16Bits } from './float16.ts';
import { decodeIndexFile, encodeIndexFile, type SectionData } from './format.ts';
import { type CodeScanner, kernels } from './kernels/index.ts';
import type { Assigner } from './kmeans.ts';
import {
  checkDistanceType,
  DISTANCE_CODES,
  DISTANCE_TYPES,
  type DistanceType,
  normalizeRows,
  publicDistance,
} from './metric.ts';
import { defaultNumSubVectors, ProductQuantizer } from './pq.ts';
import { fileStore } from './storage.ts';
import { TopK } from './topk.ts';
import {
  loadTransform,
  TRANSFORM_CODES,
  type TransformOptions,
  trainTransform,
  type VectorTransform,
} from './transform.ts';
import { type BatchSearchResult, firstRow, NO_ID, type SearchResult } from './types.ts';
import { checkIds, checkInteger, checkOneOf, checkQuery, checkVectors } from './validate.ts';

export type RefineStorage = 'none' | 'float32' | 'float16';

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
  /** k-means iterations at most, for the coarse quantizer and every sub-quantizer. Default 25. */
  maxIterations?: number;
  /** Spreads k-means over threads; see `createParallelAssigner` (Node). Not saved with the index. */
  assigner?: Assigner;
}

export interface IvfPqSearchOptions {
  /**
   * Partitions to visit, 1 to numPartitions. More finds more true neighbours and costs time in proportion.
   * Default: min(numPartitions, 20).
   */
  nprobes?: number;
  /**
   * Re-rank the best k × refineFactor candidates by their exact distance (needs `refineStorage`). 0 (the
   * default) returns the product-quantized distances; 2 to 10 recovers most of the recall PQ loses.
   */
  refineFactor?: number;
}

interface InvertedList {
  ids: Uint32Array;
  codes: Uint8Array;
  vectors: Float32Array | Uint16Array | undefined;
}

const KIND_IVF_PQ = 3;
const MAX_K = 100_000;

/**
 * IVF-PQ: vectors are partitioned by a coarse k-means quantizer; within its partition each vector is stored
 * as the product-quantized code of its residual (the vector minus its centroid). A search visits the
 * `nprobes` nearest partitions and ranks their codes with lookup tables. L2 uses faiss's precomputed
 * tables: ‖q − c − r‖² = ‖q − c‖² + (‖r‖² + 2⟨c, r⟩) − 2⟨q, r⟩, where the middle term is tabulated per
 * partition at training time and the last computed once per query, so more probes cost lookups only.
 */
export class IvfPqIndex {
  readonly dimension: number;
  readonly distanceType: DistanceType;
  readonly refineStorage: RefineStorage;
  readonly seed: number;
  private readonly options: IvfPqOptions;
  private transform: VectorTransform | undefined;
  private coarse: CoarseQuantizer | undefined;
  private pq: ProductQuantizer | undefined;
  /**
   * Ranks codes. For l2 and cosine it owns the partition terms, numPartitions × numSubVectors × 256:
   * ‖r‖² + 2⟨c, r⟩ per sub-space (kept only there, as they can be large: 16 MB for IVF1024,PQ16).
   */
  private scanner: CodeScanner | undefined;
  private lists: InvertedList[] = [];
  private count = 0;
  private nextId = 0;

  constructor(options: IvfPqOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ArgumentError('INVALID_ARGUMENT', 'Expected an options object such as { dimension: 128 }');
    }
    checkInteger(options.dimension, 'dimension', 1, 65536);
    if (options.numPartitions !== undefined) checkInteger(options.numPartitions, 'numPartitions', 1, 1 << 20);
    if (options.numBits !== undefined && options.numBits !== 8) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Expected numBits to be 8 but received ${options.numBits}; ris stores one byte per sub-vector code`,
      );
    }
    this.dimension = options.dimension;
    this.distanceType = checkDistanceType(options.distanceType);
    this.refineStorage = checkOneOf(options.refineStorage ?? 'none', 'refineStorage', [
      'none',
      'float32',
      'float16',
    ]);
    this.seed = options.seed ?? 1;
    this.options = options;
    if (options.numSubVectors !== undefined) {
      // Fail now rather than after training if it cannot divide the dimension.
      new ProductQuantizer({
        dimension: options.transform?.outputDimension ?? options.dimension,
        numSubVectors: options.numSubVectors,
      });
    }
  }

  /** Number of vectors in the index. */
  get size(): number {
    return this.count;
  }

  get trained(): boolean {
    return this.pq !== undefined;
  }

  get numPartitions(): number {
    return this.coarse?.numPartitions ?? this.options.numPartitions ?? 0;
  }

  get numSubVectors(): number {
    return this.pq?.numSubVectors ?? this.options.numSubVectors ?? 0;
  }

  /**
   * Learns the transform (if any), the coarse centroids and the sub-space codebooks from `vectors`
   * (n × dimension, row-major). Does not add them: call `add` for that.
   */
  async train(vectors: Float32Array): Promise<void> {
    const n = checkVectors(vectors, this.dimension);
    const numPartitions = this.options.numPartitions ?? Math.max(1, Math.round(Math.sqrt(n)));
    const needed = Math.max(numPartitions, 256);
    if (n < needed) {
      throw new ArgumentError(
        'TOO_FEW_TRAINING_VECTORS',
        `Training IVF-PQ with ${numPartitions} partitions and 8-bit codes needs at least ${needed} vectors but received ${n}; ` +
          'pass more training vectors (ideally 40 or more per partition) or lower numPartitions',
      );
    }
    const common = {
      seed: this.seed,
      maxIterations: this.options.maxIterations,
      assigner: this.options.assigner,
    };
    let data = this.distanceType === 'cosine' ? normalizeRows(vectors, this.dimension) : vectors;
    this.transform = this.options.transform
      ? await trainTransform(this.options.transform, data, this.dimension, this.options.numSubVectors, common)
      : undefined;
    if (this.transform) data = this.transform.apply(data, n);
    const d = this.innerDimension;
    const numSubVectors = this.options.numSubVectors ?? defaultNumSubVectors(d);
    const pq = new ProductQuantizer({ dimension: d, numSubVectors });
    const coarse = await CoarseQuantizer.train(data, d, numPartitions, common);
    const labels = coarse.assign(data, n, this.distanceType);
    await pq.train(residuals(data, n, d, coarse.centroids, labels), common);
    this.install(coarse, pq);
    this.lists = Array.from({ length: numPartitions }, () => this.emptyList());
    this.count = 0;
  }

  private get innerDimension(): number {
    return this.transform?.outputDimension ?? this.dimension;
  }

  private install(coarse: CoarseQuantizer, pq: ProductQuantizer): void {
    this.coarse?.dispose();
    this.pq?.dispose();
    this.coarse = coarse;
    this.pq = pq;
    this.scanner?.dispose();
    const terms = this.distanceType === 'dot' ? undefined : computePartitionTerms(coarse, pq);
    this.scanner = kernels().codeScanner(pq.numSubVectors, terms);
  }

  private emptyList(): InvertedList {
    return {
      ids: new Uint32Array(0),
      codes: new Uint8Array(0),
      vectors:
        this.refineStorage === 'float32'
          ? new Float32Array(0)
          : this.refineStorage === 'float16'
            ? new Uint16Array(0)
            : undefined,
    };
  }

  private requireTrained(action: string): { coarse: CoarseQuantizer; pq: ProductQuantizer } {
    if (!this.coarse || !this.pq) {
      throw new StateError(
        'NOT_TRAINED',
        `Cannot ${action} an untrained index; call await index.train(vectors) first`,
      );
    }
    return { coarse: this.coarse, pq: this.pq };
  }

  /**
   * Adds n vectors (n × dimension, row-major) with the given ids, or with the next free ids
   * (one more than the largest so far). Ids must not be in the index already. Returns the ids.
   */
  add(vectors: Float32Array, ids?: Uint32Array): Uint32Array {
    const { coarse, pq } = this.requireTrained('add to');
    const n = checkVectors(vectors, this.dimension);
    const assigned = ids === undefined ? this.freshIds(n) : this.checkNewIds(checkIds(ids, n));
    if (n === 0) return assigned;
    const original = this.distanceType === 'cosine' ? normalizeRows(vectors, this.dimension) : vectors;
    const data = this.transform ? this.transform.apply(original, n) : original;
    const d = this.innerDimension;
    const labels = coarse.assign(data, n, this.distanceType);
    const codes = pq.encode(residuals(data, n, d, coarse.centroids, labels), n);
    this.append(labels, assigned, codes, original);
    return assigned;
  }

  private freshIds(n: number): Uint32Array {
    if (this.nextId + n > NO_ID) {
      throw new ArgumentError('OUT_OF_RANGE', 'The index ran out of 32-bit ids; pass explicit ids to add()');
    }
    const ids = new Uint32Array(n);
    for (let i = 0; i < n; i++) ids[i] = this.nextId + i;
    return ids;
  }

  private checkNewIds(ids: Uint32Array): Uint32Array {
    const fresh = new Set<number>();
    for (const id of ids) {
      if (id === NO_ID)
        throw new ArgumentError('OUT_OF_RANGE', `Id ${NO_ID} is reserved for "no result"; use a smaller id`);
      if (fresh.has(id)) throw duplicateId(id, 'twice in this call');
      fresh.add(id);
    }
    for (const list of this.lists)
      for (const id of list.ids) if (fresh.has(id)) throw duplicateId(id, 'already in the index');
    return ids;
  }

  /** Appends entries to their lists, each list reallocated once to its exact new size. */
  private append(
    labels: Int32Array,
    ids: Uint32Array,
    codes: Uint8Array,
    vectors: Float32Array | undefined,
  ): void {
    const M = this.pq!.numSubVectors;
    const D = this.dimension;
    const L = this.lists.length;
    const added = new Uint32Array(L);
    for (const l of labels) added[l]!++;
    const fill = new Uint32Array(L);
    for (let l = 0; l < L; l++) {
      if (added[l] === 0) continue;
      const old = this.lists[l]!;
      const size = old.ids.length + added[l]!;
      const next: InvertedList = {
        ids: new Uint32Array(size),
        codes: new Uint8Array(size * M),
        vectors: undefined,
      };
      next.ids.set(old.ids);
      next.codes.set(old.codes);
      if (old.vectors) {
        next.vectors =
          old.vectors instanceof Float32Array ? new Float32Array(size * D) : new Uint16Array(size * D);
        next.vectors.set(old.vectors);
      }
      this.lists[l] = next;
      fill[l] = old.ids.length;
    }
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i]!;
      const list = this.lists[l]!;
      const at = fill[l]!++;
      list.ids[at] = ids[i]!;
      list.codes.set(codes.subarray(i * M, (i + 1) * M), at * M);
      if (list.vectors instanceof Float32Array)
        list.vectors.set(vectors!.subarray(i * D, (i + 1) * D), at * D);
      else if (list.vectors)
        for (let j = 0; j < D; j++) list.vectors[at * D + j] = toFloat16Bits(vectors![i * D + j]!);
      if (ids[i]! >= this.nextId) this.nextId = ids[i]! + 1;
    }
    this.count += labels.length;
  }

  /** Removes the vectors with these ids (ids not in the index are ignored); returns how many were removed. */
  remove(ids: Uint32Array | readonly number[]): number {
    this.requireTrained('remove from');
    if (!(ids instanceof Uint32Array) && !Array.isArray(ids)) {
      throw new ArgumentError('INVALID_ARGUMENT', 'Expected ids to be a Uint32Array or an array of numbers');
    }
    const gone = new Set<number>(ids);
    const M = this.pq!.numSubVectors;
    const D = this.dimension;
    let removed = 0;
    this.lists = this.lists.map((list) => {
      let keep = 0;
      for (const id of list.ids) if (!gone.has(id)) keep++;
      if (keep === list.ids.length) return list;
      removed += list.ids.length - keep;
      const next: InvertedList = {
        ids: new Uint32Array(keep),
        codes: new Uint8Array(keep * M),
        vectors: list.vectors
          ? new (list.vectors.constructor as Float32ArrayConstructor)(keep * D)
          : undefined,
      };
      let at = 0;
      for (let i = 0; i < list.ids.length; i++) {
        if (gone.has(list.ids[i]!)) continue;
        next.ids[at] = list.ids[i]!;
        next.codes.set(list.codes.subarray(i * M, (i + 1) * M), at * M);
        next.vectors?.set(list.vectors!.subarray(i * D, (i + 1) * D), at * D);
        at++;
      }
      return next;
    });
    this.count -= removed;
    return removed;
  }

  /** The k nearest vectors to `query`, nearest first. Fewer than k when the probed partitions hold fewer. */
  search(query: Float32Array, k: number, options: IvfPqSearchOptions = {}): SearchResult {
    this.requireTrained('search');
    checkQuery(query, this.dimension);
    return firstRow(this.searchBatch(query, k, options), k);
  }

  /**
   * Searches nq queries at once (nq × dimension, row-major): row i of the result is
   * ids[i·k … i·k + k), padded with NO_ID and Infinity where fewer than k were found.
   */
  searchBatch(queries: Float32Array, k: number, options: IvfPqSearchOptions = {}): BatchSearchResult {
    const { coarse, pq } = this.requireTrained('search');
    const nq = checkVectors(queries, this.dimension, 'queries');
    checkInteger(k, 'k', 1, MAX_K);
    const nprobes = checkInteger(
      options.nprobes ?? Math.min(this.numPartitions, 20),
      'nprobes',
      1,
      this.numPartitions,
    );
    const refineFactor = checkInteger(options.refineFactor ?? 0, 'refineFactor', 0, 1000);
    if (refineFactor > 0 && this.refineStorage === 'none') {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        "refineFactor needs the full vectors: create the index with refineStorage: 'float32' or 'float16'",
      );
    }
    const original = this.distanceType === 'cosine' ? normalizeRows(queries, this.dimension) : queries;
    const q = this.transform ? this.transform.apply(original, nq) : original;
    const d = this.innerDimension;
    const M = pq.numSubVectors;
    const K = pq.numCodes;
    const products = coarse.products(q, nq);
    const tables = pq.innerProductTables(q, nq);
    const dot = this.distanceType === 'dot';
    // One lookup table per query: −2⟨q_m, r⟩ for L2, −⟨q_m, r⟩ for dot.
    const scale = dot ? -1 : -2;
    for (let i = 0; i < tables.length; i++) tables[i] = tables[i]! * scale;

    const ids = new Uint32Array(nq * k).fill(NO_ID);
    const distances = new Float32Array(nq * k).fill(Number.POSITIVE_INFINITY);
    const probes = new TopK(nprobes);
    const candidates = new TopK(refineFactor > 0 ? k * refineFactor : k);
    const refined = refineFactor > 0 ? new TopK(k) : candidates;
    const scanner = this.scanner!;
    let scanned = new Float32Array(256);
    for (let row = 0; row < nq; row++) {
      let qNorm = 0;
      for (let j = row * d; j < (row + 1) * d; j++) qNorm += q[j]! * q[j]!;
      const probed = coarse.probe(products, row, qNorm, this.distanceType, probes);
      scanner.setQuery(tables.subarray(row * M * K, (row + 1) * M * K));
      candidates.reset();
      for (let p = 0; p < probed; p++) {
        const l = probes.a[p]!;
        const size = this.lists[l]!.ids.length;
        if (size === 0) continue;
        if (scanned.length < size) scanned = new Float32Array(size * 2);
        // L2 adds the partition's precomputed term (row l); dot has none.
        scanner.scan(this.lists[l]!.codes, size, dot ? -1 : l, probes.distances[p]!, scanned);
        let bound = candidates.bound;
        for (let i = 0; i < size; i++) {
          if (scanned[i]! < bound) {
            candidates.push(scanned[i]!, l, i);
            bound = candidates.bound;
          }
        }
      }
      const found = candidates.sort();
      let out = candidates;
      if (refineFactor > 0) {
        refined.reset();
        const oq = original.subarray(row * this.dimension, (row + 1) * this.dimension);
        for (let c = 0; c < found; c++) {
          const list = this.lists[candidates.a[c]!]!;
          refined.push(
            exactDistance(oq, list.vectors!, candidates.b[c]!, this.dimension, this.distanceType),
            candidates.a[c]!,
            candidates.b[c]!,
          );
        }
        refined.sort();
        out = refined;
      }
      for (let c = 0; c < out.size; c++) {
        ids[row * k + c] = this.lists[out.a[c]!]!.ids[out.b[c]!]!;
        distances[row * k + c] = publicDistance(this.distanceType, out.distances[c]!);
      }
    }
    return { ids, distances };
  }

  /** An index with the same trained quantizers and no vectors: build parts separately, then `merge` them. */
  emptyCopy(): IvfPqIndex {
    const { coarse, pq } = this.requireTrained('copy');
    const copy = new IvfPqIndex({
      ...this.options,
      numPartitions: coarse.numPartitions,
      numSubVectors: pq.numSubVectors,
    });
    copy.transform = this.transform;
    const pq2 = new ProductQuantizer({ dimension: pq.dimension, numSubVectors: pq.numSubVectors });
    pq2.setCodebooks(pq.codebooks!);
    copy.install(new CoarseQuantizer(coarse.centroids, coarse.dimension), pq2);
    copy.lists = Array.from({ length: coarse.numPartitions }, () => copy.emptyList());
    return copy;
  }

  /**
   * Moves every vector of `other` into this index without retraining. Both must share their quantizers
   * (one made from the other with `emptyCopy`, or loaded from such files). Ids must not overlap.
   */
  merge(other: IvfPqIndex): void {
    const { coarse, pq } = this.requireTrained('merge into');
    if (!(other instanceof IvfPqIndex) || !other.coarse || !other.pq) {
      throw new ArgumentError('INVALID_ARGUMENT', 'Expected a trained IvfPqIndex to merge');
    }
    const same =
      other.dimension === this.dimension &&
      other.distanceType === this.distanceType &&
      other.refineStorage === this.refineStorage &&
      sameFloats(other.coarse.centroids, coarse.centroids) &&
      sameFloats(other.pq.codebooks!, pq.codebooks!) &&
      sameTransform(other.transform, this.transform);
    if (!same) {
      throw new StateError(
        'INCOMPATIBLE_INDEX',
        'Cannot merge indexes trained separately (their quantizers, metric or refine storage differ); ' +
          'create the second one with first.emptyCopy() so both share the same quantizers',
      );
    }
    const mine = new Set<number>();
    for (const list of this.lists) for (const id of list.ids) mine.add(id);
    for (const list of other.lists)
      for (const id of list.ids) if (mine.has(id)) throw duplicateId(id, 'in both indexes');
    const D = this.dimension;
    const M = pq.numSubVectors;
    this.lists = this.lists.map((list, l) => {
      const extra = other.lists[l]!;
      if (extra.ids.length === 0) return list;
      const size = list.ids.length + extra.ids.length;
      const next: InvertedList = {
        ids: new Uint32Array(size),
        codes: new Uint8Array(size * M),
        vectors: undefined,
      };
      next.ids.set(list.ids);
      next.ids.set(extra.ids, list.ids.length);
      next.codes.set(list.codes);
      next.codes.set(extra.codes, list.codes.length);
      if (list.vectors && extra.vectors) {
        next.vectors = new (list.vectors.constructor as Float32ArrayConstructor)(size * D);
        next.vectors.set(list.vectors);
        next.vectors.set(extra.vectors, list.vectors.length);
      }
      return next;
    });
    this.count += other.count;
    this.nextId = Math.max(this.nextId, other.nextId);
  }

  /** Every id in the index, in list order. */
  ids(): Uint32Array {
    const out = new Uint32Array(this.count);
    let at = 0;
    for (const list of this.lists) {
      out.set(list.ids, at);
      at += list.ids.length;
    }
    return out;
  }

  /** Memory held by the index, in bytes: the per-vector payload (codes, ids, refine copies) and the quantizers. */
  memoryUsage(): { codes: number; ids: number; refineVectors: number; quantizers: number; total: number } {
    let codes = 0;
    let ids = 0;
    let refineVectors = 0;
    for (const list of this.lists) {
      codes += list.codes.byteLength;
      ids += list.ids.byteLength;
      refineVectors += list.vectors?.byteLength ?? 0;
    }
    const quantizers =
      (this.coarse?.centroids.byteLength ?? 0) +
      (this.pq?.codebooks?.byteLength ?? 0) +
      (this.distanceType === 'dot'
        ? 0
        : (this.coarse?.numPartitions ?? 0) * (this.pq?.numSubVectors ?? 0) * 256 * 4) +
      (this.transform?.byteLength ?? 0);
    return { codes, ids, refineVectors, quantizers, total: codes + ids + refineVectors + quantizers };
  }

  /** The index as the bytes of its file (see src/ann/format.ts). */
  toBytes(): Uint8Array {
    const { coarse, pq } = this.requireTrained('save');
    const sizes = new Uint32Array(this.lists.length);
    const ids = new Uint32Array(this.count);
    const codes = new Uint8Array(this.count * pq.numSubVectors);
    const vectors =
      this.refineStorage === 'float32'
        ? new Float32Array(this.count * this.dimension)
        : this.refineStorage === 'float16'
          ? new Uint16Array(this.count * this.dimension)
          : undefined;
    let at = 0;
    this.lists.forEach((list, l) => {
      sizes[l] = list.ids.length;
      ids.set(list.ids, at);
      codes.set(list.codes, at * pq.numSubVectors);
      if (vectors && list.vectors) vectors.set(list.vectors, at * this.dimension);
      at += list.ids.length;
    });
    const sections = new Map<string, SectionData>([
      ['CENT', coarse.centroids],
      ['BOOK', pq.codebooks!],
      ['SIZE', sizes],
      ['IDS ', ids],
      ['CODE', codes],
    ]);
    if (vectors) sections.set('VECS', vectors);
    if (this.transform) for (const [tag, data] of this.transform.sections()) sections.set(tag, data);
    return encodeIndexFile(
      {
        kind: KIND_IVF_PQ,
        dimension: this.dimension,
        innerDimension: this.innerDimension,
        distanceType: DISTANCE_CODES[this.distanceType],
        numPartitions: coarse.numPartitions,
        numSubVectors: pq.numSubVectors,
        numBits: pq.numBits,
        refineStorage: ['none', 'float32', 'float16'].indexOf(this.refineStorage),
        transform: this.transform ? TRANSFORM_CODES[this.transform.type] : 0,
        count: this.count,
        nextId: this.nextId,
        seed: this.seed,
      },
      sections,
    );
  }

  /** Reads an index from its file bytes; the lists view the bytes without copying them. */
  static fromBytes(bytes: Uint8Array, name = 'index file'): IvfPqIndex {
    const file = decodeIndexFile(bytes, name);
    const f = file.fields;
    if (f.kind !== KIND_IVF_PQ) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `${name} holds another kind of index (kind ${f.kind}); load it with its own class`,
      );
    }
    const refineStorage = (['none', 'float32', 'float16'] as const)[f.refineStorage] ?? 'none';
    const index = new IvfPqIndex({
      dimension: f.dimension,
      numPartitions: f.numPartitions,
      numSubVectors: f.numSubVectors,
      distanceType: DISTANCE_TYPES[f.distanceType] ?? 'l2',
      refineStorage,
      seed: f.seed,
    });
    index.transform = loadTransform(f.transform, f.dimension, f.innerDimension, file);
    const pq = new ProductQuantizer({
      dimension: f.innerDimension,
      numSubVectors: f.numSubVectors,
      numBits: f.numBits,
    });
    pq.setCodebooks(file.section('BOOK', Float32Array));
    index.install(new CoarseQuantizer(file.section('CENT', Float32Array), f.innerDimension), pq);
    const sizes = file.section('SIZE', Uint32Array);
    const ids = file.section('IDS ', Uint32Array);
    const codes = file.section('CODE', Uint8Array);
    const vectors =
      refineStorage === 'float32'
        ? file.section('VECS', Float32Array)
        : refineStorage === 'float16'
          ? file.section('VECS', Uint16Array)
          : undefined;
    const M = f.numSubVectors;
    const D = f.dimension;
    let at = 0;
    index.lists = Array.from(sizes, (size) => {
      const list: InvertedList = {
        ids: ids.subarray(at, at + size),
        codes: codes.subarray(at * M, (at + size) * M),
        vectors: vectors?.subarray(at * D, (at + size) * D),
      };
      at += size;
      return list;
    });
    index.count = f.count;
    index.nextId = f.nextId;
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

function residuals(
  data: Float32Array,
  n: number,
  d: number,
  centroids: Float32Array,
  labels: Int32Array,
): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = labels[i]! * d;
    for (let j = 0; j < d; j++) out[i * d + j] = data[i * d + j]! - centroids[c + j]!;
  }
  return out;
}

/** For L2: T[l][m][c] = ‖r_mc‖² + 2⟨c_l,m, r_mc⟩, the part of ‖q − c_l − r‖² that does not depend on q. */
function computePartitionTerms(coarse: CoarseQuantizer, pq: ProductQuantizer): Float32Array {
  const L = coarse.numPartitions;
  const M = pq.numSubVectors;
  const K = pq.numCodes;
  const terms = pq.innerProductTables(coarse.centroids, L);
  const norms = pq.codebookNorms();
  for (let l = 0; l < L; l++) {
    for (let t = 0; t < M * K; t++) terms[l * M * K + t] = 2 * terms[l * M * K + t]! + norms[t]!;
  }
  return terms;
}

/** Internal distance (see metric.ts) between a query and stored vector `row`. */
function exactDistance(
  q: Float32Array,
  vectors: Float32Array | Uint16Array,
  row: number,
  d: number,
  type: DistanceType,
): number {
  const o = row * d;
  let s = 0;
  if (vectors instanceof Float32Array) {
    if (type === 'dot') for (let j = 0; j < d; j++) s -= q[j]! * vectors[o + j]!;
    else
      for (let j = 0; j < d; j++) {
        const t = q[j]! - vectors[o + j]!;
        s += t * t;
      }
  } else {
    const f16 = float16Table;
    if (type === 'dot') for (let j = 0; j < d; j++) s -= q[j]! * f16[vectors[o + j]!]!;
    else
      for (let j = 0; j < d; j++) {
        const t = q[j]! - f16[vectors[o + j]!]!;
        s += t * t;
      }
  }
  return s;
}

function sameFloats(a: Float32Array, b: Float32Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameTransform(a: VectorTransform | undefined, b: VectorTransform | undefined): boolean {
  if (!a || !b) return a === b;
  const sa = a.sections();
  const sb = b.sections();
  if (a.type !== b.type || sa.size !== sb.size) return false;
  for (const [tag, data] of sa) {
    const other = sb.get(tag);
    if (!other || !sameFloats(data as Float32Array, other as Float32Array)) return false;
  }
  return true;
}

function duplicateId(id: number, where: string): ArgumentError {
  return new ArgumentError(
    'DUPLICATE_ID',
    `Id ${id} is ${where}; every vector needs its own id (remove the old one first)`,
  );
}
