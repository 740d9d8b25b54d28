import { ArgumentError } from '../errors.ts';
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
import type { Assigner } from './kmeans.ts';
import { checkDistanceType, type DistanceType, publicDistance } from './metric.ts';
import { checkPqOptions, PqCodec } from './pq-codec.ts';
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
  describeIndex,
  type IndexDescription,
  MAX_K,
  refuseRetrain,
  type SearchOptions,
  type VectorIndex,
} from './vector-index.ts';

export interface PqOptions {
  /** Length of every vector. */
  dimension: number;
  /**
   * Sub-vectors per vector; must divide `dimension` (after any transform). Each costs one byte per
   * vector and one table lookup per vector scanned: more give better recall, larger and slower search.
   * Default: the largest divisor of the dimension at most dimension / 16.
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
  /** k-means iterations at most for each sub-quantizer. Default 25; fewer train faster, quantize worse. */
  maxIterations?: number;
  /** Spreads k-means over threads; see `createParallelAssigner` (Node). Not saved with the index. */
  assigner?: Assigner;
}

/** Codes scanned per call of the code scanner: bounds the scanner's buffers (M + 4 bytes per code). */
const SCAN_BLOCK = 1 << 16;

/**
 * PQ without a coarse quantizer (faiss's IndexPQ): every vector is stored as its product-quantized code
 * (numSubVectors bytes), and a search scans all codes with the query's lookup table. Search time grows
 * with the collection like exact search, at a fraction of its memory (numSubVectors + 4 bytes a vector
 * instead of 4 × dimension + 8) and of its cost per vector; IVF-PQ visits only some partitions instead.
 */
export class PqIndex implements VectorIndex {
  readonly kind = 'pq' as const;
  readonly dimension: number;
  readonly distanceType: DistanceType;
  readonly refineStorage: RefineStorage;
  readonly seed: number;
  private readonly options: PqOptions;
  private codec: PqCodec | undefined;
  /** One list: ids, codes and, with refine, the vectors. */
  private rows: InvertedLists = new InvertedLists([], 1);
  private readonly idSet = new IdSet(() => this.rows.idChunks());

  constructor(options: PqOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ArgumentError('INVALID_ARGUMENT', 'Expected an options object such as { dimension: 128 }');
    }
    checkInteger(options.dimension, 'dimension', 1, 65536);
    checkPqOptions(options);
    this.dimension = options.dimension;
    this.distanceType = checkDistanceType(options.distanceType);
    this.refineStorage = checkRefineStorage(options.refineStorage);
    this.seed = options.seed ?? 1;
    this.options = options;
  }

  get size(): number {
    return this.rows.count;
  }

  get trained(): boolean {
    return this.codec !== undefined;
  }

  get numSubVectors(): number {
    return this.codec?.numSubVectors ?? this.options.numSubVectors ?? 0;
  }

  /**
   * Learns the transform (if any) and the sub-space codebooks from `vectors` (n × dimension, at least
   * 256). Does not add them. An index that holds vectors cannot be trained again (ALREADY_TRAINED):
   * build a new one, or remove every vector first.
   */
  async train(vectors: Float32Array): Promise<void> {
    const n = checkVectors(vectors, this.dimension);
    refuseRetrain(this);
    if (n < 256) {
      throw new ArgumentError(
        'TOO_FEW_TRAINING_VECTORS',
        `Training PQ with 8-bit codes needs at least 256 vectors but received ${n}; pass more training vectors`,
      );
    }
    const codec = await PqCodec.train(
      {
        dimension: this.dimension,
        distanceType: this.distanceType,
        numSubVectors: this.options.numSubVectors,
        transform: this.options.transform,
        seed: this.seed,
        maxIterations: this.options.maxIterations,
        assigner: this.options.assigner,
      },
      PqCodec.originals(vectors, this.dimension, this.distanceType),
      async (inner) => inner,
    );
    this.install(codec, new InvertedLists(this.columnSpecs(codec), 1));
  }

  private install(codec: PqCodec, rows: InvertedLists): void {
    this.codec?.dispose();
    this.codec = codec;
    this.rows = rows;
  }

  private columnSpecs(codec: PqCodec): ColumnSpec[] {
    const specs: ColumnSpec[] = [{ width: codec.numSubVectors, type: Uint8Array }];
    const refine = refineArrayType(this.refineStorage);
    if (refine) specs.push({ width: this.dimension, type: refine });
    return specs;
  }

  private requireTrained(action: string): PqCodec {
    return checkTrained(this.codec, action);
  }

  add(vectors: Float32Array, ids?: Uint32Array): Uint32Array {
    const codec = this.requireTrained('add to');
    const n = checkVectors(vectors, this.dimension);
    const assigned = this.idSet.forAdd(ids, n);
    if (n === 0) return assigned;
    const original = PqCodec.originals(vectors, this.dimension, this.distanceType);
    const columns: Column[] = [codec.encode(codec.inner(original, n), n)];
    const refine = encodeRefine(original, this.refineStorage);
    if (refine) columns.push(refine);
    this.rows.append(new Int32Array(n), assigned, columns);
    this.idSet.added(assigned);
    return assigned;
  }

  remove(ids: Uint32Array | readonly number[]): number {
    this.requireTrained('remove from');
    return this.rows.remove(idsToRemove(ids));
  }

  search(query: Float32Array, k: number, options: SearchOptions = {}): SearchResult {
    this.requireTrained('search');
    checkQuery(query, this.dimension);
    return firstRow(this.searchBatch(query, k, options), k);
  }

  /** `nprobes` is checked and ignored: every code is scanned. */
  searchBatch(queries: Float32Array, k: number, options: SearchOptions = {}): BatchSearchResult {
    const codec = this.requireTrained('search');
    const nq = checkVectors(queries, this.dimension, 'queries');
    checkInteger(k, 'k', 1, MAX_K);
    const { refineFactor } = checkSearchOptions(options);
    if (refineFactor > 0 && this.refineStorage === 'none') {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        "refineFactor needs the full vectors: create the index with refineStorage: 'float32' or 'float16'",
      );
    }
    const original = PqCodec.originals(queries, this.dimension, this.distanceType);
    const q = codec.inner(original, nq);
    const d = codec.innerDimension;
    const M = codec.numSubVectors;
    const tables = codec.queryTables(q, nq);
    const { ids: rowIds, columns } = this.rows.list(0);
    const codes = columns[0] as Uint8Array;
    const n = rowIds.length;
    const ids = new Uint32Array(nq * k).fill(NO_ID);
    const distances = new Float32Array(nq * k).fill(Number.POSITIVE_INFINITY);
    const candidates = new TopK(refineFactor > 0 ? k * refineFactor : k);
    const refined = new TopK(k);
    const scanner = codec.codeScanner();
    const termsRow = codec.termsRow(0);
    const scanned = new Float32Array(Math.min(n, SCAN_BLOCK));
    for (let row = 0; row < nq; row++) {
      // ‖q − r‖² = ‖q‖² + (‖r‖² − 2⟨q, r⟩): the first term is the scan's base, the rest its tables.
      let qNorm = 0;
      if (this.distanceType !== 'dot') for (let j = row * d; j < (row + 1) * d; j++) qNorm += q[j]! * q[j]!;
      scanner.setQuery(tables.subarray(row * M * 256, (row + 1) * M * 256));
      candidates.reset();
      for (let start = 0; start < n; start += SCAN_BLOCK) {
        const size = Math.min(SCAN_BLOCK, n - start);
        scanner.scan(codes.subarray(start * M), size, termsRow, qNorm, scanned);
        let bound = candidates.bound;
        for (let i = 0; i < size; i++) {
          if (scanned[i]! < bound) {
            candidates.push(scanned[i]!, 0, start + i);
            bound = candidates.bound;
          }
        }
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
              () => columns[1] as RefineVectors,
            )
          : candidates;
      for (let c = 0; c < out.size; c++) {
        ids[row * k + c] = rowIds[out.b[c]!]!;
        distances[row * k + c] = publicDistance(this.distanceType, out.distances[c]!);
      }
    }
    return { ids, distances };
  }

  /** Every id in the index, in insertion order (removals keep the order of the rest). */
  ids(): Uint32Array {
    return this.rows.ids();
  }

  /** Memory held by the index, in bytes: codes, ids, refine copies and the quantizer. */
  memoryUsage(): { codes: number; ids: number; refineVectors: number; quantizers: number; total: number } {
    const { ids, columns } = this.rows.byteLengths();
    const codes = columns[0] ?? 0;
    const refineVectors = columns[1] ?? 0;
    const codec = this.codec;
    const quantizers = codec
      ? (codec.pq.codebooks?.byteLength ?? 0) + codec.termsByteLength + (codec.transform?.byteLength ?? 0)
      : 0;
    return { codes, ids, refineVectors, quantizers, total: codes + ids + refineVectors + quantizers };
  }

  describe(): IndexDescription {
    return describeIndex(this, {
      ...(this.codec?.describe() ?? { numSubVectors: this.options.numSubVectors }),
      refineStorage: this.refineStorage,
      seed: this.seed,
    });
  }

  toBytes(): Uint8Array {
    const codec = this.requireTrained('save');
    const { ids, columns } = this.rows.concatenated();
    const sections = new Map<string, SectionData>([
      ['BOOK', codec.pq.codebooks!],
      ['IDS ', ids],
      ['CODE', columns[0]!],
    ]);
    if (columns[1]) sections.set('VECS', columns[1]);
    for (const [tag, data] of codec.transformSections()) sections.set(tag, data);
    return encodeIndex(
      'pq',
      {
        dimension: this.dimension,
        distanceType: this.distanceType,
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
   * Reads an index from its file bytes. It views the bytes without copying them: changes to the index
   * never write into them, but the caller must not change them while the index is in use.
   */
  static fromBytes(bytes: Uint8Array, name = 'index file'): PqIndex {
    return PqIndex.fromFile(decodeIndex(bytes, name, 'pq'));
  }

  /** @internal From a decoded file of this kind (see openIndex). */
  static fromFile(file: DecodedIndexFile): PqIndex {
    const f = file.fields;
    const refineStorage = REFINE_STORAGES[f.refineStorage];
    if (!refineStorage) throw damaged(file.name, `its refine storage code (${f.refineStorage})`);
    const index = new PqIndex({
      dimension: f.dimension,
      distanceType: distanceTypeOf(file),
      refineStorage,
      seed: f.seed,
    });
    const codec = PqCodec.fromFile(file, f, index.distanceType);
    const columns: Column[] = [file.section('CODE', Uint8Array, f.count * f.numSubVectors)];
    const refine = refineSection(file, refineStorage, f.count * f.dimension);
    if (refine) columns.push(refine);
    index.install(
      codec,
      InvertedLists.view(
        index.columnSpecs(codec),
        Uint32Array.of(f.count),
        file.section('IDS ', Uint32Array, f.count),
        columns,
      ),
    );
    index.idSet.nextId = f.nextId;
    return index;
  }

  /** Writes the index to `path` atomically (temp file, fsync, rename). */
  async save(path: string): Promise<void> {
    await fileStore().write(path, this.toBytes());
  }

  static async load(path: string): Promise<PqIndex> {
    return PqIndex.fromBytes(await fileStore().read(path), path);
  }
}
