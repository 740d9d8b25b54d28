import { ArgumentError } from '../errors.ts';
import { checkInteger } from './validate.ts';

/** A typed array of per-row values, `width` values per row. */
export type Column = Uint8Array | Uint16Array | Uint32Array | Float32Array;
type ColumnType = { new (length: number): Column };

/** One payload column of every list: values per row and the typed array that holds them. */
export interface ColumnSpec {
  readonly width: number;
  readonly type: ColumnType;
}

/** One partition: its ids and, row for row, each column's values. */
export interface InvertedList {
  readonly ids: Uint32Array;
  readonly columns: readonly Column[];
}

/**
 * The partitions of an IVF index (or the single "partition" of a flat one): per list, ids and payload
 * columns (PQ codes, refine vectors, norms…) row for row. Lists are never written in place: every change
 * builds the lists it touches anew, so lists that view a caller's file bytes (`view`) leave them intact.
 */
export class InvertedLists {
  private lists: InvertedList[];
  private total = 0;

  constructor(
    readonly specs: readonly ColumnSpec[],
    numLists: number,
  ) {
    this.lists = Array.from({ length: numLists }, () => this.emptyList());
  }

  get numLists(): number {
    return this.lists.length;
  }

  /** Rows in all lists. */
  get count(): number {
    return this.total;
  }

  list(l: number): InvertedList {
    return this.lists[l]!;
  }

  /** The ids chunk by chunk (for an IdSet). */
  *idChunks(): Iterable<Uint32Array> {
    for (const list of this.lists) yield list.ids;
  }

  /** Every id, list after list. */
  ids(): Uint32Array {
    const out = new Uint32Array(this.total);
    let at = 0;
    for (const list of this.lists) {
      out.set(list.ids, at);
      at += list.ids.length;
    }
    return out;
  }

  sizes(): Uint32Array {
    return Uint32Array.from(this.lists, (list) => list.ids.length);
  }

  /** A copy of list l's ids; l is checked. */
  idsOf(l: number): Uint32Array {
    checkInteger(l, 'partition', 0, this.lists.length - 1);
    return this.lists[l]!.ids.slice();
  }

  /**
   * Appends n rows: row i goes to list labels[i] with ids[i] and row i of each column (n × width).
   * Each list that grows is reallocated once, to its exact new size.
   */
  append(labels: Int32Array, ids: Uint32Array, columns: readonly Column[]): void {
    const L = this.lists.length;
    const added = new Uint32Array(L);
    for (const l of labels) added[l]!++;
    const fill = new Uint32Array(L);
    for (let l = 0; l < L; l++) {
      const old = this.lists[l]!;
      fill[l] = old.ids.length;
      if (added[l] === 0) continue;
      this.lists[l] = this.grown(old, old.ids.length + added[l]!);
    }
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i]!;
      const list = this.lists[l]!;
      const at = fill[l]!++;
      list.ids[at] = ids[i]!;
      this.specs.forEach(({ width }, c) => {
        const to = list.columns[c]!;
        const from = columns[c]!;
        if (width === 1) to[at] = from[i]!;
        else to.set(from.subarray(i * width, (i + 1) * width), at * width);
      });
    }
    this.total += labels.length;
  }

  /** Removes the rows whose id is in `gone`; returns how many were removed. */
  remove(gone: ReadonlySet<number>): number {
    let removed = 0;
    this.lists = this.lists.map((list) => {
      let keep = 0;
      for (const id of list.ids) if (!gone.has(id)) keep++;
      if (keep === list.ids.length) return list;
      removed += list.ids.length - keep;
      const next = this.allocate(keep);
      let at = 0;
      for (let i = 0; i < list.ids.length; i++) {
        if (gone.has(list.ids[i]!)) continue;
        next.ids[at] = list.ids[i]!;
        this.specs.forEach(({ width }, c) => {
          const to = next.columns[c]!;
          const from = list.columns[c]!;
          if (width === 1) to[at] = from[i]!;
          else to.set(from.subarray(i * width, (i + 1) * width), at * width);
        });
        at++;
      }
      return next;
    });
    this.total -= removed;
    return removed;
  }

  /** Appends every list of `other` (same layout) to the list of the same number. */
  merge(other: InvertedLists): void {
    if (other.lists.length !== this.lists.length || other.specs.length !== this.specs.length) {
      throw new ArgumentError('INVALID_ARGUMENT', 'Cannot merge inverted lists of another layout');
    }
    this.lists = this.lists.map((list, l) => {
      const extra = other.lists[l]!;
      if (extra.ids.length === 0) return list;
      const next = this.grown(list, list.ids.length + extra.ids.length);
      next.ids.set(extra.ids, list.ids.length);
      this.specs.forEach(({ width }, c) => {
        next.columns[c]!.set(extra.columns[c]!, list.ids.length * width);
      });
      return next;
    });
    this.total += other.total;
  }

  /** All lists end to end (the file layout): list sizes, ids, and each column. */
  concatenated(): { sizes: Uint32Array; ids: Uint32Array; columns: Column[] } {
    const columns = this.specs.map(({ width, type }) => new type(this.total * width));
    let at = 0;
    for (const list of this.lists) {
      this.specs.forEach(({ width }, c) => {
        columns[c]!.set(list.columns[c]!, at * width);
      });
      at += list.ids.length;
    }
    return { sizes: this.sizes(), ids: this.ids(), columns };
  }

  /** Lists that view `ids` and `columns` (laid end to end, sizes[l] rows for list l) without copying. */
  static view(
    specs: readonly ColumnSpec[],
    sizes: Uint32Array,
    ids: Uint32Array,
    columns: readonly Column[],
  ): InvertedLists {
    const lists = new InvertedLists(specs, 0);
    let at = 0;
    lists.lists = Array.from(sizes, (size) => {
      const list = {
        ids: ids.subarray(at, at + size),
        columns: specs.map(({ width }, c) => columns[c]!.subarray(at * width, (at + size) * width)),
      };
      at += size;
      return list;
    });
    lists.total = at;
    return lists;
  }

  /** Bytes of the ids and of each column. */
  byteLengths(): { ids: number; columns: number[] } {
    const columns = this.specs.map(() => 0);
    let ids = 0;
    for (const list of this.lists) {
      ids += list.ids.byteLength;
      list.columns.forEach((column, c) => {
        columns[c]! += column.byteLength;
      });
    }
    return { ids, columns };
  }

  private emptyList(): InvertedList {
    return this.allocate(0);
  }

  private allocate(size: number): { ids: Uint32Array; columns: Column[] } {
    return {
      ids: new Uint32Array(size),
      columns: this.specs.map(({ width, type }) => new type(size * width)),
    };
  }

  /** A copy of `list` with room for `size` rows. */
  private grown(list: InvertedList, size: number): InvertedList {
    const next = this.allocate(size);
    next.ids.set(list.ids);
    this.specs.forEach((_, c) => {
      next.columns[c]!.set(list.columns[c]!);
    });
    return next;
  }
}
