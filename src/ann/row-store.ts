import { float16Table, toFloat16Bits } from './float16.ts';
import type { OnDemandSection, StreamedSection } from './format.ts';

/** How an index keeps the full vectors it re-ranks with: 4 or 2 bytes per dimension. */
export type RowStorage = 'float32' | 'float16';

/**
 * Full vectors kept only to re-rank a few candidates exactly: those of the index file are read a row at
 * a time on demand (never held in memory), those added since the file was written stay in memory until
 * the next save writes them into it. Rows are numbered: the file's first, then the ones added since.
 */
export class RowStore {
  readonly rowBytes: number;
  private file: OnDemandSection | undefined;
  private fileRows = 0;
  /** Rows added since the file was written, row-major, with room to grow. */
  private added = new Uint8Array(0);
  private addedRows = 0;

  constructor(
    readonly dimension: number,
    readonly storage: RowStorage,
  ) {
    this.rowBytes = dimension * (storage === 'float32' ? 4 : 2);
  }

  /** Rows in the store (the file's, then those added). */
  get rows(): number {
    return this.fileRows + this.addedRows;
  }

  /** Reads rows from `section` (rows of this store's width) from now on; forgets the ones added. */
  attach(section: OnDemandSection, rows: number): void {
    if (this.file !== section) this.file?.close();
    this.file = section;
    this.fileRows = rows;
    this.added = new Uint8Array(0);
    this.addedRows = 0;
  }

  /** Appends n rows (n × dimension f32); returns the first one's number. */
  append(vectors: Float32Array, n: number): number {
    const first = this.rows;
    const need = (this.addedRows + n) * this.rowBytes;
    if (need > this.added.length) {
      const grown = new Uint8Array(Math.max(need, Math.ceil(this.added.length * 1.5)));
      grown.set(this.added.subarray(0, this.addedRows * this.rowBytes));
      this.added = grown;
    }
    const at = this.addedRows * this.rowBytes;
    const count = n * this.dimension;
    if (this.storage === 'float32') {
      new Float32Array(this.added.buffer, at, count).set(vectors.subarray(0, count));
    } else {
      const bits = new Uint16Array(this.added.buffer, at, count);
      for (let i = 0; i < count; i++) bits[i] = toFloat16Bits(vectors[i]!);
    }
    this.addedRows += n;
    return first;
  }

  /** Copies row `row` into `into` (rowBytes long): from memory, or read from the file. */
  read(row: number, into: Uint8Array): void {
    if (row < this.fileRows) this.file!.read(into, row * this.rowBytes);
    else {
      const at = (row - this.fileRows) * this.rowBytes;
      into.set(this.added.subarray(at, at + this.rowBytes));
    }
  }

  /** Row `row` as f32 values (for tests and exports). */
  vector(row: number): Float32Array {
    const bytes = new Uint8Array(this.rowBytes);
    this.read(row, bytes);
    if (this.storage === 'float32') return new Float32Array(bytes.buffer);
    return Float32Array.from(new Uint16Array(bytes.buffer), (h) => float16Table[h]!);
  }

  /** Bytes held in memory: the rows added since the file, and the file's rows when it is in memory. */
  get memoryBytes(): number {
    return this.added.length + (this.file && !this.file.onDisk ? this.fileRows * this.rowBytes : 0);
  }

  /** Bytes of rows read from disk on demand (not held). */
  get onDiskBytes(): number {
    return this.file?.onDisk ? this.fileRows * this.rowBytes : 0;
  }

  /** The rows `order` names, in that order, as a section streamed into a new file 256 rows at a time. */
  section(order: Uint32Array): StreamedSection {
    const rowBytes = this.rowBytes;
    return {
      byteLength: order.length * rowBytes,
      elementType: this.storage === 'float32' ? Float32Array : Uint16Array,
      chunks: function* (this: RowStore) {
        const chunk = new Uint8Array(256 * rowBytes);
        for (let start = 0; start < order.length; start += 256) {
          const count = Math.min(256, order.length - start);
          for (let i = 0; i < count; i++)
            this.read(order[start + i]!, chunk.subarray(i * rowBytes, (i + 1) * rowBytes));
          yield chunk.subarray(0, count * rowBytes);
        }
      }.bind(this),
    };
  }
}
