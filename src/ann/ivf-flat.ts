import { ArgumentError, StateError } from '../errors.ts';
import { CoarseQuantizer } from './coarse.ts';
import { decodeIndexFile, encodeIndexFile } from './format.ts';
import { kernels } from './kernels/index.ts';
import { type Assigner, rowNorms } from './kmeans.ts';
import {
  checkDistanceType,
  DISTANCE_CODES,
  DISTANCE_TYPES,
  type DistanceType,
  normalizeRows,
  publicDistance,
} from './metric.ts';
import { fileStore } from './storage.ts';
import { TopK } from './topk.ts';
import { type BatchSearchResult, firstRow, NO_ID, type SearchResult } from './types.ts';
import { checkIds, checkInteger, checkQuery, checkVectors } from './validate.ts';

export interface IvfFlatOptions {
  dimension: number;
  /** Partitions of the coarse quantizer. Default: about √n of the training set. */
  numPartitions?: number;
  /** Distance measure; see {@link DistanceType}. Default 'l2'. */
  distanceType?: DistanceType;
  /** Seed of k-means; the same seed and data give the same index. Default 1. */
  seed?: number;
  maxIterations?: number;
  assigner?: Assigner;
}

interface FlatList {
  ids: Uint32Array;
  vectors: Float32Array;
  /** ‖x‖² of each vector, so an L2 search costs one dot product per candidate. */
  norms: Float32Array;
}

const KIND_IVF_FLAT = 2;

/**
 * IVF-Flat: partitions as in IVF-PQ, but each partition keeps its vectors whole, so the distances are
 * exact and only the partitions not probed cost recall. 4 × dimension bytes per vector.
 */
export class IvfFlatIndex {
  readonly dimension: number;
  readonly distanceType: DistanceType;
  private readonly options: IvfFlatOptions;
  private coarse: CoarseQuantizer | undefined;
  private lists: FlatList[] = [];
  private count = 0;
  private nextId = 0;

  constructor(options: IvfFlatOptions) {
    this.dimension = checkInteger(options?.dimension, 'dimension', 1, 65536);
    this.distanceType = checkDistanceType(options.distanceType);
    if (options.numPartitions !== undefined) checkInteger(options.numPartitions, 'numPartitions', 1, 1 << 20);
    this.options = options;
  }

  get size(): number {
    return this.count;
  }

  get numPartitions(): number {
    return this.coarse?.numPartitions ?? this.options.numPartitions ?? 0;
  }

  async train(vectors: Float32Array): Promise<void> {
    const n = checkVectors(vectors, this.dimension);
    const numPartitions = this.options.numPartitions ?? Math.max(1, Math.round(Math.sqrt(n)));
    if (n < numPartitions) {
      throw new ArgumentError(
        'TOO_FEW_TRAINING_VECTORS',
        `Training IVF-Flat with ${numPartitions} partitions needs at least ${numPartitions} vectors but received ${n}; pass more vectors or lower numPartitions`,
      );
    }
    const data = this.distanceType === 'cosine' ? normalizeRows(vectors, this.dimension) : vectors;
    this.coarse = await CoarseQuantizer.train(data, this.dimension, numPartitions, {
      seed: this.options.seed ?? 1,
      maxIterations: this.options.maxIterations,
      assigner: this.options.assigner,
    });
    this.lists = Array.from({ length: numPartitions }, () => ({
      ids: new Uint32Array(0),
      vectors: new Float32Array(0),
      norms: new Float32Array(0),
    }));
    this.count = 0;
  }

  private requireTrained(action: string): CoarseQuantizer {
    if (!this.coarse)
      throw new StateError(
        'NOT_TRAINED',
        `Cannot ${action} an untrained index; call await index.train(vectors) first`,
      );
    return this.coarse;
  }

  add(vectors: Float32Array, ids?: Uint32Array): Uint32Array {
    const coarse = this.requireTrained('add to');
    const d = this.dimension;
    const n = checkVectors(vectors, d);
    const assigned =
      ids === undefined ? Uint32Array.from({ length: n }, (_, i) => this.nextId + i) : checkIds(ids, n);
    if (ids) {
      const fresh = new Set<number>(ids);
      if (fresh.size !== n)
        throw new ArgumentError(
          'DUPLICATE_ID',
          'The same id appears twice in this call; every vector needs its own id',
        );
      for (const list of this.lists)
        for (const id of list.ids)
          if (fresh.has(id))
            throw new ArgumentError('DUPLICATE_ID', `Id ${id} is already in the index; remove it first`);
    }
    const data = this.distanceType === 'cosine' ? normalizeRows(vectors, d) : vectors;
    const labels = coarse.assign(data, n, this.distanceType);
    const added = new Uint32Array(this.lists.length);
    for (const l of labels) added[l]!++;
    const fill = new Uint32Array(this.lists.length);
    this.lists = this.lists.map((list, l) => {
      fill[l] = list.ids.length;
      if (added[l] === 0) return list;
      const size = list.ids.length + added[l]!;
      const next = { ids: new Uint32Array(size), vectors: new Float32Array(size * d), norms: list.norms };
      next.ids.set(list.ids);
      next.vectors.set(list.vectors);
      return next;
    });
    for (let i = 0; i < n; i++) {
      const list = this.lists[labels[i]!]!;
      const at = fill[labels[i]!]!++;
      list.ids[at] = assigned[i]!;
      list.vectors.set(data.subarray(i * d, (i + 1) * d), at * d);
      if (assigned[i]! >= this.nextId) this.nextId = assigned[i]! + 1;
    }
    for (const [l, list] of this.lists.entries()) {
      if (added[l]! > 0) list.norms = rowNorms(list.vectors, list.ids.length, d);
    }
    this.count += n;
    return assigned;
  }

  remove(ids: Uint32Array | readonly number[]): number {
    this.requireTrained('remove from');
    const gone = new Set<number>(ids);
    const d = this.dimension;
    let removed = 0;
    this.lists = this.lists.map((list) => {
      const keep: number[] = [];
      list.ids.forEach((id, i) => {
        if (!gone.has(id)) keep.push(i);
      });
      if (keep.length === list.ids.length) return list;
      removed += list.ids.length - keep.length;
      const next = {
        ids: new Uint32Array(keep.length),
        vectors: new Float32Array(keep.length * d),
        norms: new Float32Array(keep.length),
      };
      keep.forEach((i, at) => {
        next.ids[at] = list.ids[i]!;
        next.norms[at] = list.norms[i]!;
        next.vectors.set(list.vectors.subarray(i * d, (i + 1) * d), at * d);
      });
      return next;
    });
    this.count -= removed;
    return removed;
  }

  search(query: Float32Array, k: number, options: { nprobes?: number } = {}): SearchResult {
    checkQuery(query, this.dimension);
    return firstRow(this.searchBatch(query, k, options), k);
  }

  searchBatch(queries: Float32Array, k: number, options: { nprobes?: number } = {}): BatchSearchResult {
    const coarse = this.requireTrained('search');
    const d = this.dimension;
    const nq = checkVectors(queries, d, 'queries');
    checkInteger(k, 'k', 1, 100_000);
    const nprobes = checkInteger(
      options.nprobes ?? Math.min(this.numPartitions, 20),
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
      heap.reset();
      for (let p = 0; p < probed; p++) {
        const l = probes.a[p]!;
        const list = this.lists[l]!;
        const size = list.ids.length;
        if (size === 0) continue;
        if (scratch.length < size) scratch = new Float32Array(size);
        K.gemmNT({ source: list.vectors }, size, { source: qi }, 1, d, scratch, 1);
        for (let i = 0; i < size; i++) {
          const ip = scratch[i]!;
          let dist: number;
          if (dot) dist = -ip;
          else dist = Math.max(0, qNorm + list.norms[i]! - 2 * ip);
          if (dist < heap.bound) heap.push(dist, l, i);
        }
      }
      const found = heap.sort();
      for (let c = 0; c < found; c++) {
        ids[row * k + c] = this.lists[heap.a[c]!]!.ids[heap.b[c]!]!;
        distances[row * k + c] = publicDistance(this.distanceType, heap.distances[c]!);
      }
    }
    return { ids, distances };
  }

  toBytes(): Uint8Array {
    const coarse = this.requireTrained('save');
    const d = this.dimension;
    const sizes = Uint32Array.from(this.lists, (l) => l.ids.length);
    const ids = new Uint32Array(this.count);
    const vectors = new Float32Array(this.count * d);
    let at = 0;
    for (const list of this.lists) {
      ids.set(list.ids, at);
      vectors.set(list.vectors, at * d);
      at += list.ids.length;
    }
    return encodeIndexFile(
      {
        kind: KIND_IVF_FLAT,
        dimension: d,
        innerDimension: d,
        distanceType: DISTANCE_CODES[this.distanceType],
        numPartitions: coarse.numPartitions,
        numSubVectors: 0,
        numBits: 0,
        refineStorage: 0,
        transform: 0,
        count: this.count,
        nextId: this.nextId,
        seed: this.options.seed ?? 1,
      },
      new Map<string, Float32Array | Uint32Array>([
        ['CENT', coarse.centroids],
        ['SIZE', sizes],
        ['IDS ', ids],
        ['VECS', vectors],
      ]),
    );
  }

  static fromBytes(bytes: Uint8Array, name = 'index file'): IvfFlatIndex {
    const file = decodeIndexFile(bytes, name);
    const f = file.fields;
    if (f.kind !== KIND_IVF_FLAT) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `${name} holds another kind of index (kind ${f.kind}); load it with its own class`,
      );
    }
    const index = new IvfFlatIndex({
      dimension: f.dimension,
      distanceType: DISTANCE_TYPES[f.distanceType] ?? 'l2',
      seed: f.seed,
    });
    index.coarse = new CoarseQuantizer(file.section('CENT', Float32Array), f.dimension);
    const sizes = file.section('SIZE', Uint32Array);
    const ids = file.section('IDS ', Uint32Array);
    const vectors = file.section('VECS', Float32Array);
    let at = 0;
    index.lists = Array.from(sizes, (size) => {
      const listVectors = vectors.subarray(at * f.dimension, (at + size) * f.dimension);
      const list = {
        ids: ids.subarray(at, at + size),
        vectors: listVectors,
        norms: rowNorms(listVectors, size, f.dimension),
      };
      at += size;
      return list;
    });
    index.count = f.count;
    index.nextId = f.nextId;
    return index;
  }

  async save(path: string): Promise<void> {
    await fileStore().write(path, this.toBytes());
  }

  static async load(path: string): Promise<IvfFlatIndex> {
    return IvfFlatIndex.fromBytes(await fileStore().read(path), path);
  }
}
