import { JsGraph } from './js-graph.ts';
import { JsRabitq } from './js-rabitq.ts';
import {
  type CodeScanner,
  type GraphKernel,
  type GraphShape,
  type Kernels,
  type Operand,
  operandArray,
  type RabitqKernel,
  type ResidentMatrix,
} from './types.ts';

/** Plain TypeScript kernels: used where WebAssembly SIMD is unavailable, and as the tests' oracle. */
export class JsKernels implements Kernels {
  readonly name = 'js' as const;

  resident(data: Float32Array): ResidentMatrix {
    return { data, owner: this, dispose() {} };
  }

  rabitq(): RabitqKernel {
    return new JsRabitq(this);
  }

  gemmNT(a: Operand, m: number, b: Operand, n: number, d: number, out: Float32Array, outStride = n): void {
    const A = operandArray(a.source);
    const B = operandArray(b.source);
    const aOff = a.offset ?? 0;
    const bOff = b.offset ?? 0;
    const lda = a.stride ?? d;
    const ldb = b.stride ?? d;
    for (let i = 0; i < m; i++) {
      const ai = aOff + i * lda;
      for (let j = 0; j < n; j++) out[i * outStride + j] = dot(A, ai, B, bOff + j * ldb, d);
    }
  }

  nearest(
    x: Operand,
    m: number,
    centroids: Operand,
    n: number,
    d: number,
    centroidNorms: Float32Array,
    labels: Int32Array,
    values: Float32Array,
  ): void {
    const X = operandArray(x.source);
    const C = operandArray(centroids.source);
    const xOff = x.offset ?? 0;
    const cOff = centroids.offset ?? 0;
    const ldx = x.stride ?? d;
    const ldc = centroids.stride ?? d;
    for (let i = 0; i < m; i++) {
      let best = Number.POSITIVE_INFINITY;
      let bestJ = 0;
      for (let j = 0; j < n; j++) {
        const v = centroidNorms[j]! - 2 * dot(X, xOff + i * ldx, C, cOff + j * ldc, d);
        if (v < best) {
          best = v;
          bestJ = j;
        }
      }
      labels[i] = bestJ;
      values[i] = best;
    }
  }

  clusterSums(x: Operand, m: number, d: number, labels: Int32Array, sums: Float64Array): void {
    jsClusterSums(x, m, d, labels, sums);
  }

  codeScanner(numSubVectors: number, partitionTerms: Float32Array | undefined): CodeScanner {
    return new JsCodeScanner(this, numSubVectors, partitionTerms);
  }

  graph(shape: GraphShape, nodes: number, upper: number): GraphKernel {
    return new JsGraph(this, shape, nodes, upper);
  }
}

const K = 256;

class JsCodeScanner implements CodeScanner {
  private query: Float32Array = new Float32Array(0);
  private readonly combined: Float32Array;

  constructor(
    readonly owner: Kernels,
    private readonly M: number,
    private readonly terms: Float32Array | undefined,
  ) {
    this.combined = new Float32Array(M * K);
  }

  setQuery(table: Float32Array): void {
    this.query = table;
  }

  scan(codes: Uint8Array, n: number, termsRow: number, base: number, out: Float32Array): void {
    const { M, query } = this;
    if (termsRow < 0) {
      scanOneTable(codes, n, M, query, base, out);
      return;
    }
    const terms = this.terms!;
    const offset = termsRow * M * K;
    if (n > K) {
      // Long list: fold the partition's term into one table once, then one lookup per sub-vector.
      const table = this.combined;
      for (let t = 0; t < M * K; t++) table[t] = query[t]! + terms[offset + t]!;
      scanOneTable(codes, n, M, table, base, out);
      return;
    }
    // Short list: two lookups per sub-vector cost less than folding the tables.
    for (let i = 0, o = 0; i < n; i++, o += M) {
      let s = base;
      for (let m = 0, t = 0; m < M; m++, t += K) {
        const c = t + codes[o + m]!;
        s += query[c]! + terms[offset + c]!;
      }
      out[i] = s;
    }
  }

  dispose(): void {}
}

function scanOneTable(
  codes: Uint8Array,
  n: number,
  M: number,
  table: Float32Array,
  base: number,
  out: Float32Array,
): void {
  for (let i = 0, o = 0; i < n; i++, o += M) {
    let s = base;
    for (let m = 0, t = 0; m < M; m++, t += K) s += table[t + codes[o + m]!]!;
    out[i] = s;
  }
}

export function jsClusterSums(
  x: Operand,
  m: number,
  d: number,
  labels: Int32Array,
  sums: Float64Array,
): void {
  const X = operandArray(x.source);
  const off = x.offset ?? 0;
  const ldx = x.stride ?? d;
  sums.fill(0);
  for (let i = 0; i < m; i++) {
    const base = labels[i]! * d;
    const row = off + i * ldx;
    for (let j = 0; j < d; j++) sums[base + j] = sums[base + j]! + X[row + j]!;
  }
}

/** Four independent sums so the additions pipeline; the same lane order as the SIMD kernel. */
export function dot(a: Float32Array, ai: number, b: Float32Array, bi: number, d: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 4 <= d; k += 4) {
    s0 += a[ai + k]! * b[bi + k]!;
    s1 += a[ai + k + 1]! * b[bi + k + 1]!;
    s2 += a[ai + k + 2]! * b[bi + k + 2]!;
    s3 += a[ai + k + 3]! * b[bi + k + 3]!;
  }
  let s = s0 + s1 + (s2 + s3);
  for (; k < d; k++) s += a[ai + k]! * b[bi + k]!;
  return s;
}
