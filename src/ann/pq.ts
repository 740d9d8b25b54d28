import { ArgumentError } from '../errors.ts';
import { type Kernels, kernels, type ResidentMatrix, residentOn } from './kernels/index.ts';
import { type Assigner, kmeans } from './kmeans.ts';

export interface ProductQuantizerOptions {
  dimension: number;
  /** Sub-vectors per vector; must divide `dimension`. Each costs one byte of code (at 8 bits). */
  numSubVectors: number;
  /** Bits per sub-vector code: 8 (256 centroids per sub-space). */
  numBits?: number;
}

/**
 * Product quantization (Jégou et al. 2011): the vector is cut into `numSubVectors` pieces and each piece
 * is replaced by the index of its nearest centroid in that sub-space's own codebook.
 */
export class ProductQuantizer {
  readonly dimension: number;
  readonly numSubVectors: number;
  readonly numBits: number;
  /** Centroids per sub-space (2^numBits). */
  readonly numCodes: number;
  readonly subDimension: number;
  /** numSubVectors × numCodes × subDimension, each sub-space's codebook contiguous. */
  codebooks: Float32Array | undefined;
  private resident: ResidentMatrix | undefined;
  /** ‖codeword‖², derived from the codebooks on first use. */
  private norms: Float32Array | undefined;

  constructor(options: ProductQuantizerOptions) {
    const { dimension, numSubVectors } = options;
    const numBits = options.numBits ?? 8;
    if (numBits !== 8) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Expected numBits to be 8 but received ${numBits}; ris stores one byte per sub-vector code`,
      );
    }
    if (!Number.isInteger(numSubVectors) || numSubVectors < 1 || dimension % numSubVectors !== 0) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Expected numSubVectors to divide the dimension ${dimension} but received ${numSubVectors}; ` +
          `try one of ${divisors(dimension).slice(0, 12).join(', ')}`,
      );
    }
    this.dimension = dimension;
    this.numSubVectors = numSubVectors;
    this.numBits = numBits;
    this.numCodes = 1 << numBits;
    this.subDimension = dimension / numSubVectors;
  }

  get trained(): boolean {
    return this.codebooks !== undefined;
  }

  /** Trains every sub-space's codebook with k-means on the matching columns of `data`. */
  async train(
    data: Float32Array,
    options: { seed?: number; maxIterations?: number; assigner?: Assigner } = {},
  ): Promise<void> {
    const { numSubVectors: M, subDimension: ds, numCodes: K, dimension: D } = this;
    const n = data.length / D;
    const codebooks = new Float32Array(M * K * ds);
    const sub = new Float32Array(n * ds);
    for (let m = 0; m < M; m++) {
      for (let i = 0; i < n; i++) sub.set(data.subarray(i * D + m * ds, i * D + m * ds + ds), i * ds);
      const { centroids } = await kmeans(sub, ds, {
        numCentroids: K,
        seed: (options.seed ?? 1) + m,
        maxIterations: options.maxIterations,
        assigner: options.assigner,
        // Residual sub-vectors form no separated clusters for k-means++ to find; faiss's random start
        // reaches the same distortion without the seeding pass.
        init: 'random',
      });
      codebooks.set(centroids, m * K * ds);
    }
    this.setCodebooks(codebooks);
  }

  /** Installs codebooks (numSubVectors × numCodes × subDimension), dropping everything derived from the old ones. */
  setCodebooks(codebooks: Float32Array): void {
    this.codebooks = codebooks;
    this.norms = undefined;
    this.resident?.dispose();
    this.resident = undefined;
  }

  private residentCodebooks(K: Kernels): ResidentMatrix {
    this.resident = residentOn(K, this.resident, this.codebooks!);
    return this.resident;
  }

  /** Codes of n vectors: n × numSubVectors bytes. */
  encode(data: Float32Array, n: number, out = new Uint8Array(n * this.numSubVectors)): Uint8Array {
    const { numSubVectors: M, subDimension: ds, numCodes: K, dimension: D } = this;
    const kern = kernels();
    const books = this.residentCodebooks(kern);
    const labels = new Int32Array(n);
    const values = new Float32Array(n);
    const norms = this.codebookNorms();
    const x = kern.resident(data);
    try {
      for (let m = 0; m < M; m++) {
        kern.nearest(
          { source: x, stride: D, offset: m * ds },
          n,
          { source: books, offset: m * K * ds },
          K,
          ds,
          norms.subarray(m * K, (m + 1) * K),
          labels,
          values,
        );
        for (let i = 0; i < n; i++) out[i * M + m] = labels[i]!;
      }
    } finally {
      x.dispose();
    }
    return out;
  }

  /** Reconstructs n vectors from their codes. */
  decode(codes: Uint8Array, n: number, out = new Float32Array(n * this.dimension)): Float32Array {
    const { numSubVectors: M, subDimension: ds, numCodes: K, dimension: D } = this;
    const books = this.codebooks!;
    for (let i = 0; i < n; i++) {
      for (let m = 0; m < M; m++) {
        const c = codes[i * M + m]!;
        out.set(books.subarray((m * K + c) * ds, (m * K + c + 1) * ds), i * D + m * ds);
      }
    }
    return out;
  }

  /** ‖codeword‖² for every sub-space and code (numSubVectors × numCodes). */
  codebookNorms(): Float32Array {
    if (!this.norms) {
      const books = this.codebooks!;
      const ds = this.subDimension;
      const norms = new Float32Array(this.numSubVectors * this.numCodes);
      for (let r = 0; r < norms.length; r++) {
        let s = 0;
        for (let j = r * ds; j < (r + 1) * ds; j++) s += books[j]! * books[j]!;
        norms[r] = s;
      }
      this.norms = norms;
    }
    return this.norms;
  }

  /**
   * Inner products of q (or q's rows, for a batch) with every codeword:
   * out[(row·numSubVectors + m)·numCodes + c] = ⟨q_m, codeword(m, c)⟩.
   */
  innerProductTables(
    queries: Float32Array,
    nq: number,
    out = new Float32Array(nq * this.numSubVectors * this.numCodes),
  ): Float32Array {
    const { numSubVectors: M, subDimension: ds, numCodes: K, dimension: D } = this;
    const kern = kernels();
    const books = this.residentCodebooks(kern);
    for (let m = 0; m < M; m++) {
      kern.gemmNT(
        { source: queries, offset: m * ds, stride: D },
        nq,
        { source: books, offset: m * K * ds },
        K,
        ds,
        out.subarray(m * K),
        M * K,
      );
    }
    return out;
  }

  /** Frees the kernels' copy of the codebooks. */
  dispose(): void {
    this.resident?.dispose();
    this.resident = undefined;
  }
}

export function divisors(n: number): number[] {
  const out: number[] = [];
  for (let i = 1; i <= n; i++) if (n % i === 0) out.push(i);
  return out;
}

/** The largest divisor of d that is at most d / 16 (each sub-vector spans at least 16 dimensions). */
export function defaultNumSubVectors(d: number): number {
  for (let m = Math.max(1, Math.floor(d / 16)); m > 1; m--) if (d % m === 0) return m;
  return 1;
}
