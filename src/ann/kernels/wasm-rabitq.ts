import { LinearAllocator } from './allocator.ts';
import type { Kernels, RabitqKernel } from './types.ts';

/** The functions of assembly/rabitq.ts (and what they need of assembly/kernels.ts). */
interface RabitqExports {
  memory: WebAssembly.Memory;
  ensureMemory(bytes: number): number;
  gemmNT(
    a: number,
    m: number,
    lda: number,
    b: number,
    n: number,
    ldb: number,
    d: number,
    out: number,
    ldo: number,
  ): void;
  rabitqRotate(x: number, rows: number, D: number, P: number, signs: number, rounds: number): void;
  rabitqLut(q: number, D: number, lut: number, params: number): void;
  /** The scan's parameters are RabitqKernel.scan's, passed through as they are. */
  rabitqScan: RabitqKernel['scan'];
  rowDistance(q: number, x: number, d: number, f16: number, dot: number): number;
  rowsDot(q: number, rows: number, n: number, D: number, out: number): void;
  quantizeRows(x: number, rows: number, D: number, out: number, scales: number): void;
  rowsDotI16(q: number, rows: number, n: number, D: number, out: number): void;
}

const PAGE = 65536;

/**
 * One RaBitQ index's kernels in their own instance of the WebAssembly module: the lists live in its
 * memory, so a scan copies nothing in, and the memory goes when the index does.
 */
export class WasmRabitq implements RabitqKernel {
  private readonly exports: RabitqExports;
  private readonly heap: LinearAllocator;
  /** The exported function itself: one call per partition probed, so no wrapper in between. */
  readonly scan: RabitqKernel['scan'];

  constructor(
    readonly owner: Kernels,
    module: WebAssembly.Module,
  ) {
    this.exports = new WebAssembly.Instance(module, {}).exports as unknown as RabitqExports;
    this.scan = this.exports.rabitqScan;
    // The first page holds the module's own data.
    this.heap = new LinearAllocator(PAGE, (bytes) => this.exports.ensureMemory(bytes));
  }

  get byteLength(): number {
    return this.exports.memory.buffer.byteLength;
  }

  alloc(bytes: number): number {
    return this.heap.alloc(bytes);
  }

  free(address: number, bytes: number): void {
    this.heap.release(address, bytes);
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.exports.memory.buffer);
  }

  floats(address: number, length: number): Float32Array {
    return new Float32Array(this.exports.memory.buffer, address, length);
  }

  rotate(x: number, rows: number, D: number, P: number, signs: number, rounds: number): void {
    this.exports.rabitqRotate(x, rows, D, P, signs, rounds);
  }

  lut(query: number, D: number, lut: number, params: number): void {
    this.exports.rabitqLut(query, D, lut, params);
  }

  rowDistance(query: number, row: number, d: number, f16: boolean, dot: boolean): number {
    return this.exports.rowDistance(query, row, d, f16 ? 1 : 0, dot ? 1 : 0);
  }

  products(query: number, rows: number, n: number, D: number, out: number): void {
    this.exports.rowsDot(query, rows, n, D, out);
  }

  quantize(x: number, rows: number, D: number, out: number, scales: number): void {
    this.exports.quantizeRows(x, rows, D, out, scales);
  }

  productsI16(query: number, rows: number, n: number, D: number, out: number): void {
    this.exports.rowsDotI16(query, rows, n, D, out);
  }

  dispose(): void {}
}
