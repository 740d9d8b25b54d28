// WebAssembly SIMD kernels for the index's hot loops, compiled by AssemblyScript (`npm run build:wasm`).
// Every pointer is a byte address in this module's memory; strides (lda, ldb, ldo) count f32 elements.
// src/ann/kernels/js.ts computes the same things in plain TypeScript (the fallback, and the tests' oracle).

@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** Dot product of two f32 vectors of length d. */
export function dot(a: usize, b: usize, d: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let k = 0;
  for (; k + 8 <= d; k += 8) {
    const o = <usize>k << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  for (; k + 4 <= d; k += 4) {
    const o = <usize>k << 2;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; k < d; k++) {
    const o = <usize>k << 2;
    s += load<f32>(a + o) * load<f32>(b + o);
  }
  return s;
}

/** 4 rows of A against 2 rows of B: eight dot products sharing their loads. */
@inline function micro4x2(a: usize, lda: usize, b: usize, ldb: usize, d: i32, out: usize, ldo: usize): void {
  const a1 = a + lda;
  const a2 = a1 + lda;
  const a3 = a2 + lda;
  const b1 = b + ldb;
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= d; k += 4) {
    const o = <usize>k << 2;
    const x0 = v128.load(b + o);
    const x1 = v128.load(b1 + o);
    const y0 = v128.load(a + o);
    c00 = f32x4.add(c00, f32x4.mul(y0, x0));
    c01 = f32x4.add(c01, f32x4.mul(y0, x1));
    const y1 = v128.load(a1 + o);
    c10 = f32x4.add(c10, f32x4.mul(y1, x0));
    c11 = f32x4.add(c11, f32x4.mul(y1, x1));
    const y2 = v128.load(a2 + o);
    c20 = f32x4.add(c20, f32x4.mul(y2, x0));
    c21 = f32x4.add(c21, f32x4.mul(y2, x1));
    const y3 = v128.load(a3 + o);
    c30 = f32x4.add(c30, f32x4.mul(y3, x0));
    c31 = f32x4.add(c31, f32x4.mul(y3, x1));
  }
  let s00 = hsum(c00);
  let s01 = hsum(c01);
  let s10 = hsum(c10);
  let s11 = hsum(c11);
  let s20 = hsum(c20);
  let s21 = hsum(c21);
  let s30 = hsum(c30);
  let s31 = hsum(c31);
  for (; k < d; k++) {
    const o = <usize>k << 2;
    const x0 = load<f32>(b + o);
    const x1 = load<f32>(b1 + o);
    s00 += load<f32>(a + o) * x0;
    s01 += load<f32>(a + o) * x1;
    s10 += load<f32>(a1 + o) * x0;
    s11 += load<f32>(a1 + o) * x1;
    s20 += load<f32>(a2 + o) * x0;
    s21 += load<f32>(a2 + o) * x1;
    s30 += load<f32>(a3 + o) * x0;
    s31 += load<f32>(a3 + o) * x1;
  }
  store<f32>(out, s00);
  store<f32>(out, s01, 4);
  store<f32>(out + ldo, s10);
  store<f32>(out + ldo, s11, 4);
  store<f32>(out + 2 * ldo, s20);
  store<f32>(out + 2 * ldo, s21, 4);
  store<f32>(out + 3 * ldo, s30);
  store<f32>(out + 3 * ldo, s31, 4);
}

/**
 * out[i·ldo + j] = A_i · B_j for i < m, j < n (A m×d, B n×d, both row-major: "A times B transposed").
 * B is walked in blocks that stay in L2 cache while every row of A passes over them.
 */
export function gemmNT(a: usize, m: i32, lda: i32, b: usize, n: i32, ldb: i32, d: i32, out: usize, ldo: i32): void {
  const ldaB = <usize>lda << 2;
  const ldbB = <usize>ldb << 2;
  const ldoB = <usize>ldo << 2;
  let block = (65536 / max(d, 1)) & ~1;
  if (block < 2) block = 2;
  for (let j0 = 0; j0 < n; j0 += block) {
    const j1 = min(n, j0 + block);
    let i = 0;
    for (; i + 4 <= m; i += 4) {
      const ai = a + <usize>i * ldaB;
      const oi = out + <usize>i * ldoB;
      let j = j0;
      for (; j + 2 <= j1; j += 2) micro4x2(ai, ldaB, b + <usize>j * ldbB, ldbB, d, oi + (<usize>j << 2), ldoB);
      for (; j < j1; j++) {
        const bj = b + <usize>j * ldbB;
        const oj = oi + (<usize>j << 2);
        store<f32>(oj, dot(ai, bj, d));
        store<f32>(oj + ldoB, dot(ai + ldaB, bj, d));
        store<f32>(oj + 2 * ldoB, dot(ai + 2 * ldaB, bj, d));
        store<f32>(oj + 3 * ldoB, dot(ai + 3 * ldaB, bj, d));
      }
    }
    for (; i < m; i++) {
      const ai = a + <usize>i * ldaB;
      const oi = out + <usize>i * ldoB;
      for (let j = j0; j < j1; j++) store<f32>(oi + (<usize>j << 2), dot(ai, b + <usize>j * ldbB, d));
    }
  }
}

/**
 * For each row x_i of X (m×d): the centroid j minimising ‖c_j‖² − 2 x_i·c_j (‖x_i‖² is the caller's to add).
 * Writes labels (i32) and that minimum (f32). Uses `scratch` (4·n f32) for four rows of products at a time,
 * so no m×n matrix is ever materialised.
 */
export function nearest(
  x: usize, m: i32, ldx: i32, c: usize, n: i32, ldc: i32, d: i32,
  cNorms: usize, labels: usize, values: usize, scratch: usize,
): void {
  for (let i0 = 0; i0 < m; i0 += 4) {
    const rows = min(4, m - i0);
    gemmNT(x + (<usize>i0 * ldx << 2), rows, ldx, c, n, ldc, d, scratch, n);
    for (let r = 0; r < rows; r++) {
      const row = scratch + (<usize>r * n << 2);
      let best: f32 = Infinity;
      let bestJ = 0;
      for (let j = 0; j < n; j++) {
        const v = load<f32>(cNorms + (<usize>j << 2)) - 2 * load<f32>(row + (<usize>j << 2));
        if (v < best) {
          best = v;
          bestJ = j;
        }
      }
      store<i32>(labels + (<usize>(i0 + r) << 2), bestJ);
      store<f32>(values + (<usize>(i0 + r) << 2), best);
    }
  }
}

/** Squared norms of n rows. */
export function rowNorms(a: usize, n: i32, lda: i32, d: i32, out: usize): void {
  const ldaB = <usize>lda << 2;
  for (let i = 0; i < n; i++) {
    const ai = a + <usize>i * ldaB;
    store<f32>(out + (<usize>i << 2), dot(ai, ai, d));
  }
}

/** Grows memory so that `bytes` are addressable; returns the new size in bytes. */
export function ensureMemory(bytes: usize): usize {
  const have = <usize>memory.size() << 16;
  if (bytes > have) memory.grow(<i32>((bytes - have + 0xffff) >> 16));
  return <usize>memory.size() << 16;
}

/**
 * The k-means update's sums: sums[labels[i]] += x_i for the n rows of X, accumulated in f64 so large
 * clusters lose no precision. `sums` (k·d f64) must start zeroed.
 */
export function clusterSums(x: usize, n: i32, ldx: i32, d: i32, labels: usize, sums: usize): void {
  const ldxB = <usize>ldx << 2;
  const rowB = <usize>d << 3;
  for (let i = 0; i < n; i++) {
    const row = x + <usize>i * ldxB;
    const dst = sums + <usize>load<i32>(labels + (<usize>i << 2)) * rowB;
    let k = 0;
    for (; k + 4 <= d; k += 4) {
      const v = v128.load(row + (<usize>k << 2));
      const o = dst + (<usize>k << 3);
      v128.store(o, f64x2.add(v128.load(o), f64x2.promote_low_f32x4(v)));
      v128.store(o, f64x2.add(v128.load(o, 16), f64x2.promote_low_f32x4(v128.shuffle<i32>(v, v, 2, 3, 0, 1))), 16);
    }
    for (; k < d; k++) {
      const o = dst + (<usize>k << 3);
      store<f64>(o, load<f64>(o) + <f64>load<f32>(row + (<usize>k << 2)));
    }
  }
}

/** out[i] = a[i] + b[i] for n f32 (n a multiple of 4): folds a partition's term into a query's table. */
export function addVectors(a: usize, b: usize, n: i32, out: usize): void {
  for (let i = 0; i < n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
}

/**
 * Product-quantized distances of n codes (M bytes each) from one lookup table (M × 256 f32):
 * out[i] = base + Σ_m table[m·256 + codes[i·M + m]].
 */
export function scanCodes(codes: usize, n: i32, M: i32, table: usize, base: f32, out: usize): void {
  const stride = <usize>M;
  for (let i = 0; i < n; i++) {
    const code = codes + <usize>i * stride;
    let s0: f32 = base;
    let s1: f32 = 0;
    let m = 0;
    // Two sums in flight: the lookups of one do not wait on the additions of the other.
    for (; m + 2 <= M; m += 2) {
      s0 += load<f32>(table + ((<usize>m << 10) + (<usize>load<u8>(code + m) << 2)));
      s1 += load<f32>(table + ((<usize>(m + 1) << 10) + (<usize>load<u8>(code + m + 1) << 2)));
    }
    if (m < M) s0 += load<f32>(table + ((<usize>m << 10) + (<usize>load<u8>(code + m) << 2)));
    store<f32>(out + (<usize>i << 2), s0 + s1);
  }
}

/**
 * `nearest` for short vectors (sub-spaces of a few dimensions), where horizontal sums would cost more
 * than the products: centroids come packed in blocks of four, lane c of row j holding centroid c's
 * j-th value (`packed`: ⌈n/4⌉ blocks of d × 4 f32; `cNorms` padded to a multiple of 4 with +Infinity),
 * so each lane accumulates one centroid's dot product. Same results and tie-breaking as `nearest`.
 */
export function nearestPacked(
  x: usize, m: i32, ldx: i32, packed: usize, blocks: i32, d: i32,
  cNorms: usize, labels: usize, values: usize,
): void {
  const blockB = <usize>d << 4;
  const two = f32x4.splat(2);
  const lanes = i32x4(0, 1, 2, 3);
  for (let i = 0; i < m; i++) {
    const xi = x + ((<usize>i * <usize>ldx) << 2);
    let best = f32x4.splat(Infinity);
    let bestIndex = i32x4.splat(0);
    let b = 0;
    // Four blocks (16 centroids) share each broadcast of x_j.
    for (; b + 4 <= blocks; b += 4) {
      const p0 = packed + <usize>b * blockB;
      const p1 = p0 + blockB;
      const p2 = p1 + blockB;
      const p3 = p2 + blockB;
      let acc0 = f32x4.splat(0);
      let acc1 = f32x4.splat(0);
      let acc2 = f32x4.splat(0);
      let acc3 = f32x4.splat(0);
      for (let j = 0; j < d; j++) {
        const xj = v128.load32_splat(xi + (<usize>j << 2));
        const o = <usize>j << 4;
        acc0 = f32x4.add(acc0, f32x4.mul(xj, v128.load(p0 + o)));
        acc1 = f32x4.add(acc1, f32x4.mul(xj, v128.load(p1 + o)));
        acc2 = f32x4.add(acc2, f32x4.mul(xj, v128.load(p2 + o)));
        acc3 = f32x4.add(acc3, f32x4.mul(xj, v128.load(p3 + o)));
      }
      const v0 = f32x4.sub(v128.load(cNorms + (<usize>b << 4)), f32x4.mul(two, acc0));
      const m0 = f32x4.lt(v0, best);
      best = v128.bitselect(v0, best, m0);
      bestIndex = v128.bitselect(i32x4.add(lanes, i32x4.splat(b << 2)), bestIndex, m0);
      const v1 = f32x4.sub(v128.load(cNorms + (<usize>(b + 1) << 4)), f32x4.mul(two, acc1));
      const m1 = f32x4.lt(v1, best);
      best = v128.bitselect(v1, best, m1);
      bestIndex = v128.bitselect(i32x4.add(lanes, i32x4.splat((b + 1) << 2)), bestIndex, m1);
      const v2 = f32x4.sub(v128.load(cNorms + (<usize>(b + 2) << 4)), f32x4.mul(two, acc2));
      const m2 = f32x4.lt(v2, best);
      best = v128.bitselect(v2, best, m2);
      bestIndex = v128.bitselect(i32x4.add(lanes, i32x4.splat((b + 2) << 2)), bestIndex, m2);
      const v3 = f32x4.sub(v128.load(cNorms + (<usize>(b + 3) << 4)), f32x4.mul(two, acc3));
      const m3 = f32x4.lt(v3, best);
      best = v128.bitselect(v3, best, m3);
      bestIndex = v128.bitselect(i32x4.add(lanes, i32x4.splat((b + 3) << 2)), bestIndex, m3);
    }
    for (; b < blocks; b++) {
      const p0 = packed + <usize>b * blockB;
      let acc0 = f32x4.splat(0);
      for (let j = 0; j < d; j++) {
        acc0 = f32x4.add(acc0, f32x4.mul(v128.load32_splat(xi + (<usize>j << 2)), v128.load(p0 + (<usize>j << 4))));
      }
      const v0 = f32x4.sub(v128.load(cNorms + (<usize>b << 4)), f32x4.mul(two, acc0));
      const m0 = f32x4.lt(v0, best);
      best = v128.bitselect(v0, best, m0);
      bestIndex = v128.bitselect(i32x4.add(lanes, i32x4.splat(b << 2)), bestIndex, m0);
    }
    // Across the lanes: the smallest value, and on a tie the lowest centroid index.
    let bestV = f32x4.extract_lane(best, 0);
    let bestJ = i32x4.extract_lane(bestIndex, 0);
    for (let lane = 1; lane < 4; lane++) {
      const v = lane === 1 ? f32x4.extract_lane(best, 1) : lane === 2 ? f32x4.extract_lane(best, 2) : f32x4.extract_lane(best, 3);
      const j = lane === 1 ? i32x4.extract_lane(bestIndex, 1) : lane === 2 ? i32x4.extract_lane(bestIndex, 2) : i32x4.extract_lane(bestIndex, 3);
      if (v < bestV || (v === bestV && j < bestJ)) {
        bestV = v;
        bestJ = j;
      }
    }
    store<i32>(labels + (<usize>i << 2), bestJ);
    store<f32>(values + (<usize>i << 2), bestV);
  }
}
