import { kernels } from './kernels/index.ts';
import type { Random } from './random.ts';

/**
 * Eigen-decomposition of a symmetric n×n matrix by cyclic Jacobi rotations (accurate, O(n³) per sweep,
 * fine up to a few hundred). Returns eigenvalues descending and eigenvectors as the rows of `vectors`.
 */
export function symmetricEigen(
  matrix: Float64Array,
  n: number,
): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    let diag = 0;
    for (let p = 0; p < n; p++) {
      diag += a[p * n + p]! ** 2;
      for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    }
    if (off <= 1e-22 * diag || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        // v's rows are the eigenvectors: rotate rows p and q.
        for (let k = 0; k < n; k++) {
          const vpk = v[p * n + k]!;
          const vqk = v[q * n + k]!;
          v[p * n + k] = c * vpk - s * vqk;
          v[q * n + k] = s * vpk + c * vqk;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j]! - a[i * n + i]!);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = a[src * n + src]!;
    vectors.set(v.subarray(src * n, src * n + n), dst * n);
  });
  return { values, vectors };
}

/** Aᵀ·B for row-major A (n×p) and B (n×q): p×q, through the matrix kernel on transposed copies. */
export function transposeProduct(
  a: Float32Array,
  p: number,
  b: Float32Array,
  q: number,
  n: number,
): Float32Array {
  const out = new Float32Array(p * q);
  kernels().gemmNT({ source: transpose(a, n, p) }, p, { source: transpose(b, n, q) }, q, n, out);
  return out;
}

export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}

/** Rows of X (n×d) times Wᵀ (W: out×d): n×out. */
export function projectRows(
  x: Float32Array,
  n: number,
  d: number,
  w: Float32Array,
  out: number,
): Float32Array {
  const y = new Float32Array(n * out);
  kernels().gemmNT({ source: x }, n, { source: w }, out, d, y);
  return y;
}

/** Leading eigenvectors of a symmetric d×d matrix by subspace iteration and Rayleigh–Ritz. */
export function topEigenvectors(c: Float32Array, d: number, count: number, random: Random): Float32Array {
  if (d <= 320) {
    const { vectors } = symmetricEigen(Float64Array.from(c), d);
    return Float32Array.from(vectors.subarray(0, count * d));
  }
  const p = Math.min(d, count + 16);
  let basis: Float32Array = new Float32Array(p * d).map(() => random.gaussian());
  orthonormalizeRows(basis, p, d);
  for (let it = 0; it < 12; it++) {
    basis = projectRows(basis, p, d, c, d); // rows of (C·Qᵀ)ᵀ, C symmetric
    orthonormalizeRows(basis, p, d);
  }
  const cb = projectRows(basis, p, d, c, d);
  const small = new Float64Array(p * p);
  const prod = new Float32Array(p * p);
  kernels().gemmNT({ source: cb }, p, { source: basis }, p, d, prod);
  for (let i = 0; i < p; i++)
    for (let j = 0; j < p; j++) small[i * p + j] = (prod[i * p + j]! + prod[j * p + i]!) / 2;
  const { vectors } = symmetricEigen(small, p);
  const out = new Float32Array(count * d);
  for (let r = 0; r < count; r++) {
    for (let i = 0; i < p; i++) {
      const w = vectors[r * p + i]!;
      for (let j = 0; j < d; j++) out[r * d + j] = out[r * d + j]! + w * basis[i * d + j]!;
    }
  }
  return out;
}

/** Modified Gram–Schmidt on the rows, in place. */
export function orthonormalizeRows(a: Float32Array, rows: number, d: number): void {
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < i; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += a[i * d + k]! * a[j * d + k]!;
      for (let k = 0; k < d; k++) a[i * d + k] = a[i * d + k]! - dot * a[j * d + k]!;
    }
    let norm = 0;
    for (let k = 0; k < d; k++) norm += a[i * d + k]! ** 2;
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let k = 0; k < d; k++) a[i * d + k] = a[i * d + k]! * inv;
  }
}
