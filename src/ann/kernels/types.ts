import type { GraphKernel, GraphShape } from './graph.ts';

/**
 * An operand of a kernel: a Float32Array, or a long-lived matrix made resident with
 * `Kernels.resident` (in the WebAssembly build it is copied into the module's memory once,
 * instead of on every call). Rows start at `offset` and are `stride` elements apart.
 */
export interface Operand {
  readonly source: Float32Array | ResidentMatrix;
  readonly offset?: number;
  readonly stride?: number;
}

/**
 * A matrix the kernels keep close at hand. Treat its `data` as read-only while it is resident. It belongs
 * to the kernels that made it (`owner`): after `useKernels` the new kernels copy it in like a plain array,
 * so holders of a long-lived one re-make it with `residentOn`.
 */
export interface ResidentMatrix {
  readonly data: Float32Array;
  readonly owner: Kernels;
  /** Gives back the memory now rather than when the object is collected. */
  dispose(): void;
}

/**
 * Ranks one query's product-quantized codes (8-bit: 256 table entries per sub-space), list by list.
 * Created per index: it keeps the partition terms and the current query's table at hand.
 */
export interface CodeScanner {
  /** The kernels that made it (and whose memory it uses). */
  readonly owner: Kernels;
  /** The query's table, numSubVectors × 256 (for L2: −2⟨q_m, codeword⟩). */
  setQuery(table: Float32Array): void;
  /**
   * out[i] = base + Σ_m T[m][codes[i·M + m]] for the n codes, where T is the query's table plus row
   * `termsRow` of the partition terms (−1: the query's table alone).
   */
  scan(codes: Uint8Array, n: number, termsRow: number, base: number, out: Float32Array): void;
  dispose(): void;
}

export interface Kernels {
  readonly name: 'wasm-simd' | 'js';
  /** The memory and hot loops of one HNSW graph with room for `nodes` nodes and `upper` words of upper links. */
  graph(shape: GraphShape, nodes: number, upper: number): GraphKernel;
  /** A scanner for codes of `numSubVectors` bytes; `partitionTerms` has one numSubVectors × 256 row per partition. */
  codeScanner(numSubVectors: number, partitionTerms: Float32Array | undefined): CodeScanner;
  resident(data: Float32Array): ResidentMatrix;
  /** out[i·outStride + j] = A_i · B_j for i < m, j < n, over d elements. */
  gemmNT(
    a: Operand,
    m: number,
    b: Operand,
    n: number,
    d: number,
    out: Float32Array,
    outStride?: number,
  ): void;
  /**
   * For each of the m rows x_i of X: labels[i] = argmin_j ‖c_j‖² − 2 x_i·c_j and values[i] that minimum.
   * `centroidNorms[j]` = ‖c_j‖². Add ‖x_i‖² to get the squared distance.
   */
  nearest(
    x: Operand,
    m: number,
    centroids: Operand,
    n: number,
    d: number,
    centroidNorms: Float32Array,
    labels: Int32Array,
    values: Float32Array,
  ): void;
  /** The k-means update's sums (k × d, overwritten): sums[labels[i]] += x_i over the m rows of X, in f64. */
  clusterSums(x: Operand, m: number, d: number, labels: Int32Array, sums: Float64Array): void;
}

export function operandArray(source: Float32Array | ResidentMatrix): Float32Array {
  return source instanceof Float32Array ? source : source.data;
}
