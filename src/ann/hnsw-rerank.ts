import type { DecodedIndexFile, StreamedSection } from './format.ts';
import type { DistanceType } from './metric.ts';
import { refineDistance } from './refine-store.ts';
import { type RowStorage, RowStore } from './row-store.ts';
import type { TopK } from './topk.ts';

/**
 * The full copy an HNSW index may keep to re-rank the best of its beam exactly: kept in the index file
 * and read a row at a time on demand (see RowStore), so the graph's int8 rows stay the only vectors in
 * memory. Node n's vector is row nodeRows[n]; a save writes them in node order.
 */
export class HnswRerank {
  readonly rows: RowStore;
  private nodeRows = new Uint32Array(0);
  private readonly buffer: Uint8Array;
  private readonly row: Float32Array | Uint16Array;

  constructor(
    readonly dimension: number,
    readonly storage: RowStorage,
  ) {
    this.rows = new RowStore(dimension, storage);
    this.buffer = new Uint8Array(this.rows.rowBytes);
    this.row =
      storage === 'float32' ? new Float32Array(this.buffer.buffer) : new Uint16Array(this.buffer.buffer);
  }

  /** Keeps the n rows of nodes [first, first + n) (data: n × dimension, normalized already for cosine). */
  add(data: Float32Array, n: number, first: number): void {
    const row = this.rows.append(data, n);
    if (first + n > this.nodeRows.length) {
      const grown = new Uint32Array(Math.max(first + n, Math.ceil(this.nodeRows.length * 1.5), 64));
      grown.set(this.nodeRows.subarray(0, first));
      this.nodeRows = grown;
    }
    for (let i = 0; i < n; i++) this.nodeRows[first + i] = row + i;
  }

  /** Follows a renumbering of the nodes (renumber[v] = new number, −1 for gone) down to `live` nodes. */
  renumber(renumber: Int32Array, live: number): void {
    const rows = new Uint32Array(Math.max(live, 1));
    for (let v = 0; v < renumber.length; v++) if (renumber[v]! >= 0) rows[renumber[v]!] = this.nodeRows[v]!;
    this.nodeRows = rows;
  }

  /**
   * Exact distances (internal: ‖q − x‖², or −⟨q, x⟩ for dot) of the first `count` nodes, pushed into
   * `top`, which keeps the k best.
   */
  rerank(query: Float32Array, nodes: Uint32Array, count: number, type: DistanceType, top: TopK): void {
    top.reset();
    const d = this.dimension;
    for (let i = 0; i < count; i++) {
      const node = nodes[i]!;
      this.rows.read(this.nodeRows[node]!, this.buffer);
      top.push(refineDistance(query, this.row, 0, d, type === 'dot' ? 'dot' : 'l2'), node, 0);
    }
    top.sort();
  }

  /** The rows of nodes [0, count) in node order, for the file. */
  section(count: number): StreamedSection {
    return this.rows.section(this.nodeRows.subarray(0, count));
  }

  /** Reads rows from the file's "RVEC" section from now on (node n is row n). */
  attach(file: DecodedIndexFile, count: number): void {
    this.rows.attach(file.onDemand('RVEC', this.rows.rowBytes, count), count);
    this.nodeRows = Uint32Array.from({ length: Math.max(count, 1) }, (_, i) => i);
  }

  /** Bytes in memory: the node → row table and rows not yet saved. */
  get memoryBytes(): number {
    return this.nodeRows.byteLength + this.rows.memoryBytes;
  }
}
