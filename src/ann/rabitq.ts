import { Random } from './random.ts';

/**
 * RaBitQ (Gao & Long, SIGMOD 2024), as IvfRabitqIndex uses it. A vector o of partition c is rotated
 * (x = P(o − c), P a random orthogonal transform) and kept as one bit per dimension, b_j = [x_j > 0],
 * plus three numbers. With y = 2b − 1 the estimate ⟨x, v⟩ ≈ ‖x‖²·⟨y, v⟩ / ⟨y, x⟩ is unbiased for any v,
 * and with probability ≈ 1 − 2·e^(−ε0²/2) its error is at most
 *   ε0 · ‖x‖‖v‖ · √(1/cos² − 1) / √(D − 1),  cos = ⟨y, x⟩ / (√D ‖x‖) = ‖x‖₁ / (√D ‖x‖).
 * With v = q' = P(q − c) that gives ‖o − q‖² ≈ ‖x‖² + ‖q'‖² − 2⟨x, q'⟩ and a bound to go with it.
 *
 * The codes are relative to their partition's centroid (small residuals, tight estimates), yet a query
 * needs one table for every partition: ⟨y, q'⟩ = 2⟨b, Pq⟩ − ΣPq − (2⟨b, Pc⟩ − ΣPc), and the bracket is
 * known when the vector is added, so it is folded into the vector's first factor. Per vector:
 *   l2:  estimate = A + ‖q'‖² + K·(2·ΣPq − 4⟨b, Pq⟩),  A = ‖x‖² − 2k·Y,  K = k
 *   dot: estimate = A − ⟨Pc, Pq⟩ + K·(2·ΣPq − 4⟨b, Pq⟩),  A = −⟨x, Pc⟩ − k·Y,  K = k / 2
 * with k = ‖x‖² / ‖x‖₁ and Y = ΣPc − 2⟨b, Pc⟩; the error bound is ε0 · E · ‖q'‖ (E is stored).
 */

/**
 * ε0 of the error bound, in standard deviations of the estimate's error (RaBitQ's choice): a candidate
 * whose estimate undershoots by more is skipped wrongly, about one time in 35.
 */
export const BOUND_EPSILON = 1.9;

/**
 * The rotation: `rounds` times, random signs then a Walsh–Hadamard transform of the first P values and
 * (when P < D) random signs and a transform of the last P, where D is the dimension padded to a
 * multiple of 64 and P the largest power of two at most D. Orthogonal, O(D log D) per vector, and
 * stored as D bits per round and half-round instead of a D × D matrix.
 */
export interface Rotation {
  /** The padded dimension: a multiple of 64 (16 groups of four bits per 64 dimensions). */
  readonly D: number;
  readonly P: number;
  readonly rounds: number;
  /** rounds × 2 × D bytes, 1 where the sign flips (the second half of each round is unused when P = D). */
  readonly flips: Uint8Array;
}

export function paddedDimension(d: number): number {
  return Math.ceil(d / 64) * 64;
}

/** A seeded rotation for d dimensions: three rounds where D is a power of two, else two (four transforms). */
export function makeRotation(d: number, seed: number): Rotation {
  const D = paddedDimension(d);
  let P = 64;
  while (P * 2 <= D) P *= 2;
  const rounds = P === D ? 3 : 2;
  const random = new Random(seed ^ 0x2b17);
  const flips = new Uint8Array(rounds * 2 * D).map(() => (random.nextUint32() >>> 31) & 1);
  return { D, P, rounds, flips };
}

/**
 * The kernels' form of the signs, as f32: ±1/√P over the P values the following transform mixes (its
 * scale folded in), ±1 over the others.
 */
export function signFactors(rotation: Rotation): Float32Array {
  const { D, P } = rotation;
  const scale = 1 / Math.sqrt(P);
  return Float32Array.from(rotation.flips, (flip, i) => {
    const j = i % D;
    const head = Math.floor(i / D) % 2 === 0;
    const mixed = head ? j < P : j >= D - P;
    return (flip ? -1 : 1) * (mixed ? scale : 1);
  });
}

/** What one vector keeps: its sign bits, its extended code (when the index has one) and its factors. */
export interface EncodedVector {
  /** D/4 nibbles, nibble g holding the signs of dimensions 4g … 4g+3 (bit t for 4g + t). */
  nibbles: Uint8Array;
  /** D/2 bytes of extended code (see `extendedLevels`), or none. */
  ex: Uint8Array;
  /** A, K, E of the one-bit code, then (extended) A, K, E of the whole code. */
  factors: Float32Array;
}

/** Bits per dimension an index may keep: the sign alone, or the sign and four more. */
export const RABITQ_BITS = [1, 5] as const;
export type RabitqBits = (typeof RABITQ_BITS)[number];

export function emptyCode(D: number, bits: RabitqBits): EncodedVector {
  return {
    nibbles: new Uint8Array(D / 4),
    ex: new Uint8Array(bits > 1 ? D / 2 : 0),
    factors: new Float32Array(bits > 1 ? 6 : 3),
  };
}

/**
 * Encodes rotated vector `r` (D values) of the partition whose rotated centroid is `c` (D values from
 * `cAt` in `centroids`; `cSum` = Σ c_j), for l2 (and cosine on unit vectors) or dot.
 *
 * With `bits` B > 1 (extended RaBitQ, Gao et al. 2025) each dimension also gets a level ℓ_j in
 * [0, M), M = 2^(B−1), and y_j = sign(x_j)·(ℓ_j + ½): the levels are those of ⌊t·|x_j|⌋ (clipped) for
 * the scale t that points y closest to x. The code is kept as u_j − b_j·M, u_j = y_j − ½ + M ∈ [0, 2M),
 * so that ⟨y, v⟩ = M·⟨b, v⟩ + ⟨u − bM, v⟩ + (½ − M)·Σv: the one-bit scan's ⟨b, Pq⟩ plus one more
 * product. Its estimate is A + base − 2K·(M·⟨b, Pq⟩ + ⟨code, Pq⟩ + (½ − M)·ΣPq).
 */
export function encodeVector(
  r: Float32Array,
  rAt: number,
  centroids: Float32Array,
  cAt: number,
  cSum: number,
  D: number,
  dot: boolean,
  bits: RabitqBits,
  out: EncodedVector,
): void {
  let norm2 = 0;
  let l1 = 0;
  let bitsDotC = 0;
  let xDotC = 0;
  const { nibbles, factors } = out;
  nibbles.fill(0);
  for (let j = 0; j < D; j++) {
    const c = centroids[cAt + j]!;
    const x = r[rAt + j]! - c;
    norm2 += x * x;
    xDotC += x * c;
    if (x > 0) {
      l1 += x;
      bitsDotC += c;
      nibbles[j >> 2]! |= 1 << (j & 3);
    } else l1 -= x;
  }
  const norm = Math.sqrt(norm2);
  const sqrtD1 = Math.sqrt(D - 1);
  const errorOf = (cos: number) => (2 * norm * Math.sqrt(Math.max(0, 1 / (cos * cos) - 1))) / sqrtD1;
  const k = l1 > 0 ? norm2 / l1 : 0;
  const Y = cSum - 2 * bitsDotC;
  const E = l1 > 0 ? errorOf(l1 / (Math.sqrt(D) * norm)) : 0;
  factors[0] = dot ? -xDotC - k * Y : norm2 - 2 * k * Y;
  factors[1] = dot ? k / 2 : k;
  factors[2] = dot ? E / 2 : E;
  if (bits === 1) return;
  const M = 1 << (bits - 1);
  const abs = scratch(D);
  for (let j = 0; j < D; j++) abs[j] = Math.abs(r[rAt + j]! - centroids[cAt + j]!);
  const t = bestScale(abs, D, M);
  let yx = 0;
  let yy = 0;
  let yc = 0;
  const ex = out.ex;
  ex.fill(0);
  for (let j = 0; j < D; j++) {
    const c = centroids[cAt + j]!;
    const positive = r[rAt + j]! - c > 0;
    const level = Math.min(M - 1, Math.floor(t * abs[j]!));
    const y = level + 0.5;
    yx += y * abs[j]!;
    yy += y * y;
    yc += positive ? y * c : -y * c;
    const code = positive ? level : M - 1 - level;
    // 32 dimensions per 16 bytes: dimension 32i + j in byte 16i + j (j < 16) low, else high (see exDot).
    const byte = (j >> 5) * 16 + (j & 15);
    ex[byte]! |= (j & 16) === 0 ? code : code << 4;
  }
  const kB = yx > 0 ? norm2 / yx : 0;
  const EB = yx > 0 ? errorOf(yx / (Math.sqrt(yy) * norm)) : 0;
  factors[3] = dot ? -xDotC + kB * yc : norm2 + 2 * kB * yc;
  factors[4] = dot ? kB / 2 : kB;
  factors[5] = dot ? EB / 2 : EB;
}

let scratchArray = new Float64Array(0);
function scratch(D: number): Float64Array {
  if (scratchArray.length < D) scratchArray = new Float64Array(D);
  return scratchArray;
}

/** ⟨y, |x|⟩ / ‖y‖ for levels ⌊t·|x_j|⌋ clipped to M − 1 (y_j = level + ½): the cosine up to ‖x‖. */
function cosineAt(abs: Float64Array, D: number, M: number, t: number): number {
  let yx = 0;
  let yy = 0;
  const top = M - 1;
  for (let j = 0; j < D; j++) {
    const a = abs[j]!;
    let level = Math.floor(t * a);
    if (level > top) level = top;
    const y = level + 0.5;
    yx += y * a;
    yy += y * y;
  }
  return yx / Math.sqrt(yy);
}

/**
 * The scale t whose clipped levels ⌊t·|x_j|⌋ point closest to x: a coarse sweep of t·max|x| over
 * [M/2, 5M/2], then a finer one around the best (the cosine is flat near its peak, so the exact
 * optimum would gain little).
 */
function bestScale(abs: Float64Array, D: number, M: number): number {
  let maxAbs = 0;
  for (let j = 0; j < D; j++) if (abs[j]! > maxAbs) maxAbs = abs[j]!;
  if (maxAbs === 0) return 0;
  const step = M / 8 / maxAbs;
  let best = M / 2 / maxAbs;
  let bestCos = cosineAt(abs, D, M, best);
  for (let i = 1; i <= 16; i++) {
    const t = M / 2 / maxAbs + i * step;
    const cos = cosineAt(abs, D, M, t);
    if (cos > bestCos) {
      bestCos = cos;
      best = t;
    }
  }
  const center = best;
  for (let i = -4; i <= 4; i++) {
    const t = center + (i * step) / 5;
    if (i === 0 || t <= 0) continue;
    const cos = cosineAt(abs, D, M, t);
    if (cos > bestCos) {
      bestCos = cos;
      best = t;
    }
  }
  return best;
}

/**
 * The fast-scan layout: codes in blocks of 32 vectors, per group g 16 bytes whose byte i holds vector
 * i's nibble low and vector (16 + i)'s high. `blockBytes` = D/4 × 16 = 4D.
 */
export function setNibbles(codes: Uint8Array, at: number, position: number, nibbles: Uint8Array): void {
  const block = at + (position >> 5) * nibbles.length * 16;
  const lane = position & 31;
  const byte = block + (lane & 15);
  if (lane < 16)
    for (let g = 0; g < nibbles.length; g++)
      codes[byte + 16 * g] = (codes[byte + 16 * g]! & 0xf0) | nibbles[g]!;
  else
    for (let g = 0; g < nibbles.length; g++)
      codes[byte + 16 * g] = (codes[byte + 16 * g]! & 0x0f) | (nibbles[g]! << 4);
}

export function getNibbles(codes: Uint8Array, at: number, position: number, out: Uint8Array): void {
  const block = at + (position >> 5) * out.length * 16;
  const lane = position & 31;
  const byte = block + (lane & 15);
  const shift = lane < 16 ? 0 : 4;
  for (let g = 0; g < out.length; g++) out[g] = (codes[byte + 16 * g]! >> shift) & 15;
}
