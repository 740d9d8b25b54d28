import { ArgumentError } from '../errors.ts';
import { type DecodedIndexFile, damaged, type HeaderFields, type SectionData } from './format.ts';
import { type CodeScanner, type Kernels, kernels } from './kernels/index.ts';
import type { Assigner } from './kmeans.ts';
import { type DistanceType, normalizeRows } from './metric.ts';
import { defaultNumSubVectors, ProductQuantizer } from './pq.ts';
import {
  loadTransform,
  TRANSFORM_CODES,
  type TransformOptions,
  trainTransform,
  type VectorTransform,
} from './transform.ts';

/** The options a PQ codec is trained with (the PQ fields of IvfPqOptions and PqOptions). */
export interface PqCodecOptions {
  dimension: number;
  distanceType: DistanceType;
  numSubVectors?: number;
  transform?: TransformOptions;
  seed: number;
  maxIterations?: number;
  assigner?: Assigner;
}

/**
 * How a PQ index turns vectors into codes and ranks codes against a query: the optional pre-transform,
 * the product quantizer, and the code scanner with its precomputed terms. With coarse centroids (IVF-PQ)
 * the codes are of residuals and L2 uses faiss's precomputed tables:
 * ‖q − c − r‖² = ‖q − c‖² + (‖r‖² + 2⟨c, r⟩) − 2⟨q, r⟩, the middle term tabulated per partition and the
 * last computed once per query, so more probes cost lookups only. Without (flat PQ) the term is ‖r‖².
 */
export class PqCodec {
  private terms: Float32Array | undefined;
  private scanner: CodeScanner | undefined;

  constructor(
    readonly dimension: number,
    readonly distanceType: DistanceType,
    readonly transform: VectorTransform | undefined,
    readonly pq: ProductQuantizer,
    /** Coarse centroids in the inner space (numPartitions × innerDimension), for IVF-PQ. */
    private readonly centroids?: Float32Array,
  ) {}

  /**
   * Trains the transform on `original` (see `originals`), then the quantizer on what `toQuantize` makes
   * of the transformed vectors (IVF-PQ trains its coarse quantizer there and returns the residuals).
   */
  static async train(
    options: PqCodecOptions,
    original: Float32Array,
    toQuantize: (inner: Float32Array, innerDimension: number) => Promise<Float32Array>,
    centroids?: () => Float32Array,
  ): Promise<PqCodec> {
    const common = { seed: options.seed, maxIterations: options.maxIterations, assigner: options.assigner };
    const d = options.dimension;
    const n = original.length / d;
    const transform = options.transform
      ? await trainTransform(options.transform, original, d, options.numSubVectors, common)
      : undefined;
    const inner = transform ? transform.apply(original, n) : original;
    const innerDimension = transform?.outputDimension ?? d;
    const pq = new ProductQuantizer({
      dimension: innerDimension,
      numSubVectors: options.numSubVectors ?? defaultNumSubVectors(innerDimension),
    });
    const data = await toQuantize(inner, innerDimension);
    await pq.train(data, common);
    return new PqCodec(d, options.distanceType, transform, pq, centroids?.());
  }

  /** Reads the codebooks (BOOK) and the transform's sections of a file written with `sections`. */
  static fromFile(
    file: DecodedIndexFile,
    f: HeaderFields,
    distanceType: DistanceType,
    centroids?: Float32Array,
  ): PqCodec {
    if (f.numBits !== 8 || f.numSubVectors < 1 || f.innerDimension % f.numSubVectors !== 0) {
      throw damaged(file.name, `its product quantizer (${f.numSubVectors} × ${f.numBits} bits)`);
    }
    const transform = loadTransform(f.transform, f.dimension, f.innerDimension, file);
    const pq = new ProductQuantizer({
      dimension: f.innerDimension,
      numSubVectors: f.numSubVectors,
      numBits: f.numBits,
    });
    pq.setCodebooks(file.section('BOOK', Float32Array, f.innerDimension * 256));
    return new PqCodec(f.dimension, distanceType, transform, pq, centroids);
  }

  get innerDimension(): number {
    return this.pq.dimension;
  }

  get numSubVectors(): number {
    return this.pq.numSubVectors;
  }

  /** Vectors as the index compares them (unit length for cosine); the refine copy keeps these. */
  static originals(vectors: Float32Array, d: number, type: DistanceType): Float32Array {
    return type === 'cosine' ? normalizeRows(vectors, d) : vectors;
  }

  /** `originals` in the quantizer's space: after the transform, if any. */
  inner(original: Float32Array, n: number): Float32Array {
    return this.transform ? this.transform.apply(original, n) : original;
  }

  encode(inner: Float32Array, n: number): Uint8Array {
    return this.pq.encode(inner, n);
  }

  /**
   * One lookup table per query row (nq × numSubVectors × 256): −2⟨q_m, r⟩ for L2 and cosine,
   * −⟨q_m, r⟩ for dot.
   */
  queryTables(inner: Float32Array, nq: number): Float32Array {
    const tables = this.pq.innerProductTables(inner, nq);
    const scale = this.distanceType === 'dot' ? -1 : -2;
    for (let i = 0; i < tables.length; i++) tables[i] = tables[i]! * scale;
    return tables;
  }

  /** The row of precomputed terms a list's codes add to the query's table: −1 for none (dot). */
  termsRow(list: number): number {
    return this.distanceType === 'dot' ? -1 : this.centroids ? list : 0;
  }

  /** The scanner of the kernels in use, made (with its terms) on first use and after `useKernels`. */
  codeScanner(K: Kernels = kernels()): CodeScanner {
    if (this.scanner?.owner === K) return this.scanner;
    this.scanner?.dispose();
    if (this.distanceType !== 'dot') this.terms ??= this.computeTerms();
    this.scanner = K.codeScanner(this.pq.numSubVectors, this.terms);
    return this.scanner;
  }

  /**
   * L2: T[l][m][c] = ‖r_mc‖² + 2⟨c_l,m, r_mc⟩ for each coarse centroid c_l, the part of ‖q − c_l − r‖²
   * that does not depend on q; without centroids the single row ‖r_mc‖².
   */
  private computeTerms(): Float32Array {
    const norms = this.pq.codebookNorms();
    if (!this.centroids) return norms.slice();
    const MK = this.pq.numSubVectors * this.pq.numCodes;
    const L = this.centroids.length / this.innerDimension;
    const terms = this.pq.innerProductTables(this.centroids, L);
    for (let l = 0; l < L; l++) {
      for (let t = 0; t < MK; t++) terms[l * MK + t] = 2 * terms[l * MK + t]! + norms[t]!;
    }
    return terms;
  }

  /** Bytes of the terms table (kept whether or not it is built yet, so memory reports stay stable). */
  get termsByteLength(): number {
    if (this.distanceType === 'dot') return 0;
    const rows = this.centroids ? this.centroids.length / this.innerDimension : 1;
    return rows * this.pq.numSubVectors * this.pq.numCodes * 4;
  }

  /** The transform's sections (TMAT, TMEA), empty without one. */
  transformSections(): Map<string, SectionData> {
    return this.transform ? this.transform.sections() : new Map();
  }

  /** The header fields that describe the codec. */
  headerFields(): Pick<HeaderFields, 'innerDimension' | 'numSubVectors' | 'numBits' | 'transform'> {
    return {
      innerDimension: this.innerDimension,
      numSubVectors: this.pq.numSubVectors,
      numBits: this.pq.numBits,
      transform: this.transform ? TRANSFORM_CODES[this.transform.type] : 0,
    };
  }

  describe(): Record<string, number | string> {
    return {
      innerDimension: this.innerDimension,
      numSubVectors: this.pq.numSubVectors,
      numBits: this.pq.numBits,
      transform: this.transform?.type ?? 'none',
    };
  }

  /** A codec with the same transform and codebooks, for an index made with `emptyCopy`. */
  copy(centroids?: Float32Array): PqCodec {
    const pq = new ProductQuantizer({ dimension: this.pq.dimension, numSubVectors: this.pq.numSubVectors });
    pq.setCodebooks(this.pq.codebooks!);
    return new PqCodec(this.dimension, this.distanceType, this.transform, pq, centroids ?? this.centroids);
  }

  /** Whether codes made by `other` mean the same as codes made by this codec. */
  sameAs(other: PqCodec): boolean {
    return (
      other.distanceType === this.distanceType &&
      sameFloats(other.pq.codebooks!, this.pq.codebooks!) &&
      sameTransform(other.transform, this.transform)
    );
  }

  dispose(): void {
    this.scanner?.dispose();
    this.scanner = undefined;
    this.pq.dispose();
  }
}

/** Refuses options no product quantizer can take, at construction rather than after training. */
export function checkPqOptions(options: {
  dimension: number;
  numBits?: number;
  numSubVectors?: number;
  transform?: TransformOptions;
}): void {
  if (options.numBits !== undefined && options.numBits !== 8) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected numBits to be 8 but received ${options.numBits}; ris stores one byte per sub-vector code`,
    );
  }
  if (options.numSubVectors !== undefined) {
    new ProductQuantizer({
      dimension: options.transform?.outputDimension ?? options.dimension,
      numSubVectors: options.numSubVectors,
    });
  }
}

export function sameFloats(a: Float32Array, b: Float32Array): boolean {
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
