// WebAssembly SIMD kernels for the index's hot loops, compiled by AssemblyScript (`npm run build:wasm`).
// Every pointer is a byte address in this module's memory; strides (lda, ldb, ldo) count f32 elements.
// src/ann/kernels/js.ts computes the same things in plain TypeScript (the fallback, and the tests' oracle).

import { dotF16, dotF32, f16Scalar, f16x4, hsum, l2F16, l2F32 } from './vectors';

export * from './rabitq';

/** Dot product of two f32 vectors of length d. */
function dot(a: usize, b: usize, d: i32): f32 {
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

// ---------------------------------------------------------------------------------------------------
// HNSW graph kernels. Each HNSW index owns one instance of this module, so the graph's layout lives in
// the globals below: `graphInit` reads them from a descriptor that src/ann/kernels/wasm-graph.ts writes
// (byte addresses in this instance's memory). src/ann/kernels/js-graph.ts is the same algorithm in
// TypeScript. Nodes are numbered in insertion order; links are node numbers.
//
// Rows are stored as f32, f16 (bits) or u8 codes (x̂_j = lo_j + scale_j · c_j). A query "slot" holds a
// prepared query: f32 data (the vector, or for u8 the weights w) and a base, so that
//   f32 / f16:  l2 = Σ (q_j − x_j)²,               dot = −Σ q_j x_j
//   u8:         l2 = base − 2 Σ w_j c_j + term(x),  dot = base − Σ w_j c_j
// where term(x) = Σ (scale_j c_j)² is kept per row. Slot header: data pointer, base, unit. A u8 row
// prepared as a query (an insertion's, the heuristic's) keeps its weights as i16, w_j ≈ unit · w16_j:
// a third of the instructions per distance, and the rounding (one part in ~30,000 of the largest weight)
// moves the build's choices no more than int8 itself does. A user's query keeps f32 weights (unit 0),
// so the distances a search returns are as exact as before.

/** Slots 0 and 1 hold an insertion's query and a neighbour (see connect); the heuristic's kept nodes follow. */
const KEPT_SLOT = 2;

const STORE_F32 = 0;
const STORE_F16 = 1;

const TRACE_ENTRY = 0;
const TRACE_EXPAND = 1;
const TRACE_REJECT = 2;
const TRACE_ACCEPT = 3;

let gD: i32 = 0;
let gStorage: i32 = 0;
let gDot: bool = false;
let gM: i32 = 0;
let gM0: i32 = 0;
let gCapacity: i32 = 0;
/** Node blocks: the row, then (at gLinkOffset) the level-0 link count and up to M0 links. */
let gBlocks: usize = 0;
let gBlockBytes: usize = 0;
let gLinkOffset: usize = 0;
let gTerms: usize = 0;
let gLo: usize = 0;
let gScale: usize = 0;
let gUpperOffset: usize = 0;
let gUpper: usize = 0;
let gDeleted: usize = 0;
let gVisited: usize = 0;
let gTag: i32 = 0;
let gSlots: usize = 0;
let gSlotBytes: usize = 0;
let gCandD: usize = 0;
let gCandN: usize = 0;
let gCandCap: i32 = 0;
let gCandSize: i32 = 0;
let gResD: usize = 0;
let gResN: usize = 0;
let gResSize: i32 = 0;
let gSelD: usize = 0;
let gSelN: usize = 0;
let gListD: usize = 0;
let gListN: usize = 0;
let gGather: usize = 0;
let gTrace: usize = 0;
let gTraceCap: i32 = 0;
let gTraceCount: i32 = 0;
let gGreedyDist: f32 = 0;
/** How much of a row searchLayer touches ahead: its first four cache lines (the rest streams in). */
let gTouchBytes: usize = 0;
/** Receives the prefetching loads (see searchLayer), so they are not optimized away. */
let gSink: u32 = 0;

/** Reads the layout descriptor (u32 fields, in the order of GRAPH_FIELDS in wasm-graph.ts). */
export function graphInit(desc: usize): void {
  gD = load<i32>(desc, 0);
  gStorage = load<i32>(desc, 8);
  gDot = load<i32>(desc, 12) != 0;
  gM = load<i32>(desc, 16);
  gM0 = load<i32>(desc, 20);
  gCapacity = load<i32>(desc, 24);
  gBlocks = load<u32>(desc, 28);
  gTerms = load<u32>(desc, 32);
  gLo = load<u32>(desc, 36);
  gScale = gLo + (<usize>gD << 2);
  gBlockBytes = load<u32>(desc, 40);
  gLinkOffset = <usize>load<u32>(desc, 108);
  gTouchBytes = min(gLinkOffset, 256);
  gUpperOffset = load<u32>(desc, 44);
  gUpper = load<u32>(desc, 48);
  gDeleted = load<u32>(desc, 52);
  gVisited = load<u32>(desc, 56);
  gSlots = load<u32>(desc, 60);
  gSlotBytes = load<u32>(desc, 64);
  gCandD = load<u32>(desc, 68);
  gCandN = load<u32>(desc, 72);
  gCandCap = load<i32>(desc, 76);
  gResD = load<u32>(desc, 80);
  gResN = load<u32>(desc, 84);
  gSelD = load<u32>(desc, 88);
  gSelN = load<u32>(desc, 92);
  gListD = load<u32>(desc, 96);
  gListN = load<u32>(desc, 100);
  gGather = load<u32>(desc, 104);
  gTrace = load<u32>(desc, 108);
  gTraceCap = 0;
  gTraceCount = 0;
  // Tags restart, so the marks of earlier searches must go.
  memory.fill(gVisited, 0, <usize>gCapacity << 1);
  gTag = 0;
}

/** Starts (cap > 0: room for cap events at `at`) or stops (cap 0) recording; returns the events since the last start. */
export function graphTrace(at: usize, cap: i32): i32 {
  gTrace = at;
  const count = gTraceCount;
  gTraceCap = cap;
  gTraceCount = 0;
  return count;
}

@inline function slotHeader(slot: i32): usize {
  return gSlots + <usize>slot * gSlotBytes;
}

@inline function slotData(slot: i32): usize {
  return slotHeader(slot) + 64;
}

@inline function rowPtr(node: u32): usize {
  return gBlocks + <usize>node * gBlockBytes;
}

@inline function linksOf(node: u32, level: i32): usize {
  if (level == 0) return gBlocks + <usize>node * gBlockBytes + gLinkOffset;
  const start = <usize>load<u32>(gUpperOffset + (<usize>node << 2)) + <usize>(level - 1) * <usize>(gM + 1);
  return gUpper + (start << 2);
}

@inline function isDeleted(node: u32): bool {
  return load<u8>(gDeleted + <usize>node) != 0;
}

@inline function trace(kind: i32, level: i32, from: u32, to: u32, dist: f32): void {
  if (gTraceCap > 0) {
    if (gTraceCount < gTraceCap) {
      const at = gTrace + (<usize>gTraceCount << 4);
      store<u32>(at, (<u32>level << 8) | <u32>kind);
      store<u32>(at, from, 4);
      store<u32>(at, to, 8);
      store<f32>(at, dist, 12);
    }
    gTraceCount++;
  }
}

/**
 * l2F32 that gives up once a partial sum reaches `bound` (every 64 dimensions): the caller only needs
 * to know the distance is not below it. Returns the exact distance when it is below.
 */
function l2F32Bounded(q: usize, x: usize, d: i32, bound: f32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let k = 0;
  // The same sums in the same order as l2F32, so a distance that is not given up on is the same.
  for (; k + 16 <= d; k += 16) {
    const o = <usize>k << 2;
    const t0 = f32x4.sub(v128.load(q + o), v128.load(x + o));
    const t1 = f32x4.sub(v128.load(q + o, 16), v128.load(x + o, 16));
    const t2 = f32x4.sub(v128.load(q + o, 32), v128.load(x + o, 32));
    const t3 = f32x4.sub(v128.load(q + o, 48), v128.load(x + o, 48));
    a0 = f32x4.add(a0, f32x4.mul(t0, t0));
    a1 = f32x4.add(a1, f32x4.mul(t1, t1));
    a2 = f32x4.add(a2, f32x4.mul(t2, t2));
    a3 = f32x4.add(a3, f32x4.mul(t3, t3));
    if ((k & 63) == 48 && k + 16 < d) {
      const partial = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
      if (partial >= bound) return partial;
    }
  }
  for (; k + 4 <= d; k += 4) {
    const o = <usize>k << 2;
    const t = f32x4.sub(v128.load(q + o), v128.load(x + o));
    a0 = f32x4.add(a0, f32x4.mul(t, t));
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; k < d; k++) {
    const o = <usize>k << 2;
    const t = load<f32>(q + o) - load<f32>(x + o);
    s += t * t;
  }
  return s;
}

/** Σ w_j c_j over u8 codes: sixteen codes widened to four f32x4 per step. */
@inline function dotU8F32(w: usize, c: usize, d: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let k = 0;
  for (; k + 16 <= d; k += 16) {
    const bytes = v128.load(c + <usize>k);
    const lo = i16x8.extend_low_i8x16_u(bytes);
    const hi = i16x8.extend_high_i8x16_u(bytes);
    const o = <usize>k << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(w + o), f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(lo))));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(w + o, 16), f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(lo))));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(w + o, 32), f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(hi))));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(w + o, 48), f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(hi))));
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; k < d; k++) s += load<f32>(w + (<usize>k << 2)) * <f32>load<u8>(c + <usize>k);
  return s;
}

/**
 * Σ w16_j c_j over u8 codes, the weights as i16: sixteen codes widened to i16 and multiplied pairwise
 * into 32-bit sums (i32x4.dot_i16x8_s), where f32 weights took six widenings, four conversions and four
 * multiplications per sixteen codes. Thirty-two codes a step; weightLimit keeps every lane of a0 + a1
 * within i32, so the sum is exact until it is rounded once to f32.
 */
@inline function dotU8I16(w: usize, c: usize, d: i32): f32 {
  let a0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  let k = 0;
  for (; k + 32 <= d; k += 32) {
    const b0 = v128.load(c + <usize>k);
    const b1 = v128.load(c + <usize>k, 16);
    const o = <usize>k << 1;
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(b0), v128.load(w + o)));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(b0), v128.load(w + o, 16)));
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(b1), v128.load(w + o, 32)));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(b1), v128.load(w + o, 48)));
  }
  if (k + 16 <= d) {
    const bytes = v128.load(c + <usize>k);
    const o = <usize>k << 1;
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(bytes), v128.load(w + o)));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(bytes), v128.load(w + o, 16)));
    k += 16;
  }
  const lanes = i32x4.add(a0, a1);
  const pairs = i64x2.add(i64x2.extend_low_i32x4_s(lanes), i64x2.extend_high_i32x4_s(lanes));
  let s = i64x2.extract_lane(pairs, 0) + i64x2.extract_lane(pairs, 1);
  for (; k < d; k++) s += <i64>(<i32>load<i16>(w + (<usize>k << 1)) * <i32>load<u8>(c + <usize>k));
  return <f32>s;
}

/** 1.5 · 2²³: adding it to a float of magnitude below 2²² leaves that float rounded (ties to even) in the low mantissa bits. */
const ROUNDING_MAGIC: f32 = 12582912.0;

/**
 * `w` rounded to integers, ties to even, as i32 lanes (|w| < 2²²): one addition and one subtraction,
 * where nearest + trunc_sat take a fix-up sequence on x64.
 */
@inline function roundToI32(w: v128, magic: v128): v128 {
  return i32x4.sub(f32x4.add(w, magic), magic);
}

/**
 * The largest i16 weight for which no 32-bit lane of a0 + a1 in dotU8I16 can overflow: a lane adds four
 * products of at most 255 · |w16| per sixteen dimensions.
 */
@inline function weightLimit(d: i32): f32 {
  return <f32>min(32767.0, Math.floor(2147483647.0 / (1020.0 * <f64>max(1, d >> 4))));
}

/**
 * Turns the d f32 weights at `data` into i16 in place (the first half of the same bytes), the largest
 * at weightLimit; returns what one unit of them stands for.
 */
function weightsToI16(data: usize, d: i32): f32 {
  let most = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= d; j += 4) most = f32x4.pmax(most, f32x4.abs(v128.load(data + (<usize>j << 2))));
  let largest = max(max(f32x4.extract_lane(most, 0), f32x4.extract_lane(most, 1)), max(f32x4.extract_lane(most, 2), f32x4.extract_lane(most, 3)));
  for (; j < d; j++) largest = max(largest, abs(load<f32>(data + (<usize>j << 2))));
  const unit = largest > 0 ? largest / weightLimit(d) : <f32>1;
  const inverse = <f32>1 / unit;
  const v = f32x4.splat(inverse);
  // Forward in place: eight values (32 bytes at 4j) are read before their 16 bytes at 2j are written.
  j = 0;
  const magic = f32x4.splat(ROUNDING_MAGIC);
  for (; j + 8 <= d; j += 8) {
    const a = roundToI32(f32x4.mul(v128.load(data + (<usize>j << 2)), v), magic);
    const b = roundToI32(f32x4.mul(v128.load(data + (<usize>j << 2), 16), v), magic);
    v128.store(data + (<usize>j << 1), i16x8.narrow_i32x4_s(a, b));
  }
  for (; j < d; j++) store<i16>(data + (<usize>j << 1), <i16><i32>f32.nearest(load<f32>(data + (<usize>j << 2)) * inverse));
  return unit;
}

/** Internal distance from the query in `slot` to stored row `node` (see the table above). */
@inline function dist(slot: i32, node: u32): f32 {
  const header = slotHeader(slot);
  const q = <usize>load<u32>(header);
  const x = rowPtr(node);
  if (gStorage == STORE_F32) return gDot ? -dotF32(q, x, gD) : l2F32(q, x, gD);
  if (gStorage == STORE_F16) return gDot ? -dotF16(q, x, gD) : l2F16(q, x, gD);
  const unit = load<f32>(header, 8);
  const s = unit == 0 ? dotU8F32(q, x, gD) : dotU8I16(q, x, gD) * unit;
  const base = load<f32>(header, 4);
  return gDot ? base - s : base - 2 * s + load<f32>(gTerms + (<usize>node << 2));
}

/**
 * dist() where only a value below `bound` matters: float32 l2 stops early once the partial sum reaches
 * it (what it returns is then some value ≥ bound). While tracing, the exact distance.
 */
@inline function distBelow(slot: i32, node: u32, bound: f32): f32 {
  if (gStorage == STORE_F32 && !gDot && gTraceCap == 0) {
    return l2F32Bounded(<usize>load<u32>(slotHeader(slot)), rowPtr(node), gD, bound);
  }
  return dist(slot, node);
}

/** Exported for the tests: the distance from `slot` to `node`. */
export function graphDistance(slot: i32, node: u32): f32 {
  return dist(slot, node);
}

/** Prepares `slot` from a raw f32 query at `src` (d values). */
export function graphPrepareQuery(slot: i32, src: usize): void {
  const header = slotHeader(slot);
  const data = slotData(slot);
  store<u32>(header, <u32>data);
  if (gStorage != STORE_F32 && gStorage != STORE_F16) {
    let base: f32 = 0;
    for (let j = 0; j < gD; j++) {
      const o = <usize>j << 2;
      const q = load<f32>(src + o);
      const lo = load<f32>(gLo + o);
      const scale = load<f32>(gScale + o);
      if (gDot) {
        store<f32>(data + o, q * scale);
        base -= q * lo;
      } else {
        const r = q - lo;
        store<f32>(data + o, r * scale);
        base += r * r;
      }
    }
    store<f32>(header, base, 4);
    store<f32>(header, 0, 8);
    return;
  }
  memory.copy(data, src, <usize>gD << 2);
}

/** Prepares `slot` from stored row `node` (no copy for f32 rows). */
function prepareRow(slot: i32, node: u32): void {
  const header = slotHeader(slot);
  const x = rowPtr(node);
  if (gStorage == STORE_F32) {
    store<u32>(header, <u32>x);
    return;
  }
  const data = slotData(slot);
  store<u32>(header, <u32>data);
  if (gStorage == STORE_F16) {
    let k = 0;
    for (; k + 4 <= gD; k += 4) v128.store(data + (<usize>k << 2), f16x4(x + (<usize>k << 1)));
    for (; k < gD; k++) store<f32>(data + (<usize>k << 2), f16Scalar(load<u16>(x + (<usize>k << 1))));
    return;
  }
  if (!gDot) {
    // w_j = scale_j² c_j, as i16 in one pass on a unit common to every row (the largest scale_j² · 255
    // at weightLimit), so no pass over the row looks for its largest weight first.
    let m0 = f32x4.splat(0);
    let m1 = f32x4.splat(0);
    let k = 0;
    for (; k + 8 <= gD; k += 8) {
      m0 = f32x4.pmax(m0, v128.load(gScale + (<usize>k << 2)));
      m1 = f32x4.pmax(m1, v128.load(gScale + (<usize>k << 2), 16));
    }
    const most = f32x4.pmax(m0, m1);
    let largest = max(max(f32x4.extract_lane(most, 0), f32x4.extract_lane(most, 1)), max(f32x4.extract_lane(most, 2), f32x4.extract_lane(most, 3)));
    for (; k < gD; k++) largest = max(largest, load<f32>(gScale + (<usize>k << 2)));
    const unit = largest > 0 ? (largest * largest * 255) / weightLimit(gD) : <f32>1;
    const v = f32x4.splat(<f32>1 / unit);
    const magic = f32x4.splat(ROUNDING_MAGIC);
    let j = 0;
    for (; j + 16 <= gD; j += 16) {
      const bytes = v128.load(x + <usize>j);
      const lo = i16x8.extend_low_i8x16_u(bytes);
      const hi = i16x8.extend_high_i8x16_u(bytes);
      const o = <usize>j << 2;
      const s0 = v128.load(gScale + o);
      const s1 = v128.load(gScale + o, 16);
      const s2 = v128.load(gScale + o, 32);
      const s3 = v128.load(gScale + o, 48);
      const w0 = f32x4.mul(f32x4.mul(f32x4.mul(s0, s0), v), f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(lo)));
      const w1 = f32x4.mul(f32x4.mul(f32x4.mul(s1, s1), v), f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(lo)));
      const w2 = f32x4.mul(f32x4.mul(f32x4.mul(s2, s2), v), f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(hi)));
      const w3 = f32x4.mul(f32x4.mul(f32x4.mul(s3, s3), v), f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(hi)));
      const h = data + (<usize>j << 1);
      v128.store(h, i16x8.narrow_i32x4_s(roundToI32(w0, magic), roundToI32(w1, magic)));
      v128.store(h, i16x8.narrow_i32x4_s(roundToI32(w2, magic), roundToI32(w3, magic)), 16);
    }
    for (; j < gD; j++) {
      const sj = load<f32>(gScale + (<usize>j << 2));
      store<i16>(data + (<usize>j << 1), <i16><i32>f32.nearest(sj * sj * (<f32>1 / unit) * <f32>load<u8>(x + <usize>j)));
    }
    store<f32>(header, load<f32>(gTerms + (<usize>node << 2)), 4);
    store<f32>(header, unit, 8);
    return;
  }
  let base: f32 = 0;
  for (let j = 0; j < gD; j++) {
    const o = <usize>j << 2;
    const scale = load<f32>(gScale + o);
    const value = load<f32>(gLo + o) + scale * <f32>load<u8>(x + <usize>j);
    store<f32>(data + o, value * scale);
    base -= value * load<f32>(gLo + o);
  }
  store<f32>(header, base, 4);
  store<f32>(header, weightsToI16(data, gD), 8);
}

/** Exported for the tests: prepares `slot` from stored row `node`. */
export function graphPrepareRow(slot: i32, node: u32): void {
  prepareRow(slot, node);
}

function newTag(): i32 {
  gTag++;
  if (gTag > 0xffff) {
    memory.fill(gVisited, 0, <usize>gCapacity << 1);
    gTag = 1;
  }
  return gTag;
}

@inline function visited(node: u32, tag: i32): bool {
  return <i32>load<u16>(gVisited + (<usize>node << 1)) == tag;
}

@inline function visit(node: u32, tag: i32): void {
  store<u16>(gVisited + (<usize>node << 1), <u16>tag);
}

// Candidates: a binary min-heap on distance. Results: a binary max-heap (the worst kept on top).

function candPush(d: f32, n: u32): void {
  let i = gCandSize++;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const pd = load<f32>(gCandD + (<usize>parent << 2));
    if (pd <= d) break;
    store<f32>(gCandD + (<usize>i << 2), pd);
    store<u32>(gCandN + (<usize>i << 2), load<u32>(gCandN + (<usize>parent << 2)));
    i = parent;
  }
  store<f32>(gCandD + (<usize>i << 2), d);
  store<u32>(gCandN + (<usize>i << 2), n);
}

function candPop(): void {
  const size = --gCandSize;
  if (size == 0) return;
  const d = load<f32>(gCandD + (<usize>size << 2));
  const n = load<u32>(gCandN + (<usize>size << 2));
  let i = 0;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= size) break;
    let cd = load<f32>(gCandD + (<usize>child << 2));
    if (child + 1 < size) {
      const rd = load<f32>(gCandD + (<usize>(child + 1) << 2));
      if (rd < cd) {
        child++;
        cd = rd;
      }
    }
    if (cd >= d) break;
    store<f32>(gCandD + (<usize>i << 2), cd);
    store<u32>(gCandN + (<usize>i << 2), load<u32>(gCandN + (<usize>child << 2)));
    i = child;
  }
  store<f32>(gCandD + (<usize>i << 2), d);
  store<u32>(gCandN + (<usize>i << 2), n);
}

/** Keeps only the candidates nearer than `bound` (the others can never be expanded), as a heap again. */
function candPrune(bound: f32): void {
  const size = gCandSize;
  gCandSize = 0;
  for (let i = 0; i < size; i++) {
    const d = load<f32>(gCandD + (<usize>i << 2));
    if (d < bound) {
      // Entries move only to lower slots, so reading slot i after writing below it is safe.
      candPush(d, load<u32>(gCandN + (<usize>i << 2)));
    }
  }
}

function resPush(d: f32, n: u32): void {
  let i = gResSize++;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const pd = load<f32>(gResD + (<usize>parent << 2));
    if (pd >= d) break;
    store<f32>(gResD + (<usize>i << 2), pd);
    store<u32>(gResN + (<usize>i << 2), load<u32>(gResN + (<usize>parent << 2)));
    i = parent;
  }
  store<f32>(gResD + (<usize>i << 2), d);
  store<u32>(gResN + (<usize>i << 2), n);
}

/** Sift-down of (d, n) from slot 0 within the first `size` entries of the result heap. */
function resSiftDown(size: i32, d: f32, n: u32): void {
  let i = 0;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= size) break;
    let cd = load<f32>(gResD + (<usize>child << 2));
    if (child + 1 < size) {
      const rd = load<f32>(gResD + (<usize>(child + 1) << 2));
      if (rd > cd) {
        child++;
        cd = rd;
      }
    }
    if (cd <= d) break;
    store<f32>(gResD + (<usize>i << 2), cd);
    store<u32>(gResN + (<usize>i << 2), load<u32>(gResN + (<usize>child << 2)));
    i = child;
  }
  store<f32>(gResD + (<usize>i << 2), d);
  store<u32>(gResN + (<usize>i << 2), n);
}

/** Sorts the result heap in place, nearest first; returns its size. */
function resSort(): i32 {
  const n = gResSize;
  for (let end = n - 1; end > 0; end--) {
    const d = load<f32>(gResD + (<usize>end << 2));
    const node = load<u32>(gResN + (<usize>end << 2));
    store<f32>(gResD + (<usize>end << 2), load<f32>(gResD));
    store<u32>(gResN + (<usize>end << 2), load<u32>(gResN));
    resSiftDown(end, d, node);
  }
  return n;
}

/** Greedy descent on `level` from `node`: moves to any nearer neighbour until none is nearer. */
function greedy(slot: i32, node: u32, nodeDist: f32, level: i32): u32 {
  let changed = true;
  trace(TRACE_ENTRY, level, node, node, nodeDist);
  while (changed) {
    changed = false;
    const from = node;
    trace(TRACE_EXPAND, level, from, from, nodeDist);
    const links = linksOf(from, level);
    const count = <i32>load<u32>(links);
    for (let i = 1; i <= count; i++) {
      const n = load<u32>(links + (<usize>i << 2));
      const d = dist(slot, n);
      if (d < nodeDist) {
        trace(TRACE_ACCEPT, level, from, n, d);
        nodeDist = d;
        node = n;
        changed = true;
      } else {
        trace(TRACE_REJECT, level, from, n, d);
      }
    }
  }
  gGreedyDist = nodeDist;
  return node;
}

/**
 * Beam search on `level` from `entry` keeping the `ef` nearest (tombstones are traversed but never
 * kept); leaves them in the result arrays, nearest first, and returns how many. `anyDeleted` lets the
 * search go on past the bound while fewer than ef live nodes were found (as hnswlib does).
 */
function searchLayer(slot: i32, entry: u32, entryDist: f32, ef: i32, level: i32, anyDeleted: bool): i32 {
  const tag = newTag();
  visit(entry, tag);
  gCandSize = 0;
  gResSize = 0;
  trace(TRACE_ENTRY, level, entry, entry, entryDist);
  candPush(entryDist, entry);
  let bound: f32 = Infinity;
  if (!anyDeleted || !isDeleted(entry)) {
    resPush(entryDist, entry);
    bound = entryDist;
  }
  let touch: u32 = 0;
  while (gCandSize > 0) {
    const cd = load<f32>(gCandD);
    if (cd > bound && (gResSize >= ef || !anyDeleted)) break;
    const c = load<u32>(gCandN);
    candPop();
    trace(TRACE_EXPAND, level, c, c, cd);
    const links = linksOf(c, level);
    const count = <i32>load<u32>(links);
    let m = 0;
    for (let i = 1; i <= count; i++) {
      const n = load<u32>(links + (<usize>i << 2));
      if (!visited(n, tag)) {
        visit(n, tag);
        store<u32>(gGather + (<usize>m << 2), n);
        // WebAssembly has no prefetch: touching each new row's first lines here starts all their
        // cache misses together instead of one per distance below.
        const row = rowPtr(n);
        for (let o: usize = 0; o < gTouchBytes; o += 64) touch ^= load<u32>(row + o);
        m++;
      }
    }
    if (gCandSize + m > gCandCap) candPrune(bound);
    for (let i = 0; i < m; i++) {
      const n = load<u32>(gGather + (<usize>i << 2));
      const d = gResSize < ef ? dist(slot, n) : distBelow(slot, n, bound);
      if (gResSize < ef || d < bound) {
        trace(TRACE_ACCEPT, level, c, n, d);
        if (gCandSize < gCandCap) {
          candPush(d, n);
          // Its links are read if it is expanded, often soon: start that miss now, not then.
          touch ^= load<u32>(linksOf(n, level));
        }
        if (!anyDeleted || !isDeleted(n)) {
          // Full, d is below the worst kept: it replaces the worst (one sift, not a push and a pop).
          if (gResSize < ef) resPush(d, n);
          else resSiftDown(gResSize, d, n);
          bound = load<f32>(gResD);
        }
      } else {
        trace(TRACE_REJECT, level, c, n, d);
      }
    }
  }
  gSink ^= touch;
  return resSort();
}

/**
 * hnswlib's neighbour heuristic: walks the candidates (sorted, nearest first) and keeps one unless a
 * kept one is nearer to it than the query is, up to `max`; `skip` is never kept. Returns how many.
 */
function heuristic(inD: usize, inN: usize, count: i32, max: i32, outD: usize, outN: usize, skip: u32): i32 {
  let kept = 0;
  if (count < max) {
    for (let i = 0; i < count; i++) {
      const n = load<u32>(inN + (<usize>i << 2));
      if (n == skip) continue;
      store<f32>(outD + (<usize>kept << 2), load<f32>(inD + (<usize>i << 2)));
      store<u32>(outN + (<usize>kept << 2), n);
      kept++;
    }
    return kept;
  }
  // Kept nodes are prepared (once each, when first compared), not candidates: a candidate is compared
  // with few before it is turned down, and most are, so this prepares a fraction as many rows.
  let prepared = 0;
  for (let i = 0; i < count && kept < max; i++) {
    const e = load<u32>(inN + (<usize>i << 2));
    if (e == skip) continue;
    const de = load<f32>(inD + (<usize>i << 2));
    let good = true;
    for (let j = 0; j < kept; j++) {
      if (j == prepared) {
        prepareRow(KEPT_SLOT + j, load<u32>(outN + (<usize>j << 2)));
        prepared++;
      }
      if (distBelow(KEPT_SLOT + j, e, de) < de) {
        good = false;
        break;
      }
    }
    if (good) {
      store<f32>(outD + (<usize>kept << 2), de);
      store<u32>(outN + (<usize>kept << 2), e);
      kept++;
    }
  }
  return kept;
}

/** Adds link e → q on `level`; when e is full, keeps the heuristic's choice among its links and q. */
function connect(e: u32, q: u32, dq: f32, level: i32): void {
  const max = level == 0 ? gM0 : gM;
  const links = linksOf(e, level);
  const count = <i32>load<u32>(links);
  for (let i = 1; i <= count; i++) if (load<u32>(links + (<usize>i << 2)) == q) return;
  if (count < max) {
    store<u32>(links + (<usize>(count + 1) << 2), q);
    store<u32>(links, count + 1);
    return;
  }
  prepareRow(1, e);
  // Candidates sorted by distance from e (insertion sort: at most M0 + 1 of them).
  let size = 0;
  for (let i = 0; i <= count; i++) {
    const n = i == count ? q : load<u32>(links + (<usize>(i + 1) << 2));
    const d = i == count ? dq : dist(1, n);
    let j = size++;
    while (j > 0 && load<f32>(gListD + (<usize>(j - 1) << 2)) > d) {
      store<f32>(gListD + (<usize>j << 2), load<f32>(gListD + (<usize>(j - 1) << 2)));
      store<u32>(gListN + (<usize>j << 2), load<u32>(gListN + (<usize>(j - 1) << 2)));
      j--;
    }
    store<f32>(gListD + (<usize>j << 2), d);
    store<u32>(gListN + (<usize>j << 2), n);
  }
  const kept = heuristic(gListD, gListN, size, max, gSelD + (<usize>(gM0 + 2) << 2), gSelN + (<usize>(gM0 + 2) << 2), e);
  const keptN = gSelN + (<usize>(gM0 + 2) << 2);
  for (let i = 0; i < kept; i++) store<u32>(links + (<usize>(i + 1) << 2), load<u32>(keptN + (<usize>i << 2)));
  store<u32>(links, kept);
}

/** Words per level of a neighbour list from graphCandidates: the count, then M distances, then M nodes. */
@inline function selectionWords(): usize {
  return 1 + 2 * <usize>gM;
}

/**
 * The first half of an insertion: greedy descent from `entry` to q's top level, then on each level
 * min(level, maxLevel) … 0 a beam search of width efConstruction and the heuristic's choice of M
 * neighbours among what it found, written to `out` (one list per level, see selectionWords). Reads the
 * graph only (the heuristic compares vectors, not links), so threads may run it side by side.
 */
export function graphCandidates(
  q: u32, level: i32, entry: u32, maxLevel: i32, efConstruction: i32, anyDeleted: i32, out: usize,
): void {
  prepareRow(0, q);
  let node = entry;
  let nodeDist = dist(0, node);
  for (let lc = maxLevel; lc > level; lc--) {
    node = greedy(0, node, nodeDist, lc);
    nodeDist = gGreedyDist;
  }
  const words = selectionWords();
  let at = out;
  for (let lc = min(level, maxLevel); lc >= 0; lc--) {
    const found = searchLayer(0, node, nodeDist, efConstruction, lc, anyDeleted != 0);
    const kept = heuristic(gResD, gResN, found, gM, gSelD, gSelN, q);
    store<u32>(at, kept);
    memory.copy(at + 4, gSelD, <usize>kept << 2);
    memory.copy(at + 4 + (<usize>gM << 2), gSelN, <usize>kept << 2);
    // The next level starts from the nearest found (q itself when re-linking a node is skipped).
    for (let i = 0; i < found; i++) {
      const n = load<u32>(gResN + (<usize>i << 2));
      if (n == q) continue;
      node = n;
      nodeDist = load<f32>(gResD + (<usize>i << 2));
      break;
    }
    at += words << 2;
  }
}

/**
 * The second half: on each level q's links become its chosen neighbours (from graphCandidates), and
 * each of them links back to q. Writes the graph: one thread at a time.
 *
 * Nodes [batchFirst, q) of q's batch (`jobs`: the batch's job table, per node its level first) were
 * linked just before it but were not in the graph while q's candidates were searched: they join the
 * candidates here, so a batch of near neighbours (images of one class, added together) links to each
 * other, as inserting them one by one would. batchFirst == q: no batch.
 */
export function graphLink(
  q: u32, level: i32, maxLevel: i32, neighbours: usize, batchFirst: u32, jobs: usize, efConstruction: i32,
): void {
  const words = selectionWords();
  if (batchFirst < q) prepareRow(0, q);
  let at = neighbours;
  for (let lc = min(level, maxLevel); lc >= 0; lc--) {
    if (batchFirst < q) addBatchMates(q, lc, batchFirst, jobs, efConstruction, at);
    const kept = <i32>load<u32>(at);
    const nodes = at + 4 + (<usize>gM << 2);
    const links = linksOf(q, lc);
    for (let i = 0; i < kept; i++) store<u32>(links + (<usize>(i + 1) << 2), load<u32>(nodes + (<usize>i << 2)));
    store<u32>(links, kept);
    for (let i = 0; i < kept; i++) {
      connect(load<u32>(nodes + (<usize>i << 2)), q, load<f32>(at + 4 + (<usize>i << 2)), lc);
    }
    at += words << 2;
  }
}

/**
 * Chooses q's neighbours on `level` again, by the heuristic, among the ones in the list at `at` and
 * nodes [batchFirst, q) that reach that level (the nearest efConstruction of all); rewrites the list.
 * Needs q prepared in slot 0.
 */
function addBatchMates(q: u32, level: i32, batchFirst: u32, jobs: usize, efConstruction: i32, at: usize): void {
  const limit = max(efConstruction, gM);
  const chosen = <i32>load<u32>(at);
  gResSize = 0;
  for (let i = 0; i < chosen; i++) {
    const d = load<f32>(at + 4 + (<usize>i << 2));
    const n = load<u32>(at + 4 + (<usize>(gM + i) << 2));
    keepNearest(d, n, limit);
  }
  for (let n = batchFirst; n < q; n++) {
    if (isDeleted(n) || load<i32>(jobs + (<usize>(n - batchFirst) << 3)) < level) continue;
    keepNearest(dist(0, n), n, limit);
  }
  const found = resSort();
  const kept = heuristic(gResD, gResN, found, gM, gSelD, gSelN, q);
  store<u32>(at, kept);
  memory.copy(at + 4, gSelD, <usize>kept << 2);
  memory.copy(at + 4 + (<usize>gM << 2), gSelN, <usize>kept << 2);
}

@inline function keepNearest(d: f32, n: u32, limit: i32): void {
  if (gResSize < limit) resPush(d, n);
  else if (d < load<f32>(gResD)) resSiftDown(gResSize, d, n);
}

/**
 * Links node q (its row, level and upper-level storage already in place) into the graph: greedy
 * descent from `entry` to q's top level, then on each level a beam search of width efConstruction,
 * the heuristic's M neighbours, and the reverse links. Also re-links a node already in the graph.
 * `out` has room for the neighbour lists of every level (see graphCandidates).
 */
export function graphInsert(
  q: u32, level: i32, entry: u32, maxLevel: i32, efConstruction: i32, anyDeleted: i32, out: usize,
): void {
  graphCandidates(q, level, entry, maxLevel, efConstruction, anyDeleted, out);
  graphLink(q, level, maxLevel, out, q, 0, 0);
}

/**
 * Searches from `entry` for the prepared query in slot 0: greedy descent to level 1, then a beam of
 * width ef on level 0. Leaves the results in the result arrays, nearest first; returns how many.
 */
export function graphSearch(ef: i32, entry: u32, maxLevel: i32, anyDeleted: i32): i32 {
  let node = entry;
  let nodeDist = dist(0, node);
  for (let lc = maxLevel; lc > 0; lc--) {
    node = greedy(0, node, nodeDist, lc);
    nodeDist = gGreedyDist;
  }
  return searchLayer(0, node, nodeDist, ef, 0, anyDeleted != 0);
}

/**
 * Re-links node v on `level` without tombstones: candidates are the live nodes within two links of v
 * (the nearest efConstruction of them), chosen by the heuristic, and each chosen one links back as in an
 * insertion. Returns the number of links v keeps.
 */
export function graphRepair(v: u32, level: i32, efConstruction: i32): i32 {
  const max = level == 0 ? gM0 : gM;
  const links = linksOf(v, level);
  const count = <i32>load<u32>(links);
  prepareRow(1, v);
  const tag = newTag();
  visit(v, tag);
  gResSize = 0;
  for (let i = 1; i <= count; i++) {
    const u = load<u32>(links + (<usize>i << 2));
    if (!isDeleted(u)) consider(u, tag, efConstruction);
    const second = linksOf(u, level);
    const size = <i32>load<u32>(second);
    for (let j = 1; j <= size; j++) {
      const w = load<u32>(second + (<usize>j << 2));
      if (!isDeleted(w)) consider(w, tag, efConstruction);
    }
  }
  const found = resSort();
  const kept = heuristic(gResD, gResN, found, max, gSelD, gSelN, v);
  for (let i = 0; i < kept; i++) store<u32>(links + (<usize>(i + 1) << 2), load<u32>(gSelN + (<usize>i << 2)));
  store<u32>(links, kept);
  // As an insertion does: the new neighbours link back, so v stays reachable.
  for (let i = 0; i < kept; i++) {
    connect(load<u32>(gSelN + (<usize>i << 2)), v, load<f32>(gSelD + (<usize>i << 2)), level);
  }
  return kept;
}

@inline function consider(n: u32, tag: i32, limit: i32): void {
  if (visited(n, tag)) return;
  visit(n, tag);
  const d = dist(1, n);
  if (gResSize < limit) resPush(d, n);
  else if (d < load<f32>(gResD)) {
    resSiftDown(gResSize, d, n);
  }
}
