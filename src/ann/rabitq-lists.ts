import type { RabitqKernel } from './kernels/types.ts';
import { type EncodedVector, getNibbles, setNibbles } from './rabitq.ts';

/** One partition: its codes and factors live in the kernel's memory, its ids and rows here. */
interface List {
  size: number;
  /** Room for this many vectors: a multiple of 32 (one fast-scan block). */
  capacity: number;
  /**
   * Kernel address of the one-bit codes (capacity × D/8 bytes, fast-scan blocks), then the extended
   * codes (capacity × exBytes), then the factors (`factorCount` arrays of capacity f32).
   */
  address: number;
  ids: Uint32Array;
  /** Where each vector's full copy is (see RowStore). */
  rows: Uint32Array;
}

/** What the file keeps of the lists: every list end to end, in list order. */
export interface ListContents {
  sizes: Uint32Array;
  ids: Uint32Array;
  /** Each list's fast-scan blocks, its last block padded. */
  codes: Uint8Array;
  /** exBytes per vector. */
  exCodes: Uint8Array;
  /** Factor f of every vector, then factor f + 1, … (factorCount × n). */
  factors: Float32Array;
}

/**
 * The inverted lists of an IvfRabitqIndex: per partition, one-bit codes in the fast-scan layout, the
 * extended codes when the index has them, and the factors of each vector (see src/ann/rabitq.ts), in
 * the kernel's memory where a scan reads them in place; the ids and row numbers beside them. Removing
 * swaps the last vector into the hole.
 */
export class RabitqLists {
  private readonly lists: List[];
  /** Bytes of one-bit code per vector (D/8). */
  private readonly codeBytes: number;
  private readonly nibbles: Uint8Array;
  /** The largest capacity of any list (capacities only grow): read by every search. */
  private largest = 0;

  constructor(
    private readonly kernel: RabitqKernel,
    readonly D: number,
    numPartitions: number,
    /** Bytes of extended code per vector (0 without). */
    readonly exBytes: number,
    /** Factors per vector: 3, or 6 with extended codes. */
    readonly factorCount: number,
  ) {
    this.codeBytes = D / 8;
    this.nibbles = new Uint8Array(D / 4);
    this.lists = Array.from({ length: numPartitions }, () => ({
      size: 0,
      capacity: 0,
      address: 0,
      ids: new Uint32Array(0),
      rows: new Uint32Array(0),
    }));
  }

  get numPartitions(): number {
    return this.lists.length;
  }

  get count(): number {
    let n = 0;
    for (const list of this.lists) n += list.size;
    return n;
  }

  size(l: number): number {
    return this.lists[l]!.size;
  }

  capacity(l: number): number {
    return this.lists[l]!.capacity;
  }

  /** The largest list's capacity: scratch for one list's estimates must hold that many. */
  get maxCapacity(): number {
    return this.largest;
  }

  ids(l: number): Uint32Array {
    const list = this.lists[l]!;
    return list.ids.subarray(0, list.size);
  }

  idAt(l: number, i: number): number {
    return this.lists[l]!.ids[i]!;
  }

  rowAt(l: number, i: number): number {
    return this.lists[l]!.rows[i]!;
  }

  /** Kernel address of list l's one-bit codes. */
  codesOf(l: number): number {
    return this.lists[l]!.address;
  }

  /** Kernel address of list l's extended codes (exBytes per vector). */
  exCodesOf(l: number): number {
    const list = this.lists[l]!;
    return list.address + list.capacity * this.codeBytes;
  }

  /** Kernel address of list l's factors: `factorCount` arrays of `capacity(l)` f32. */
  factorsOf(l: number): number {
    const list = this.lists[l]!;
    return list.address + list.capacity * (this.codeBytes + this.exBytes);
  }

  /** Appends one encoded vector to list l. */
  push(l: number, id: number, row: number, code: EncodedVector): void {
    const list = this.lists[l]!;
    if (list.size === list.capacity)
      this.reserve(l, Math.max(32, Math.ceil((list.capacity * 1.5) / 32) * 32));
    const i = list.size++;
    list.ids[i] = id;
    list.rows[i] = row;
    const bytes = this.kernel.bytes();
    setNibbles(bytes, list.address, i, code.nibbles);
    if (this.exBytes > 0) bytes.set(code.ex, this.exCodesOf(l) + i * this.exBytes);
    const factors = this.kernel.floats(this.factorsOf(l), this.factorCount * list.capacity);
    for (let f = 0; f < this.factorCount; f++) factors[f * list.capacity + i] = code.factors[f]!;
  }

  /** Removes vector i of list l, moving the last one into its place. */
  removeAt(l: number, i: number): void {
    const list = this.lists[l]!;
    const last = --list.size;
    const bytes = this.kernel.bytes();
    if (i !== last) {
      list.ids[i] = list.ids[last]!;
      list.rows[i] = list.rows[last]!;
      getNibbles(bytes, list.address, last, this.nibbles);
      setNibbles(bytes, list.address, i, this.nibbles);
      const ex = this.exCodesOf(l);
      bytes.copyWithin(ex + i * this.exBytes, ex + last * this.exBytes, ex + (last + 1) * this.exBytes);
      const factors = this.kernel.floats(this.factorsOf(l), this.factorCount * list.capacity);
      for (let f = 0; f < this.factorCount; f++)
        factors[f * list.capacity + i] = factors[f * list.capacity + last]!;
    }
    // A scan reads whole blocks: the freed lane gets code 0, whatever was there.
    setNibbles(bytes, list.address, last, this.nibbles.fill(0));
  }

  /** Room for `capacity` vectors in list l (a multiple of 32), keeping its content. */
  reserve(l: number, capacity: number): void {
    const list = this.lists[l]!;
    if (capacity <= list.capacity) return;
    const address = this.kernel.alloc(this.listBytes(capacity));
    const bytes = this.kernel.bytes();
    bytes.fill(0, address, address + this.listBytes(capacity));
    if (list.capacity > 0) {
      bytes.copyWithin(address, list.address, list.address + list.capacity * this.codeBytes);
      const oldEx = this.exCodesOf(l);
      bytes.copyWithin(address + capacity * this.codeBytes, oldEx, oldEx + list.size * this.exBytes);
      const oldFactors = this.factorsOf(l);
      const newFactors = address + capacity * (this.codeBytes + this.exBytes);
      for (let f = 0; f < this.factorCount; f++) {
        const from = oldFactors + 4 * f * list.capacity;
        bytes.copyWithin(newFactors + 4 * f * capacity, from, from + 4 * list.size);
      }
      this.kernel.free(list.address, this.listBytes(list.capacity));
    }
    const ids = new Uint32Array(capacity);
    ids.set(list.ids.subarray(0, list.size));
    const rows = new Uint32Array(capacity);
    rows.set(list.rows.subarray(0, list.size));
    Object.assign(list, { address, capacity, ids, rows });
    this.largest = Math.max(this.largest, capacity);
  }

  private listBytes(capacity: number): number {
    return capacity * (this.codeBytes + this.exBytes + 4 * this.factorCount);
  }

  /** Bytes per part: codes and factors (in the kernel, by capacity), ids and rows (here). */
  byteLengths(): { codes: number; factors: number; ids: number } {
    let codes = 0;
    let factors = 0;
    let ids = 0;
    for (const list of this.lists) {
      codes += list.capacity * (this.codeBytes + this.exBytes);
      factors += list.capacity * 4 * this.factorCount;
      ids += list.ids.byteLength + list.rows.byteLength;
    }
    return { codes, factors, ids };
  }

  /** Every list end to end, as the file keeps them, and each vector's row in that order. */
  concatenated(): ListContents & { rows: Uint32Array } {
    const n = this.count;
    const sizes = new Uint32Array(this.lists.length);
    const ids = new Uint32Array(n);
    const rows = new Uint32Array(n);
    let blocks = 0;
    for (const list of this.lists) blocks += Math.ceil(list.size / 32);
    const codes = new Uint8Array(blocks * 32 * this.codeBytes);
    const exCodes = new Uint8Array(n * this.exBytes);
    const factors = new Float32Array(this.factorCount * n);
    const bytes = this.kernel.bytes();
    let at = 0;
    let codeAt = 0;
    this.lists.forEach((list, l) => {
      sizes[l] = list.size;
      ids.set(list.ids.subarray(0, list.size), at);
      rows.set(list.rows.subarray(0, list.size), at);
      const listCodes = Math.ceil(list.size / 32) * 32 * this.codeBytes;
      codes.set(bytes.subarray(list.address, list.address + listCodes), codeAt);
      const ex = this.exCodesOf(l);
      exCodes.set(bytes.subarray(ex, ex + list.size * this.exBytes), at * this.exBytes);
      const f = this.kernel.floats(this.factorsOf(l), this.factorCount * list.capacity);
      for (let k = 0; k < this.factorCount; k++) {
        factors.set(f.subarray(k * list.capacity, k * list.capacity + list.size), k * n + at);
      }
      at += list.size;
      codeAt += listCodes;
    });
    return { sizes, ids, rows, codes, exCodes, factors };
  }

  /**
   * Fills empty lists from the file's concatenation (see `concatenated`), each at exactly its size
   * rounded up to a block; rows are numbered in list order (the order the file keeps the vectors in).
   */
  load({ sizes, ids, codes, exCodes, factors }: ListContents): void {
    const n = ids.length;
    let at = 0;
    let codeAt = 0;
    this.lists.forEach((list, l) => {
      const size = sizes[l]!;
      if (size === 0) return;
      this.reserve(l, Math.ceil(size / 32) * 32);
      list.size = size;
      list.ids.set(ids.subarray(at, at + size));
      const listCodes = list.capacity * this.codeBytes;
      const bytes = this.kernel.bytes();
      bytes.set(codes.subarray(codeAt, codeAt + listCodes), list.address);
      bytes.set(exCodes.subarray(at * this.exBytes, (at + size) * this.exBytes), this.exCodesOf(l));
      const f = this.kernel.floats(this.factorsOf(l), this.factorCount * list.capacity);
      for (let k = 0; k < this.factorCount; k++) {
        f.set(factors.subarray(k * n + at, k * n + at + size), k * list.capacity);
      }
      at += size;
      codeAt += listCodes;
    });
    this.renumberRows();
  }

  /** Gives back every list's memory. */
  dispose(): void {
    for (const list of this.lists) {
      if (list.capacity > 0) this.kernel.free(list.address, this.listBytes(list.capacity));
      Object.assign(list, {
        size: 0,
        capacity: 0,
        address: 0,
        ids: new Uint32Array(0),
        rows: new Uint32Array(0),
      });
    }
    this.largest = 0;
  }

  /** Renumbers every vector's row to its position in list order (after a save wrote them so). */
  renumberRows(): void {
    let at = 0;
    for (const list of this.lists) for (let i = 0; i < list.size; i++) list.rows[i] = at++;
  }
}
