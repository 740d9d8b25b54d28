import { kernels } from './kernels/index.ts';
import type { Random } from './random.ts';

/**
 * Eigen-decomposition of a symmetric n×n matrix: Householder reduction to tridiagonal form, then the
 * implicit QL algorithm (as LAPACK's dsytrd + dsteqr, in float64). About 7n³ flops, no sweeps to count:
 * 0.85 s at n = 512, 14 s at 1,280 on one core (cyclic Jacobi, before it: about 5 s and 80 s).
 * Returns eigenvalues descending and eigenvectors as the rows of `vectors`.
 */
export function symmetricEigen(
  matrix: Float64Array,
  n: number,
): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const { diag, off, betas } = tridiagonalize(a, n);
  const z = new Float64Array(n * n);
  for (let i = 0; i < n; i++) z[i * n + i] = 1;
  tridiagonalQl(diag, off, z, n);
  // z's rows are T's eigenvectors; A = Q T Qᵀ with Q = H₀…H_{n−3}, so A's are the rows of z Qᵀ.
  for (let k = n - 3; k >= 0; k--) {
    const beta = betas[k]!;
    if (beta === 0) continue;
    const v = k * n; // the reflector's vector, kept in row k past the diagonal
    for (let r = 0; r < n; r++) {
      const zr = r * n;
      let s = 0;
      for (let j = k + 1; j < n; j++) s += z[zr + j]! * a[v + j]!;
      s *= beta;
      for (let j = k + 1; j < n; j++) z[zr + j] = z[zr + j]! - s * a[v + j]!;
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => diag[j]! - diag[i]!);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = diag[src]!;
    vectors.set(z.subarray(src * n, src * n + n), dst * n);
  });
  return { values, vectors };
}

/**
 * Householder reflectors H_k = I − β v vᵀ, in place: afterwards row k of `a` holds v (past the diagonal),
 * and the tridiagonal matrix is `diag` with `off` (off[i] couples i and i + 1).
 */
function tridiagonalize(a: Float64Array, n: number) {
  const diag = new Float64Array(n);
  const off = new Float64Array(n);
  const betas = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    const row = k * n;
    diag[k] = a[row + k]!;
    const x0 = a[row + k + 1]!;
    let tail = 0;
    for (let j = k + 2; j < n; j++) tail += a[row + j]! ** 2;
    if (tail === 0) {
      off[k] = x0;
      continue;
    }
    const norm = Math.sqrt(tail + x0 * x0);
    const alpha = x0 > 0 ? -norm : norm;
    off[k] = alpha;
    a[row + k + 1] = x0 - alpha;
    const beta = 2 / (tail + (x0 - alpha) ** 2);
    betas[k] = beta;
    // With p = β S v and q = p − (β/2)(vᵀp) v, the trailing block S becomes S − v qᵀ − q vᵀ.
    let vp = 0;
    for (let i = k + 1; i < n; i++) {
      const ri = i * n;
      let s = 0;
      for (let j = k + 1; j < n; j++) s += a[ri + j]! * a[row + j]!;
      p[i] = beta * s;
      vp += a[row + i]! * p[i]!;
    }
    const half = (beta / 2) * vp;
    for (let i = k + 1; i < n; i++) p[i] = p[i]! - half * a[row + i]!;
    for (let i = k + 1; i < n; i++) {
      const ri = i * n;
      const vi = a[row + i]!;
      const qi = p[i]!;
      for (let j = k + 1; j < n; j++) a[ri + j] = a[ri + j]! - vi * p[j]! - qi * a[row + j]!;
    }
  }
  if (n >= 2) {
    diag[n - 2] = a[(n - 2) * n + n - 2]!;
    off[n - 2] = a[(n - 2) * n + n - 1]!;
  }
  if (n >= 1) diag[n - 1] = a[n * n - 1]!;
  return { diag, off, betas };
}

/**
 * Implicit QL with Wilkinson shifts on the tridiagonal (d, e), in place: d becomes the eigenvalues and
 * each plane rotation is applied to rows i, i + 1 of z (as EISPACK's tql2, on rows for contiguous access).
 */
function tridiagonalQl(d: Float64Array, e: Float64Array, z: Float64Array, n: number): void {
  e[n - 1] = 0;
  let shift = 0;
  let scale = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    scale = Math.max(scale, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]!) > eps * scale) m++;
    if (m > l) {
      do {
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.sqrt(p * p + 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
        shift += h;
        p = d[m]!;
        let c = 1;
        let c2 = 1;
        let c3 = 1;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.sqrt(p * p + e[i]! * e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          const zi = i * n;
          const zj = zi + n;
          for (let k = 0; k < n; k++) {
            const u = z[zi + k]!;
            const w = z[zj + k]!;
            z[zj + k] = s * u + c * w;
            z[zi + k] = c * u - s * w;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * scale);
    }
    d[l] = d[l]! + shift;
    e[l] = 0;
  }
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

/**
 * Modified Gram–Schmidt on the rows, in place, in row order (earlier rows move least), each row
 * orthogonalised twice when the first pass removed most of it. A row that lies in the span of the rows
 * before it becomes zero, or, given `random`, a random direction orthogonal to them, so that the rows
 * form a full orthonormal basis.
 */
export function orthonormalizeRows(a: Float32Array, rows: number, d: number, random?: Random): void {
  const row = new Float64Array(d);
  const squaredNorm = () => {
    let s = 0;
    for (let k = 0; k < d; k++) s += row[k]! ** 2;
    return s;
  };
  const project = (i: number) => {
    for (let j = 0; j < i; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += row[k]! * a[j * d + k]!;
      for (let k = 0; k < d; k++) row[k] = row[k]! - dot * a[j * d + k]!;
    }
  };
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < d; k++) row[k] = a[i * d + k]!;
    for (let attempt = 0; ; attempt++) {
      const original = squaredNorm();
      project(i);
      let norm = squaredNorm();
      if (norm < 0.25 * original) {
        project(i); // twice is enough (Kahan–Parlett)
        norm = squaredNorm();
      }
      // Under 1e-4 of its length left: numerically in the span (float32 rows), so no direction of its own.
      if (norm > 1e-8 * original || !random || attempt === 3) break;
      for (let k = 0; k < d; k++) row[k] = random.gaussian();
    }
    const norm = squaredNorm();
    const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let k = 0; k < d; k++) a[i * d + k] = row[k]! * inv;
  }
}
