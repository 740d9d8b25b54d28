import { float16Table } from '../float16.ts';
import { LinearAllocator } from './allocator.ts';
import type { Kernels, RabitqKernel } from './types.ts';

/**
 * assembly/rabitq.ts in plain TypeScript, over an ArrayBuffer that plays the module's memory (so the
 * index drives both kernels through the same addresses). Sums run in float64 where the WebAssembly runs
 * float32, so results agree to rounding.
 */
export class JsRabitq implements RabitqKernel {
  private buffer = new ArrayBuffer(64 * 1024);
  private f32 = new Float32Array(this.buffer);
  private u8 = new Uint8Array(this.buffer);
  private u16 = new Uint16Array(this.buffer);
  private i16 = new Int16Array(this.buffer);
  private u32 = new Uint32Array(this.buffer);
  private readonly heap = new LinearAllocator(64, (bytes) => this.ensure(bytes));

  constructor(readonly owner: Kernels) {}

  get byteLength(): number {
    return this.buffer.byteLength;
  }

  private ensure(bytes: number): void {
    if (bytes <= this.buffer.byteLength) return;
    const next = new ArrayBuffer(Math.max(bytes, this.buffer.byteLength * 2));
    new Uint8Array(next).set(this.u8);
    this.buffer = next;
    this.f32 = new Float32Array(next);
    this.u8 = new Uint8Array(next);
    this.u16 = new Uint16Array(next);
    this.i16 = new Int16Array(next);
    this.u32 = new Uint32Array(next);
  }

  alloc(bytes: number): number {
    return this.heap.alloc(bytes);
  }

  free(address: number, bytes: number): void {
    this.heap.release(address, bytes);
  }

  bytes(): Uint8Array {
    return this.u8;
  }

  floats(address: number, length: number): Float32Array {
    return new Float32Array(this.buffer, address, length);
  }

  rotate(x: number, rows: number, D: number, P: number, signs: number, rounds: number): void {
    const f = this.f32;
    for (let r = 0; r < rows; r++) {
      const row = x / 4 + r * D;
      for (let t = 0; t < rounds; t++) {
        const s = signs / 4 + 2 * t * D;
        for (let j = 0; j < D; j++) f[row + j] = f[row + j]! * f[s + j]!;
        fwht(f, row, P);
        if (P < D) {
          for (let j = 0; j < D; j++) f[row + j] = f[row + j]! * f[s + D + j]!;
          fwht(f, row + D - P, P);
        }
      }
    }
  }

  lut(query: number, D: number, lut: number, params: number): void {
    const f = this.f32;
    const q = query / 4;
    const G = D >> 2;
    let maxRange = 0;
    let sumRange = 0;
    let offset = 0;
    let total = 0;
    for (let g = 0; g < G; g++) {
      let lo = 0;
      let hi = 0;
      for (let t = 0; t < 4; t++) {
        const v = f[q + 4 * g + t]!;
        if (v < 0) lo += v;
        else hi += v;
      }
      maxRange = Math.max(maxRange, hi - lo);
      sumRange += hi - lo;
      offset += lo;
      total += hi + lo;
    }
    let delta = Math.fround(Math.max(maxRange / 255, sumRange / (65535 - G)));
    if (!(delta > 0)) delta = 1;
    const inv = 1 / delta;
    for (let g = 0; g < G; g++) {
      const v = [f[q + 4 * g]!, f[q + 4 * g + 1]!, f[q + 4 * g + 2]!, f[q + 4 * g + 3]!] as const;
      const lo = Math.min(v[0], 0) + Math.min(v[1], 0) + Math.min(v[2], 0) + Math.min(v[3], 0);
      for (let p = 0; p < 16; p++) {
        let sum = -lo;
        for (let t = 0; t < 4; t++) if (p & (1 << t)) sum += v[t]!;
        this.u8[lut + 16 * g + p] = Math.min(255, Math.max(0, roundEven(sum * inv)));
      }
    }
    f[params / 4] = delta;
    f[params / 4 + 1] = offset;
    f[params / 4 + 2] = total;
  }

  scan(
    codes: number,
    size: number,
    G: number,
    lut: number,
    factors: number,
    stride: number,
    base: number,
    delta: number,
    offset: number,
    sumQ: number,
    bound: number,
    out: number,
    exCodes: number,
    exBytes: number,
    query: number,
    M: number,
    highScale: number,
    upper: number,
    k: number,
    found: number,
  ): number {
    const u8 = this.u8;
    const f = this.f32;
    const sums = new Uint32Array(32);
    const [a, K, E, a2, k2, e2] = [0, 1, 2, 3, 4, 5].map((j) => factors / 4 + j * stride) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const [estimates, lowers, ips] = [0, 1, 2].map((j) => out / 4 + j * stride) as [number, number, number];
    const last = upper / 4 + k - 1;
    let count = 0;
    for (let b = 0; b < Math.ceil(size / 32); b++) {
      sums.fill(0);
      const block = codes + b * G * 16;
      for (let g = 0; g < G; g++) {
        const table = lut + 16 * g;
        for (let i = 0; i < 16; i++) {
          const byte = u8[block + 16 * g + i]!;
          sums[i]! += u8[table + (byte & 15)]!;
          sums[i + 16]! += u8[table + (byte >> 4)]!;
        }
      }
      for (let i = 0; i < 32; i++) {
        const v = b * 32 + i;
        const ip = offset + delta * (sums[i]! & 0xffff);
        const estimate = f[a + v]! + base + f[K + v]! * (2 * sumQ - 4 * ip);
        f[estimates + v] = estimate;
        f[lowers + v] = estimate - bound * f[E + v]!;
        f[ips + v] = ip;
      }
    }
    for (let i = 0; i < size; i++) {
      let lower = f[lowers + i]!;
      if (lower >= f[last]!) continue;
      let e = f[estimates + i]!;
      if (exBytes > 0) {
        const ipCode = this.exDot(exCodes + i * exBytes, query, 4 * G);
        const ipExact = this.signDot(codes + (i >> 5) * G * 16, i & 31, query, G);
        e = f[a2 + i]! + base - 2 * f[k2 + i]! * (M * ipExact + ipCode + (0.5 - M) * sumQ);
        lower = e - bound * f[e2 + i]!;
        if (lower >= f[last]!) continue;
      }
      const high = e + highScale * (e - lower);
      if (high < f[last]!) {
        let j = last;
        for (; j > upper / 4 && f[j - 1]! > high; j--) f[j] = f[j - 1]!;
        f[j] = high;
      }
      f[found / 4 + count] = lower;
      f[found / 4 + stride + count] = e;
      this.u32[found / 4 + 2 * stride + count++] = i;
    }
    return count;
  }

  /** ⟨b, q⟩ exactly for vector `lane` of the fast-scan block at `block` (see rabitqSignDot). */
  private signDot(block: number, lane: number, query: number, G: number): number {
    let s = 0;
    for (let g = 0; g < G; g++) {
      const byte = this.u8[block + 16 * g + (lane & 15)]!;
      const nibble = lane < 16 ? byte & 15 : byte >> 4;
      for (let t = 0; t < 4; t++) if (nibble & (1 << t)) s += this.f32[query / 4 + 4 * g + t]!;
    }
    return s;
  }

  /** Σ code_j·q_j of D 4-bit codes (see rabitqExDot). */
  private exDot(codes: number, query: number, D: number): number {
    const q = query / 4;
    let s = 0;
    for (let j = 0; j < D; j++) {
      const byte = this.u8[codes + (j >> 5) * 16 + (j & 15)]!;
      s += ((j & 16) === 0 ? byte & 15 : byte >> 4) * this.f32[q + j]!;
    }
    return s;
  }

  rowDistance(query: number, row: number, d: number, f16: boolean, dot: boolean): number {
    const f = this.f32;
    const q = query / 4;
    let s = 0;
    for (let j = 0; j < d; j++) {
      const x = f16 ? float16Table[this.u16[row / 2 + j]!]! : f[row / 4 + j]!;
      if (dot) s -= f[q + j]! * x;
      else s += (f[q + j]! - x) ** 2;
    }
    return s;
  }

  products(query: number, rows: number, n: number, D: number, out: number): void {
    const f = this.f32;
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += f[query / 4 + j]! * f[rows / 4 + r * D + j]!;
      f[out / 4 + r] = s;
    }
  }

  quantize(x: number, rows: number, D: number, out: number, scales: number): void {
    const f = this.f32;
    const limit = Math.min(32767, Math.floor(Math.sqrt(2147483647 / Math.max(1, D >> 2))));
    for (let r = 0; r < rows; r++) {
      const row = x / 4 + r * D;
      let largest = 0;
      for (let j = 0; j < D; j++) largest = Math.max(largest, Math.abs(f[row + j]!));
      const scale = Math.fround(largest > 0 ? Math.fround(limit / largest) : 1);
      f[scales / 4 + r] = scale;
      for (let j = 0; j < D; j++) this.i16[out / 2 + r * D + j] = roundEven(Math.fround(f[row + j]! * scale));
    }
  }

  productsI16(query: number, rows: number, n: number, D: number, out: number): void {
    const v = this.i16;
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += v[query / 2 + j]! * v[rows / 2 + r * D + j]!;
      this.f32[out / 4 + r] = s;
    }
  }

  dispose(): void {
    this.buffer = new ArrayBuffer(0);
    this.f32 = new Float32Array(0);
    this.u8 = new Uint8Array(0);
    this.u16 = new Uint16Array(0);
    this.i16 = new Int16Array(0);
    this.u32 = new Uint32Array(0);
  }
}

/** The unscaled Walsh–Hadamard transform of n values from `at`. */
function fwht(x: Float32Array, at: number, n: number): void {
  for (let h = 1; h < n; h <<= 1) {
    for (let i = at; i < at + n; i += h << 1) {
      for (let j = i; j < i + h; j++) {
        const a = x[j]!;
        const b = x[j + h]!;
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
}

/** Rounds half to even, as WebAssembly's nearest does. */
function roundEven(x: number): number {
  const floor = Math.floor(x);
  const rest = x - floor;
  return rest > 0.5 || (rest === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
}
