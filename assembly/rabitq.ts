// RaBitQ kernels of src/ann/ivf-rabitq.ts: the structured rotation, the fast-scan table of a query, the
// scan of 1-bit codes in blocks of 32, and exact distances to full rows for the re-rank.
// src/ann/kernels/js-rabitq.ts computes the same things in plain TypeScript.

import { dotF16, dotF32, hsum, l2F16, l2F32 } from './vectors';

/**
 * In-place Walsh–Hadamard transform of n f32 at x (n a power of two, at least 4), unscaled: the caller
 * folds 1/√n into the signs it multiplies by first. Steps of 1 and 2 run inside each f32x4.
 */
function fwht(x: usize, n: i32): void {
  const odd = f32x4(1, -1, 1, -1);
  const high = f32x4(1, 1, -1, -1);
  for (let i = 0; i < n; i += 4) {
    const p = x + (<usize>i << 2);
    let v = v128.load(p);
    v = f32x4.add(v128.shuffle<f32>(v, v, 1, 0, 3, 2), f32x4.mul(v, odd));
    v = f32x4.add(v128.shuffle<f32>(v, v, 2, 3, 0, 1), f32x4.mul(v, high));
    v128.store(p, v);
  }
  for (let h = 4; h < n; h <<= 1) {
    const hb = <usize>h << 2;
    for (let i = 0; i < n; i += h << 1) {
      const end = x + (<usize>(i + h) << 2);
      for (let a = x + (<usize>i << 2); a < end; a += 16) {
        const va = v128.load(a);
        const vb = v128.load(a + hb);
        v128.store(a, f32x4.add(va, vb));
        v128.store(a + hb, f32x4.sub(va, vb));
      }
    }
  }
}

@inline function scaleBy(x: usize, s: usize, n: i32): void {
  for (let k = 0; k < n; k += 4) {
    const o = <usize>k << 2;
    v128.store(x + o, f32x4.mul(v128.load(x + o), v128.load(s + o)));
  }
}

/**
 * Rotates `rows` rows of D f32 at x in place (D a multiple of 64; P the largest power of two ≤ D): per
 * round, multiply by the round's first signs and transform the first P values, then (when P < D) by its
 * second signs and transform the last P. `signs` holds rounds × 2 × D f32 of ±1/√P.
 */
export function rabitqRotate(x: usize, rows: i32, D: i32, P: i32, signs: usize, rounds: i32): void {
  const rowBytes = <usize>D << 2;
  const tail = <usize>(D - P) << 2;
  for (let r = 0; r < rows; r++) {
    const row = x + <usize>r * rowBytes;
    for (let t = 0; t < rounds; t++) {
      const s = signs + <usize>(2 * t) * rowBytes;
      scaleBy(row, s, D);
      fwht(row, P);
      if (P < D) {
        scaleBy(row, s + rowBytes, D);
        fwht(row + tail, P);
      }
    }
  }
}

/**
 * The fast-scan table of a rotated query q (D f32): for each group g of four dimensions and each
 * 4-bit pattern p, T = Σ_t bit_t(p)·q[4g + t], stored as the byte round((T − min_g) / Δ). Δ is the
 * smallest step that keeps every byte ≤ 255 and any sum of one byte per group below 2^16 (the scan
 * accumulates in 16-bit lanes). Writes G × 16 bytes at `lut` and, at `params`, Δ then Σ_g min_g then
 * Σ_j q_j (f32).
 */
export function rabitqLut(q: usize, D: i32, lut: usize, params: usize): void {
  const G = D >> 2;
  const zero = f32x4.splat(0);
  let maxRange = zero;
  let sumRange = zero;
  let offset = zero;
  let total = zero;
  // Four groups at a time (D is a multiple of 64): their sums of negative and of positive values.
  for (let g = 0; g < G; g += 4) {
    const p = q + (<usize>g << 4);
    const v0 = v128.load(p);
    const v1 = v128.load(p, 16);
    const v2 = v128.load(p, 32);
    const v3 = v128.load(p, 48);
    const lo = sums4(f32x4.pmin(v0, zero), f32x4.pmin(v1, zero), f32x4.pmin(v2, zero), f32x4.pmin(v3, zero));
    const hi = sums4(f32x4.pmax(v0, zero), f32x4.pmax(v1, zero), f32x4.pmax(v2, zero), f32x4.pmax(v3, zero));
    const range = f32x4.sub(hi, lo);
    maxRange = f32x4.pmax(maxRange, range);
    sumRange = f32x4.add(sumRange, range);
    offset = f32x4.add(offset, lo);
    total = f32x4.add(total, f32x4.add(hi, lo));
  }
  const widest = max(max(f32x4.extract_lane(maxRange, 0), f32x4.extract_lane(maxRange, 1)), max(f32x4.extract_lane(maxRange, 2), f32x4.extract_lane(maxRange, 3)));
  let delta = max(widest / 255, hsum(sumRange) / <f32>(65535 - <f32>G));
  if (!(delta > 0)) delta = 1;
  const inv = f32x4.splat(1 / delta);
  for (let g = 0; g < G; g += 4) {
    const p = q + (<usize>g << 4);
    const v0 = v128.load(p);
    const v1 = v128.load(p, 16);
    const v2 = v128.load(p, 32);
    const v3 = v128.load(p, 48);
    const lo = sums4(f32x4.pmin(v0, zero), f32x4.pmin(v1, zero), f32x4.pmin(v2, zero), f32x4.pmin(v3, zero));
    const out = lut + (<usize>g << 4);
    lutGroup(out, v0, v128.shuffle<f32>(lo, lo, 0, 0, 0, 0), inv);
    lutGroup(out + 16, v1, v128.shuffle<f32>(lo, lo, 1, 1, 1, 1), inv);
    lutGroup(out + 32, v2, v128.shuffle<f32>(lo, lo, 2, 2, 2, 2), inv);
    lutGroup(out + 48, v3, v128.shuffle<f32>(lo, lo, 3, 3, 3, 3), inv);
  }
  store<f32>(params, delta);
  store<f32>(params, hsum(offset), 4);
  store<f32>(params, hsum(total), 8);
}

/** [Σa, Σb, Σc, Σd]: the four vectors' lane sums. */
@inline function sums4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 1, 4, 5), v128.shuffle<f32>(a, b, 2, 3, 6, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 1, 4, 5), v128.shuffle<f32>(c, d, 2, 3, 6, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 2, 4, 6), v128.shuffle<f32>(ab, cd, 1, 3, 5, 7));
}

/**
 * One group's 16 table bytes: for the four values (a, b, c, d) of v and pattern p, the sum of those
 * whose bit is set, less the group's sum of negatives (lo, in every lane), over Δ (inv = 1/Δ).
 */
@inline function lutGroup(out: usize, v: v128, lo: v128, inv: v128): void {
  // (0, a, b, a + b) from lane masks: adding a zero is exact.
  const a = v128.and(v128.shuffle<f32>(v, v, 0, 0, 0, 0), i32x4(0, -1, 0, -1));
  const b = v128.and(v128.shuffle<f32>(v, v, 1, 1, 1, 1), i32x4(0, 0, -1, -1));
  const c = v128.shuffle<f32>(v, v, 2, 2, 2, 2);
  const d = v128.shuffle<f32>(v, v, 3, 3, 3, 3);
  const base = f32x4.sub(f32x4.add(a, b), lo);
  const e0 = f32x4.nearest(f32x4.mul(base, inv));
  const e1 = f32x4.nearest(f32x4.mul(f32x4.add(base, c), inv));
  const e2 = f32x4.nearest(f32x4.mul(f32x4.add(base, d), inv));
  const e3 = f32x4.nearest(f32x4.mul(f32x4.add(base, f32x4.add(c, d)), inv));
  const w01 = i16x8.narrow_i32x4_u(i32x4.trunc_sat_f32x4_s(e0), i32x4.trunc_sat_f32x4_s(e1));
  const w23 = i16x8.narrow_i32x4_u(i32x4.trunc_sat_f32x4_s(e2), i32x4.trunc_sat_f32x4_s(e3));
  v128.store(out, i8x16.narrow_i16x8_u(w01, w23));
}

/**
 * Scans one partition's `size` one-bit codes (blocks of 32) against the table at `lut` (see rabitqLut)
 * and returns the vectors its error bounds cannot rule out. A block holds, per group g, 16 bytes: byte
 * i's low nibble is vector i's bits of dimensions 4g…4g+3 (bit t for dimension 4g + t), its high nibble
 * vector (16 + i)'s. With ip = offset + Δ·Σ_g T_g[nibble] ≈ ⟨b, q⟩, vector i's estimate is A_i + base +
 * K_i·(2·sumQ − 4·ip) and its lower bound the estimate less bound·E_i (factors: `stride` f32 per array
 * at `factors`, A, K, E, then A', K', E' of the extended code; see src/ann/rabitq.ts). Estimates, lower
 * bounds and ip go to `out` (three arrays of `stride` f32).
 *
 * `upper` holds the k smallest upper bounds seen so far, ascending (+∞ at first): no true neighbour
 * lies beyond the k-th, so a vector whose lower bound reaches it is dropped. One that is not gets, with
 * extended codes (exBytes > 0), the finer estimate A' + base − 2K'·(M·ip + ⟨code, q⟩ + (½ − M)·sumQ) and
 * its bound, and is tested again; a survivor's upper bound, estimate + highScale·(estimate − lower),
 * joins `upper`, and its lower bound, estimate and position go to `found` (three arrays of `stride`
 * values: f32, f32, u32). Returns how many were found. Done here rather than by the caller, as only a
 * block with a lane below the threshold is looked at one vector at a time.
 */
export function rabitqScan(
  codes: usize, size: i32, G: i32, lut: usize, factors: usize, stride: i32,
  base: f32, delta: f32, offset: f32, sumQ: f32, bound: f32, out: usize,
  exCodes: usize, exBytes: i32, query: usize, M: f32, highScale: f32, upper: usize, k: i32, found: usize,
): i32 {
  const low = i8x16.splat(0x0f);
  const blockBytes = <usize>G << 4;
  const strideBytes = <usize>stride << 2;
  const kArray = factors + strideBytes;
  const eArray = kArray + strideBytes;
  const lowerOut = out + strideBytes;
  const ipOut = lowerOut + strideBytes;
  const vBound = f32x4.splat(bound);
  const vOffset = f32x4.splat(offset);
  const vSum = f32x4.splat(2 * sumQ);
  const vDelta = f32x4.splat(delta);
  const vBase = f32x4.splat(base);
  const last = upper + (<usize>(k - 1) << 2);
  let threshold = load<f32>(last);
  let count = 0;
  const blocks = (size + 31) >> 5;
  for (let b = 0; b < blocks; b++) {
    const block = codes + <usize>b * blockBytes;
    // Bytes added as 16-bit lanes: `lo*` gathers even vectors plus 256 × odd ones (mod 2^16), `hi*` the
    // odd ones alone (shifted down), so two adds and a shift replace four widenings.
    let loEven = i16x8.splat(0);
    let loOdd = i16x8.splat(0);
    let hiEven = i16x8.splat(0);
    let hiOdd = i16x8.splat(0);
    for (let g = 0; g < G; g++) {
      const c = v128.load(block + (<usize>g << 4));
      const table = v128.load(lut + (<usize>g << 4));
      const rl = i8x16.swizzle(table, v128.and(c, low));
      const rh = i8x16.swizzle(table, v128.and(i16x8.shr_u(c, 4), low));
      loEven = i16x8.add(loEven, rl);
      loOdd = i16x8.add(loOdd, i16x8.shr_u(rl, 8));
      hiEven = i16x8.add(hiEven, rh);
      hiOdd = i16x8.add(hiOdd, i16x8.shr_u(rh, 8));
    }
    loEven = i16x8.sub(loEven, i16x8.shl(loOdd, 8));
    hiEven = i16x8.sub(hiEven, i16x8.shl(hiOdd, 8));
    const at = <usize>b << 7;
    const vThreshold = f32x4.splat(threshold);
    let below = estimate(v128.shuffle<i16>(loEven, loOdd, 0, 8, 1, 9, 2, 10, 3, 11), factors + at, kArray + at, eArray + at, out + at, lowerOut + at, ipOut + at, vDelta, vOffset, vSum, vBase, vBound, vThreshold);
    below = v128.or(below, estimate(v128.shuffle<i16>(loEven, loOdd, 4, 12, 5, 13, 6, 14, 7, 15), factors + at + 32, kArray + at + 32, eArray + at + 32, out + at + 32, lowerOut + at + 32, ipOut + at + 32, vDelta, vOffset, vSum, vBase, vBound, vThreshold));
    below = v128.or(below, estimate(v128.shuffle<i16>(hiEven, hiOdd, 0, 8, 1, 9, 2, 10, 3, 11), factors + at + 64, kArray + at + 64, eArray + at + 64, out + at + 64, lowerOut + at + 64, ipOut + at + 64, vDelta, vOffset, vSum, vBase, vBound, vThreshold));
    below = v128.or(below, estimate(v128.shuffle<i16>(hiEven, hiOdd, 4, 12, 5, 13, 6, 14, 7, 15), factors + at + 96, kArray + at + 96, eArray + at + 96, out + at + 96, lowerOut + at + 96, ipOut + at + 96, vDelta, vOffset, vSum, vBase, vBound, vThreshold));
    if (!v128.any_true(below)) continue;
    const end = min(size, (b + 1) << 5);
    for (let i = b << 5; i < end; i++) {
      const o = <usize>i << 2;
      let lower = load<f32>(lowerOut + o);
      if (lower >= threshold) continue;
      let e = load<f32>(out + o);
      if (exBytes > 0) {
        const ipCode = rabitqExDot(exCodes + <usize>i * <usize>exBytes, query, G << 2);
        // ⟨b, q⟩ again, exactly: the table's rounding, times M, would exceed the finer bound.
        const ipExact = rabitqSignDot(block, i & 31, query, G);
        const extended = factors + 3 * strideBytes + o;
        e = load<f32>(extended) + base - 2 * load<f32>(extended + strideBytes) * (M * ipExact + ipCode + (0.5 - M) * sumQ);
        lower = e - bound * load<f32>(extended + 2 * strideBytes);
        if (lower >= threshold) continue;
      }
      const high = e + highScale * (e - lower);
      if (high < threshold) {
        // Insertion into the k ascending upper bounds, the largest falling off.
        let j = <usize>(k - 1) << 2;
        while (j > 0 && load<f32>(upper + j - 4) > high) {
          store<f32>(upper + j, load<f32>(upper + j - 4));
          j -= 4;
        }
        store<f32>(upper + j, high);
        threshold = load<f32>(last);
      }
      const c = <usize>count << 2;
      store<f32>(found + c, lower);
      store<f32>(found + strideBytes + c, e);
      store<u32>(found + 2 * strideBytes + c, i);
      count++;
    }
  }
  return count;
}

/**
 * Eight estimates from eight 16-bit sums: A + base + K·(2·sumQ − 4·offset − 4Δ·sum). Returns the lanes
 * whose lower bound is below the threshold (two masks or-ed).
 */
@inline function estimate(
  acc: v128, a: usize, k: usize, e: usize, out: usize, lower: usize, ip: usize,
  vDelta: v128, vOffset: v128, vSum: v128, vBase: v128, vBound: v128, vThreshold: v128,
): v128 {
  // ⟨b, Pq⟩ ≈ offset + Δ·sum, then the estimate A + base + K·(2·ΣPq − 4⟨b, Pq⟩).
  const p0 = f32x4.add(vOffset, f32x4.mul(vDelta, f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(acc))));
  const p1 = f32x4.add(vOffset, f32x4.mul(vDelta, f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(acc))));
  const four = f32x4.splat(4);
  const e0 = f32x4.add(f32x4.add(v128.load(a), vBase), f32x4.mul(v128.load(k), f32x4.sub(vSum, f32x4.mul(four, p0))));
  const e1 = f32x4.add(f32x4.add(v128.load(a, 16), vBase), f32x4.mul(v128.load(k, 16), f32x4.sub(vSum, f32x4.mul(four, p1))));
  v128.store(out, e0);
  v128.store(out, e1, 16);
  const l0 = f32x4.sub(e0, f32x4.mul(vBound, v128.load(e)));
  const l1 = f32x4.sub(e1, f32x4.mul(vBound, v128.load(e, 16)));
  v128.store(lower, l0);
  v128.store(lower, l1, 16);
  v128.store(ip, p0);
  v128.store(ip, p1, 16);
  return v128.or(f32x4.lt(l0, vThreshold), f32x4.lt(l1, vThreshold));
}

/**
 * ⟨b, q⟩ for vector `lane` (0–31) of the fast-scan block at `block`: its nibble of each group picks which
 * of the group's four query values count (a lane mask from the nibble's bits), summed in f32x4.
 */
function rabitqSignDot(block: usize, lane: i32, q: usize, G: i32): f32 {
  const byteAt = block + <usize>(lane & 15);
  const shift = lane < 16 ? 0 : 4;
  const bits = i32x4(1, 2, 4, 8);
  let sum = f32x4.splat(0);
  for (let g = 0; g < G; g++) {
    const nibble = (<i32>load<u8>(byteAt + (<usize>g << 4)) >> shift) & 15;
    const mask = i32x4.ne(v128.and(i32x4.splat(nibble), bits), i32x4.splat(0));
    sum = f32x4.add(sum, v128.and(v128.load(q + (<usize>g << 4)), mask));
  }
  return hsum(sum);
}

/**
 * Σ_j code_j·q_j over D dimensions of 4-bit codes: per 32 dimensions 16 bytes, byte i holding
 * dimension i in its low nibble and dimension 16 + i in its high one (so no shuffle puts them in order).
 */
function rabitqExDot(codes: usize, q: usize, D: i32): f32 {
  const low = i8x16.splat(0x0f);
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  for (let j = 0; j < D; j += 32) {
    const c = v128.load(codes + (<usize>j >> 1));
    const p = q + (<usize>j << 2);
    const lo = v128.and(c, low);
    const hi = v128.and(i16x8.shr_u(c, 4), low);
    const l0 = i16x8.extend_low_i8x16_u(lo);
    const l1 = i16x8.extend_high_i8x16_u(lo);
    const h0 = i16x8.extend_low_i8x16_u(hi);
    const h1 = i16x8.extend_high_i8x16_u(hi);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(p), f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(l0))));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(p, 16), f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(l0))));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(p, 32), f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(l1))));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(p, 48), f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(l1))));
    a0 = f32x4.add(a0, f32x4.mul(v128.load(p, 64), f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(h0))));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(p, 80), f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(h0))));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(p, 96), f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(h1))));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(p, 112), f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(h1))));
  }
  return hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
}

/**
 * out[j] = ⟨q, row_j⟩ for n rows of D f32 (D a multiple of 4): four rows at a time with two sums each,
 * so eight additions are in flight instead of waiting on one another.
 */
export function rowsDot(q: usize, rows: usize, n: i32, D: i32, out: usize): void {
  const rowBytes = <usize>D << 2;
  let r = 0;
  for (; r + 4 <= n; r += 4) {
    const r0 = rows + <usize>r * rowBytes;
    const r1 = r0 + rowBytes;
    const r2 = r1 + rowBytes;
    const r3 = r2 + rowBytes;
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0);
    let b1 = f32x4.splat(0);
    let b2 = f32x4.splat(0);
    let b3 = f32x4.splat(0);
    let k: usize = 0;
    for (; k + 32 <= rowBytes; k += 32) {
      const x = v128.load(q + k);
      const y = v128.load(q + k, 16);
      a0 = f32x4.add(a0, f32x4.mul(x, v128.load(r0 + k)));
      a1 = f32x4.add(a1, f32x4.mul(x, v128.load(r1 + k)));
      a2 = f32x4.add(a2, f32x4.mul(x, v128.load(r2 + k)));
      a3 = f32x4.add(a3, f32x4.mul(x, v128.load(r3 + k)));
      b0 = f32x4.add(b0, f32x4.mul(y, v128.load(r0 + k, 16)));
      b1 = f32x4.add(b1, f32x4.mul(y, v128.load(r1 + k, 16)));
      b2 = f32x4.add(b2, f32x4.mul(y, v128.load(r2 + k, 16)));
      b3 = f32x4.add(b3, f32x4.mul(y, v128.load(r3 + k, 16)));
    }
    for (; k < rowBytes; k += 16) {
      const x = v128.load(q + k);
      a0 = f32x4.add(a0, f32x4.mul(x, v128.load(r0 + k)));
      a1 = f32x4.add(a1, f32x4.mul(x, v128.load(r1 + k)));
      a2 = f32x4.add(a2, f32x4.mul(x, v128.load(r2 + k)));
      a3 = f32x4.add(a3, f32x4.mul(x, v128.load(r3 + k)));
    }
    const o = out + (<usize>r << 2);
    store<f32>(o, hsum(f32x4.add(a0, b0)));
    store<f32>(o, hsum(f32x4.add(a1, b1)), 4);
    store<f32>(o, hsum(f32x4.add(a2, b2)), 8);
    store<f32>(o, hsum(f32x4.add(a3, b3)), 12);
  }
  for (; r < n; r++) store<f32>(out + (<usize>r << 2), dotF32(q, rows + <usize>r * rowBytes, D));
}

/** ‖q − x‖² (or with dot = 1, −⟨q, x⟩) over d values: x as f32, or (f16 = 1) as float16 bits. */
export function rowDistance(q: usize, x: usize, d: i32, f16: i32, dot: i32): f32 {
  if (dot) return f16 ? -dotF16(q, x, d) : -dotF32(q, x, d);
  return f16 ? l2F16(q, x, d) : l2F32(q, x, d);
}

/**
 * Rows of D f32 at x as i16 at `out`, row j scaled by s_j = limit / max|x_j| (1 for a row of zeros),
 * s_j written to `scales` (f32). The limit, √((2³¹ − 1) / (D/4)) (at most 32,767), keeps rowsDotI16's
 * sums within i32: each of its lanes adds D/4 products.
 */
export function quantizeRows(x: usize, rows: i32, D: i32, out: usize, scales: usize): void {
  const limit = <f32>min<f64>(32767, Math.floor(Math.sqrt(2147483647.0 / <f64>max(1, D >> 2))));
  const rowBytes = <usize>D << 2;
  for (let r = 0; r < rows; r++) {
    const row = x + <usize>r * rowBytes;
    let m = f32x4.splat(0);
    for (let k: usize = 0; k < rowBytes; k += 16) m = f32x4.pmax(m, f32x4.abs(v128.load(row + k)));
    const largest = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    const s: f32 = largest > 0 ? limit / largest : 1;
    store<f32>(scales + (<usize>r << 2), s);
    const vs = f32x4.splat(s);
    const to = out + (<usize>r * <usize>D << 1);
    for (let k: usize = 0; k < rowBytes; k += 32) {
      const a = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(row + k), vs)));
      const b = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(row + k, 16), vs)));
      v128.store(to + (k >> 1), i16x8.narrow_i32x4_s(a, b));
    }
  }
}

/** out[j] = Σ q·row_j (as f32) for n rows of D i16 at `rows` (D a multiple of 16). */
export function rowsDotI16(q: usize, rows: usize, n: i32, D: i32, out: usize): void {
  const rowBytes = <usize>D << 1;
  let r = 0;
  for (; r + 4 <= n; r += 4) {
    const r0 = rows + <usize>r * rowBytes;
    const r1 = r0 + rowBytes;
    const r2 = r1 + rowBytes;
    const r3 = r2 + rowBytes;
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    for (let k: usize = 0; k < rowBytes; k += 32) {
      const x = v128.load(q + k);
      const y = v128.load(q + k, 16);
      a0 = i32x4.add(a0, i32x4.add(i32x4.dot_i16x8_s(x, v128.load(r0 + k)), i32x4.dot_i16x8_s(y, v128.load(r0 + k, 16))));
      a1 = i32x4.add(a1, i32x4.add(i32x4.dot_i16x8_s(x, v128.load(r1 + k)), i32x4.dot_i16x8_s(y, v128.load(r1 + k, 16))));
      a2 = i32x4.add(a2, i32x4.add(i32x4.dot_i16x8_s(x, v128.load(r2 + k)), i32x4.dot_i16x8_s(y, v128.load(r2 + k, 16))));
      a3 = i32x4.add(a3, i32x4.add(i32x4.dot_i16x8_s(x, v128.load(r3 + k)), i32x4.dot_i16x8_s(y, v128.load(r3 + k, 16))));
    }
    const o = out + (<usize>r << 2);
    store<f32>(o, <f32>isum(a0));
    store<f32>(o, <f32>isum(a1), 4);
    store<f32>(o, <f32>isum(a2), 8);
    store<f32>(o, <f32>isum(a3), 12);
  }
  for (; r < n; r++) {
    const row = rows + <usize>r * rowBytes;
    let a = i32x4.splat(0);
    for (let k: usize = 0; k < rowBytes; k += 16) a = i32x4.add(a, i32x4.dot_i16x8_s(v128.load(q + k), v128.load(row + k)));
    store<f32>(out + (<usize>r << 2), <f32>isum(a));
  }
}

/** The four i32 lanes' sum, in f64: each lane is within i32, their sum may not be. */
@inline function isum(v: v128): f64 {
  return <f64>i32x4.extract_lane(v, 0) + <f64>i32x4.extract_lane(v, 1) + (<f64>i32x4.extract_lane(v, 2) + <f64>i32x4.extract_lane(v, 3));
}
