import { ArgumentError } from '../errors.ts';
import {
  type DecodedIndexFile,
  decodeIndex,
  distanceTypeOf,
  encodeIndex,
  type SectionData,
} from './format.ts';
import { IdSet, idsToRemove } from './id-set.ts';
import { kernels, type ResidentMatrix, residentOn } from './kernels/index.ts';
import { rowNorms } from './kmeans.ts';
import { checkDistanceType, type DistanceType, normalizeRows, publicDistance } from './metric.ts';
import { fileStore } from './storage.ts';
import { TopK } from './topk.ts';
import { type BatchSearchResult, firstRow, NO_ID, type SearchResult } from './types.ts';
import { checkInteger, checkQuery, checkVectors } from './validate.ts';
import {
  checkSearchOptions,
  describeIndex,
  type IndexDescription,
  MAX_K,
  type SearchOptions,
  type VectorIndex,
} from './vector-index.ts';

export interface FlatOptions {
  /** Length of every vector. */
  dimension: number;
  /** Distance measure; see {@link DistanceType}. Default 'l2'. */
  distanceType?: DistanceType;
}

/** Query rows per block of a batch search, so the product matrix stays within a few MB. */
const PRODUCT_BUDGET = 1 << 22;

/**
 * Exact search: every query is compared with every vector. The ground truth the approximate indexes are
 * measured against, and the right choice below a few thousand vectors.
 */
export class FlatIndex implements VectorIndex {
  readonly kind = 'flat' as const;
  readonly dimension: number;
  readonly distanceType: DistanceType;
  /** Rows [0, count) are in use; the arrays grow by half again when full. */
  private vectors: Float32Array;
  private storedIds: Uint32Array;
  private norms: Float32Array;
  private count = 0;
  /** True while `vectors` and `storedIds` view a caller's file bytes: the first change copies them. */
  private borrowed = false;
  private readonly idSet = new IdSet(() => [this.storedIds.subarray(0, this.count)]);
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

  /** Exact search needs no training. */
  get trained(): boolean {
    return true;
  }

  /** Exact search needs no training; present so every index can be driven the same way. */
  async train(_vectors?: Float32Array): Promise<void> {}

  add(vectors: Float32Array, ids?: Uint32Array): Uint32Array {
    const d = this.dimension;
    const n = checkVectors(vectors, d);
    const assigned = this.idSet.forAdd(ids, n);
    if (n === 0) return assigned;
    const data = this.distanceType === 'cosine' ? normalizeRows(vectors, d) : vectors;
    this.reserve(this.count + n);
    this.vectors.set(data, this.count * d);
    this.storedIds.set(assigned, this.count);
    this.norms.set(rowNorms(data, n, d), this.count);
    this.count += n;
    this.idSet.added(assigned);
    this.invalidate();
    return assigned;
  }

  /** Room for `capacity` rows in arrays of our own (never the caller's bytes). */
  private reserve(capacity: number): void {
    if (!this.borrowed && capacity * this.dimension <= this.vectors.length) return;
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
    this.borrowed = false;
  }

  private invalidate(): void {
    this.resident?.dispose();
    this.resident = undefined;
  }

  remove(ids: Uint32Array | readonly number[]): number {
    const gone = idsToRemove(ids);
    const d = this.dimension;
    let removed = 0;
    for (let i = 0; i < this.count; i++) if (gone.has(this.storedIds[i]!)) removed++;
    if (removed === 0) return 0;
    // Compacts in place, so first make sure the arrays are ours.
    if (this.borrowed) this.reserve(this.count);
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
    this.count = at;
    this.invalidate();
    return removed;
  }

  search(query: Float32Array, k: number, options: SearchOptions = {}): SearchResult {
    checkQuery(query, this.dimension);
    return firstRow(this.searchBatch(query, k, options), k);
  }

  /** Exact: `nprobes` and `refineFactor` are checked and ignored. */
  searchBatch(queries: Float32Array, k: number, options: SearchOptions = {}): BatchSearchResult {
    const d = this.dimension;
    const nq = checkVectors(queries, d, 'queries');
    checkInteger(k, 'k', 1, MAX_K);
    checkSearchOptions(options);
    const q = this.distanceType === 'cosine' ? normalizeRows(queries, d) : queries;
    const ids = new Uint32Array(nq * k).fill(NO_ID);
    const distances = new Float32Array(nq * k).fill(Number.POSITIVE_INFINITY);
    const n = this.count;
    if (n === 0) return { ids, distances };
    const K = kernels();
    this.resident = residentOn(K, this.resident, this.vectors.subarray(0, n * d));
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

  memoryUsage(): { vectors: number; norms: number; ids: number; total: number } {
    const vectors = this.count * this.dimension * 4;
    const norms = this.count * 4;
    const ids = this.count * 4;
    return { vectors, norms, ids, total: vectors + norms + ids };
  }

  describe(): IndexDescription {
    return describeIndex(this, {});
  }

  toBytes(): Uint8Array {
    return encodeIndex(
      'flat',
      {
        dimension: this.dimension,
        distanceType: this.distanceType,
        count: this.count,
        nextId: this.idSet.nextId,
      },
      new Map<string, SectionData>([
        ['VECS', this.vectors.subarray(0, this.count * this.dimension)],
        ['IDS ', this.storedIds.subarray(0, this.count)],
      ]),
    );
  }

  /**
   * Reads an index from its file bytes without copying them. Changes to the index copy them first (the
   * caller's bytes stay intact), but the caller must not change the bytes while the index is in use.
   */
  static fromBytes(bytes: Uint8Array, name = 'index file'): FlatIndex {
    return FlatIndex.fromFile(decodeIndex(bytes, name, 'flat'));
  }

  /** @internal From a decoded file of this kind (see openIndex). */
  static fromFile(file: DecodedIndexFile): FlatIndex {
    const f = file.fields;
    const index = new FlatIndex({ dimension: f.dimension, distanceType: distanceTypeOf(file) });
    index.vectors = file.section('VECS', Float32Array, f.count * f.dimension);
    index.storedIds = file.section('IDS ', Uint32Array, f.count);
    index.borrowed = true;
    index.count = f.count;
    index.idSet.nextId = f.nextId;
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
