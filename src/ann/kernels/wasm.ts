import { LinearAllocator } from './allocator.ts';
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
import { WasmGraph } from './wasm-graph.ts';
import { WasmRabitq } from './wasm-rabitq.ts';

interface KernelExports {
  memory: WebAssembly.Memory;
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
  nearest(
    x: number,
    m: number,
    ldx: number,
    c: number,
    n: number,
    ldc: number,
    d: number,
    cNorms: number,
    labels: number,
    values: number,
    scratch: number,
  ): void;
  nearestPacked(
    x: number,
    m: number,
    ldx: number,
    packed: number,
    blocks: number,
    d: number,
    cNorms: number,
    labels: number,
    values: number,
  ): void;
  ensureMemory(bytes: number): number;
  clusterSums(x: number, n: number, ldx: number, d: number, labels: number, sums: number): void;
  addVectors(a: number, b: number, n: number, out: number): void;
  scanCodes(codes: number, n: number, M: number, table: number, base: number, out: number): void;
}

const PAGE = 65536;
/**
 * Up to this many dimensions `nearest` uses the packed kernel (lanes are centroids, no horizontal sums):
 * measured 1.5–2.7× faster at 4 to 16 dimensions (PQ sub-spaces), even at 40, slower from 64.
 */
const PACKED_MAX_DIMENSION = 48;

/** Centroids in blocks of four, lane c of row j holding centroid (4·block + c)'s j-th value; padding is 0. */
function packCentroids(centroids: Operand, n: number, d: number, out: Float32Array): void {
  const source = operandArray(centroids.source);
  const offset = centroids.offset ?? 0;
  const stride = centroids.stride ?? d;
  out.fill(0);
  for (let c = 0; c < n; c++) {
    const block = (c >> 2) * 4 * d;
    const lane = c & 3;
    const row = offset + c * stride;
    for (let j = 0; j < d; j++) out[block + j * 4 + lane] = source[row + j]!;
  }
}
class WasmResident implements ResidentMatrix {
  constructor(
    readonly data: Float32Array,
    readonly ptr: number,
    readonly owner: WasmKernels,
  ) {}
  dispose(): void {
    this.owner.disposeResident(this);
  }
}

/** Kernels running in WebAssembly SIMD; operands that are not resident are copied in for each call. */
export class WasmKernels implements Kernels {
  readonly name = 'wasm-simd' as const;
  private readonly exports: KernelExports;
  private readonly heap: LinearAllocator;
  private readonly finalizer = new FinalizationRegistry<{ ptr: number; bytes: number }>((held) =>
    this.heap.release(held.ptr, held.bytes),
  );

  constructor(private readonly module: WebAssembly.Module) {
    const instance = new WebAssembly.Instance(module, {});
    this.exports = instance.exports as unknown as KernelExports;
    this.heap = new LinearAllocator(PAGE, (bytes) => this.exports.ensureMemory(bytes));
  }

  resident(data: Float32Array): ResidentMatrix {
    const ptr = this.heap.alloc(data.byteLength);
    this.f32(ptr, data.length).set(data);
    const resident = new WasmResident(data, ptr, this);
    this.finalizer.register(resident, { ptr, bytes: data.byteLength }, resident);
    return resident;
  }

  disposeResident(resident: WasmResident): void {
    if (!this.finalizer.unregister(resident)) return; // already given back
    this.heap.release(resident.ptr, resident.data.byteLength);
  }

  gemmNT(a: Operand, m: number, b: Operand, n: number, d: number, out: Float32Array, outStride = n): void {
    if (m === 0 || n === 0) return;
    const scope = new Scope(this);
    try {
      const [aPtr, lda] = scope.place(a, m, d);
      const [bPtr, ldb] = scope.place(b, n, d);
      const outPtr = scope.alloc((m - 1) * outStride + n);
      this.exports.gemmNT(aPtr, m, lda, bPtr, n, ldb, d, outPtr, outStride);
      const result = this.f32(outPtr, (m - 1) * outStride + n);
      if (outStride === n) out.set(result);
      // Rows only: the gaps between them belong to the caller.
      else
        for (let i = 0; i < m; i++) out.set(result.subarray(i * outStride, i * outStride + n), i * outStride);
    } finally {
      scope.close();
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
    if (m === 0) return;
    const scope = new Scope(this);
    try {
      const [xPtr, ldx] = scope.place(x, m, d);
      const labelsPtr = scope.alloc(m);
      const valuesPtr = scope.alloc(m);
      if (d <= PACKED_MAX_DIMENSION) {
        const blocks = Math.ceil(n / 4);
        const packed = scope.alloc(blocks * 4 * d);
        packCentroids(centroids, n, d, this.f32(packed, blocks * 4 * d));
        const normsPtr = scope.alloc(blocks * 4);
        const norms = this.f32(normsPtr, blocks * 4);
        norms.fill(Number.POSITIVE_INFINITY);
        norms.set(centroidNorms.subarray(0, n));
        this.exports.nearestPacked(xPtr, m, ldx, packed, blocks, d, normsPtr, labelsPtr, valuesPtr);
      } else {
        const [cPtr, ldc] = scope.place(centroids, n, d);
        const normsPtr = scope.copy(centroidNorms);
        const scratch = scope.alloc(4 * n);
        this.exports.nearest(xPtr, m, ldx, cPtr, n, ldc, d, normsPtr, labelsPtr, valuesPtr, scratch);
      }
      labels.set(new Int32Array(this.exports.memory.buffer, labelsPtr, m));
      values.set(this.f32(valuesPtr, m));
    } finally {
      scope.close();
    }
  }

  clusterSums(x: Operand, m: number, d: number, labels: Int32Array, sums: Float64Array): void {
    if (m === 0) {
      sums.fill(0);
      return;
    }
    const scope = new Scope(this);
    try {
      const [xPtr, ldx] = scope.place(x, m, d);
      const labelsPtr = scope.allocBytes(labels.byteLength);
      new Int32Array(this.exports.memory.buffer, labelsPtr, m).set(labels.subarray(0, m));
      const sumsPtr = scope.allocBytes(sums.byteLength);
      const view = () => new Float64Array(this.exports.memory.buffer, sumsPtr, sums.length);
      view().fill(0);
      this.exports.clusterSums(xPtr, m, ldx, d, labelsPtr, sumsPtr);
      sums.set(view());
    } finally {
      scope.close();
    }
  }

  /** A fresh instance of this module for one RaBitQ index (see WasmRabitq). */
  rabitq(): RabitqKernel {
    return new WasmRabitq(this, this.module);
  }

  codeScanner(numSubVectors: number, partitionTerms: Float32Array | undefined): CodeScanner {
    return new WasmCodeScanner(this, this.exports, numSubVectors, partitionTerms);
  }

  /** A graph in a fresh instance of this module (its own memory, see WasmGraph). */
  graph(shape: GraphShape, nodes: number, upper: number): GraphKernel {
    return new WasmGraph(this, this.module, shape, nodes, upper);
  }

  /** @internal Bytes of linear memory (it only grows), and the allocator's high-water mark: for tests. */
  memoryStats(): { memoryBytes: number; top: number } {
    return { memoryBytes: this.exports.memory.buffer.byteLength, top: this.heap.top };
  }

  /** @internal */
  allocate(bytes: number): number {
    return this.heap.alloc(bytes);
  }
  /** @internal */
  release(ptr: number, bytes: number): void {
    this.heap.release(ptr, bytes);
  }
  /** @internal A fresh view: growing memory detaches the old ones. */
  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.exports.memory.buffer, ptr, length);
  }
}

/** The temporary blocks of one kernel call, given back together. */
class Scope {
  private readonly blocks: [number, number][] = [];
  constructor(private readonly kernels: WasmKernels) {}

  /** Room for `elements` f32 (or i32) values. */
  alloc(elements: number): number {
    return this.allocBytes(elements * 4);
  }

  allocBytes(bytes: number): number {
    const ptr = this.kernels.allocate(bytes);
    this.blocks.push([ptr, bytes]);
    return ptr;
  }

  copy(data: Float32Array): number {
    const ptr = this.alloc(data.length);
    this.kernels.f32(ptr, data.length).set(data);
    return ptr;
  }

  /** Byte address of the operand's first row and its stride in elements, copying it in if not resident. */
  place(operand: Operand, rows: number, d: number): [number, number] {
    const offset = operand.offset ?? 0;
    const stride = operand.stride ?? d;
    // Only this instance's residents live in this memory; another's pointer would read foreign bytes.
    if (operand.source instanceof WasmResident && operand.source.owner === this.kernels)
      return [operand.source.ptr + offset * 4, stride];
    const data = operand.source instanceof Float32Array ? operand.source : operand.source.data;
    // Copy only the rows used, compacted to stride d.
    const ptr = this.alloc(rows * d);
    const view = this.kernels.f32(ptr, rows * d);
    if (stride === d) view.set(data.subarray(offset, offset + rows * d));
    else
      for (let i = 0; i < rows; i++)
        view.set(data.subarray(offset + i * stride, offset + i * stride + d), i * d);
    return [ptr, d];
  }

  close(): void {
    for (let i = this.blocks.length - 1; i >= 0; i--) {
      const [ptr, bytes] = this.blocks[i]!;
      this.kernels.release(ptr, bytes);
    }
  }
}

/** The query's table, the folded table and room for one list's codes and distances live in module memory. */
class WasmCodeScanner implements CodeScanner {
  readonly owner: WasmKernels;
  private readonly tableBytes: number;
  private readonly terms: ResidentMatrix | undefined;
  private readonly query: number;
  private readonly combined: number;
  private codes = 0;
  private out = 0;
  private capacity = 0;

  constructor(
    private readonly kernels: WasmKernels,
    private readonly exports: KernelExports,
    private readonly M: number,
    partitionTerms: Float32Array | undefined,
  ) {
    this.owner = kernels;
    this.tableBytes = M * 256 * 4;
    this.terms = partitionTerms ? kernels.resident(partitionTerms) : undefined;
    this.query = kernels.allocate(this.tableBytes);
    this.combined = kernels.allocate(this.tableBytes);
  }

  setQuery(table: Float32Array): void {
    this.kernels.f32(this.query, table.length).set(table);
  }

  scan(codes: Uint8Array, n: number, termsRow: number, base: number, out: Float32Array): void {
    if (n > this.capacity) this.grow(n);
    new Uint8Array(this.exports.memory.buffer, this.codes, n * this.M).set(codes.subarray(0, n * this.M));
    let table = this.query;
    if (termsRow >= 0) {
      const terms = (this.terms as WasmResident).ptr + termsRow * this.tableBytes;
      this.exports.addVectors(this.query, terms, this.M * 256, this.combined);
      table = this.combined;
    }
    this.exports.scanCodes(this.codes, n, this.M, table, base, this.out);
    out.set(this.kernels.f32(this.out, n));
  }

  private grow(n: number): void {
    const previous = this.capacity;
    this.releaseLists();
    this.capacity = Math.max(n, previous * 2, 1024);
    this.codes = this.kernels.allocate(this.capacity * this.M);
    this.out = this.kernels.allocate(this.capacity * 4);
  }

  private releaseLists(): void {
    if (this.capacity === 0) return;
    this.kernels.release(this.codes, this.capacity * this.M);
    this.kernels.release(this.out, this.capacity * 4);
    this.capacity = 0;
  }

  dispose(): void {
    this.terms?.dispose();
    this.kernels.release(this.query, this.tableBytes);
    this.kernels.release(this.combined, this.tableBytes);
    this.releaseLists();
  }
}
