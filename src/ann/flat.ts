import { ArgumentError } from '../errors.ts';
import { decodeIndexFile, encodeIndexFile, type SectionData } from './format.ts';
import { kernels, type ResidentMatrix } from './kernels/index.ts';
import { rowNorms } from './kmeans.ts';
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

export interface FlatOptions {
  dimension: number;
  /** Distance measure; see {@link DistanceType}. Default 'l2'. */
  distanceType?: DistanceType;
}

const KIND_FLAT = 1;
/** Query rows per block of a batch search, so the product matrix stays within a few MB. */
const PRODUCT_BUDGET = 1 << 22;

/**
 * Exact search: every query is compared with every vector. The ground truth the approximate indexes are
 * measured against, and the right choice below a few thousand vectors.
 */
export class FlatIndex {
  readonly dimension: number;
  readonly distanceType: DistanceType;
  private vectors: Float32Array;
  private storedIds: Uint32Array;
  private norms: Float32Array;
  private count = 0;
  private nextId = 0;
  private resident: ResidentMatrix | undefined;

  constructor(options: FlatOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ArgumentError('INVALID_ARGUMENT', 'Expected an options object such as { dimension: 128 }');
    }
    this.dimension = checkInteger(options.dimension, 'dimension', 1, 65536);
    this.distanceType = checkDistanceType(options.distanceType);
    this.vectors = new Float32Array(0);
    this.storedIds = new Uint32Array(0);
    this.norms = new Float32Array(0);
  }

  get size(): number {
    return this.count;
  }

  /** Exact search needs no training; present so every index can be driven the same way. */
  async train(_vectors?: Float32Array): Promise<void> {}

  add(vectors: Float32Array, ids?: Uint32Array): Uint32Array {
    const d = this.dimension;
    const n = checkVectors(vectors, d);
    const assigned =
      ids === undefined ? Uint32Array.from({ length: n }, (_, i) => this.nextId + i) : checkIds(ids, n);
    if (ids) {
      const existing = new Set(this.storedIds.subarray(0, this.count));
      const fresh = new Set<number>();
      for (const id of ids) {
        if (existing.has(id) || fresh.has(id)) {
          throw new ArgumentError(
            'DUPLICATE_ID',
            `Id ${id} is already in the index; every vector needs its own id`,
          );
        }
        fresh.add(id);
      }
    }
    const data = this.distanceType === 'cosine' ? normalizeRows(vectors, d) : vectors;
    this.reserve(this.count + n);
    this.vectors.set(data, this.count * d);
    this.storedIds.set(assigned, this.count);
    this.norms.set(rowNorms(data, n, d), this.count);
    this.count += n;
    for (const id of assigned) if (id >= this.nextId) this.nextId = id + 1;
    this.invalidate();
    return assigned;
  }

  private reserve(capacity: number): void {
    if (capacity * this.dimension <= this.vectors.length) return;
    const grown = Math.max(capacity, Math.ceil(this.storedIds.length * 1.5), 16);
    const vectors = new Float32Array(grown * this.dimension);
    vectors.set(this.vectors.subarray(0, this.count * this.dimension));
    const ids = new Uint32Array(grown);
    ids.set(this.storedIds.subarray(0, this.count));
    const norms = new Float32Array(grown);
    norms.set(this.norms.subarray(0, this.count));
    this.vectors = vectors;
    this.storedIds = ids;
    this.norms = norms;
  }

  private invalidate(): void {
    this.resident?.dispose();
    this.resident = undefined;
  }

  remove(ids: Uint32Array | readonly number[]): number {
    const gone = new Set<number>(ids);
    const d = this.dimension;
    let at = 0;
    for (let i = 0; i < this.count; i++) {
      if (gone.has(this.storedIds[i]!)) continue;
      if (at !== i) {
        this.storedIds[at] = this.storedIds[i]!;
        this.norms[at] = this.norms[i]!;
        this.vectors.copyWithin(at * d, i * d, (i + 1) * d);
      }
      at++;
    }
    const removed = this.count - at;
    this.count = at;
    if (removed > 0) this.invalidate();
    return removed;
  }

  search(query: Float32Array, k: number): SearchResult {
    checkQuery(query, this.dimension);
    return firstRow(this.searchBatch(query, k), k);
  }

  searchBatch(queries: Float32Array, k: number): BatchSearchResult {
    const d = this.dimension;
    const nq = checkVectors(queries, d, 'queries');
    checkInteger(k, 'k', 1, 100_000);
    const q = this.distanceType === 'cosine' ? normalizeRows(queries, d) : queries;
    const ids = new Uint32Array(nq * k).fill(NO_ID);
    const distances = new Float32Array(nq * k).fill(Number.POSITIVE_INFINITY);
    const n = this.count;
    if (n === 0) return { ids, distances };
    const K = kernels();
    this.resident ??= K.resident(this.vectors.subarray(0, n * d));
    const block = Math.max(1, Math.floor(PRODUCT_BUDGET / n));
    const products = new Float32Array(Math.min(block, nq) * n);
    const heap = new TopK(k);
    const dot = this.distanceType === 'dot';
    for (let q0 = 0; q0 < nq; q0 += block) {
      const rows = Math.min(block, nq - q0);
      K.gemmNT({ source: q, offset: q0 * d }, rows, { source: this.resident }, n, d, products);
      for (let r = 0; r < rows; r++) {
        let qNorm = 0;
        for (let j = (q0 + r) * d; j < (q0 + r + 1) * d; j++) qNorm += q[j]! * q[j]!;
        heap.reset();
        const base = r * n;
        for (let i = 0; i < n; i++) {
          const ip = products[base + i]!;
          const dist = dot ? -ip : Math.max(0, qNorm + this.norms[i]! - 2 * ip);
          if (dist < heap.bound) heap.push(dist, i, 0);
        }
        const found = heap.sort();
        for (let c = 0; c < found; c++) {
          ids[(q0 + r) * k + c] = this.storedIds[heap.a[c]!]!;
          distances[(q0 + r) * k + c] = publicDistance(this.distanceType, heap.distances[c]!);
        }
      }
    }
    return { ids, distances };
  }

  /** Every id in the index, in insertion order. */
  ids(): Uint32Array {
    return this.storedIds.slice(0, this.count);
  }

  memoryUsage(): { vectors: number; ids: number; total: number } {
    const vectors = this.count * this.dimension * 4;
    const ids = this.count * 4;
    return { vectors, ids, total: vectors + ids + this.count * 4 };
  }

  toBytes(): Uint8Array {
    return encodeIndexFile(
      {
        kind: KIND_FLAT,
        dimension: this.dimension,
        innerDimension: this.dimension,
        distanceType: DISTANCE_CODES[this.distanceType],
        numPartitions: 0,
        numSubVectors: 0,
        numBits: 0,
        refineStorage: 0,
        transform: 0,
        count: this.count,
        nextId: this.nextId,
        seed: 0,
      },
      new Map<string, SectionData>([
        ['VECS', this.vectors.subarray(0, this.count * this.dimension)],
        ['IDS ', this.storedIds.subarray(0, this.count)],
      ]),
    );
  }

  static fromBytes(bytes: Uint8Array, name = 'index file'): FlatIndex {
    const file = decodeIndexFile(bytes, name);
    const f = file.fields;
    if (f.kind !== KIND_FLAT) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `${name} holds another kind of index (kind ${f.kind}); load it with its own class`,
      );
    }
    const index = new FlatIndex({
      dimension: f.dimension,
      distanceType: DISTANCE_TYPES[f.distanceType] ?? 'l2',
    });
    index.vectors = file.section('VECS', Float32Array);
    index.storedIds = file.section('IDS ', Uint32Array);
    index.count = f.count;
    index.nextId = f.nextId;
    index.norms = rowNorms(index.vectors, f.count, f.dimension);
    return index;
  }

  async save(path: string): Promise<void> {
    await fileStore().write(path, this.toBytes());
  }

  static async load(path: string): Promise<FlatIndex> {
    return FlatIndex.fromBytes(await fileStore().read(path), path);
  }
}
