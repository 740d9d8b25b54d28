import { NO_ID } from './types.ts';

/**
 * External id → node number over typed arrays. Ids given by the index itself are dense (0, 1, 2, …), so
 * while they stay so the map is a plain array indexed by id (4 bytes an id); the first id far beyond the
 * others turns it into an open-addressing hash (8 bytes a slot, at most 3/4 full).
 */
export class IdMap {
  /** Dense: node of id i at dense[i] (NO_ID: none). Undefined once hashed. */
  private dense: Uint32Array | undefined;
  private keys = new Uint32Array(0);
  private values = new Uint32Array(0);
  private mask = 0;
  private count = 0;
  /** The largest id in the dense array, -1 while empty. */
  private top = -1;

  constructor(expected = 0) {
    this.dense = new Uint32Array(Math.max(16, expected)).fill(NO_ID);
  }

  get size(): number {
    return this.count;
  }

  /** Bytes the entries need (as the indexes count memory: in use, not room to grow): the same however built. */
  get byteLength(): number {
    if (this.dense) return 4 * (this.top + 1);
    let size = 16;
    while (size * 3 < this.count * 4) size *= 2;
    return 8 * size;
  }

  /** The node of `id`, or -1. */
  get(id: number): number {
    if (this.dense) {
      const node = id < this.dense.length ? this.dense[id]! : NO_ID;
      return node === NO_ID ? -1 : node;
    }
    const i = this.slot(id);
    return this.keys[i] === id ? this.values[i]! : -1;
  }

  set(id: number, node: number): void {
    if (this.dense) {
      if (id < this.dense.length) {
        if (this.dense[id] === NO_ID) this.count++;
        this.dense[id] = node;
        if (id > this.top) this.top = id;
        return;
      }
      // Growing the array pays while it stays at most twice the ids it holds.
      if (id < 2 * (this.count + 1) + 1024) {
        const grown = new Uint32Array(Math.max(id + 1, Math.ceil(this.dense.length * 1.5))).fill(NO_ID);
        grown.set(this.dense);
        this.dense = grown;
        this.set(id, node);
        return;
      }
      this.toHash();
    }
    const i = this.slot(id);
    if (this.keys[i] !== id) {
      if ((this.count + 1) * 4 > this.keys.length * 3) {
        this.rehash(this.keys.length * 2);
        this.set(id, node);
        return;
      }
      this.keys[i] = id;
      this.count++;
    }
    this.values[i] = node;
  }

  private slot(id: number): number {
    let i = Math.imul(id, 0x9e3779b1) >>> 0;
    i = (i ^ (i >>> 15)) & this.mask;
    while (this.keys[i] !== NO_ID && this.keys[i] !== id) i = (i + 1) & this.mask;
    return i;
  }

  private toHash(): void {
    const dense = this.dense!;
    this.dense = undefined;
    let size = 16;
    while (size * 3 < (this.count + 1) * 4) size *= 2;
    this.keys = new Uint32Array(size).fill(NO_ID);
    this.values = new Uint32Array(size);
    this.mask = size - 1;
    this.count = 0;
    for (let id = 0; id < dense.length; id++) if (dense[id] !== NO_ID) this.set(id, dense[id]!);
  }

  private rehash(size: number): void {
    const { keys, values } = this;
    this.keys = new Uint32Array(size).fill(NO_ID);
    this.values = new Uint32Array(size);
    this.mask = size - 1;
    this.count = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== NO_ID) this.set(keys[i]!, values[i]!);
  }
}
