import { ArgumentError } from '../errors.ts';
import { NO_ID } from './types.ts';
import { checkIds } from './validate.ts';

/**
 * The ids of an index, the same rules for every kind: explicit ids must be new (not NO_ID, not twice in
 * one call, not already present); without ids an add takes the next free ones, one more than the largest
 * ever added. The index keeps the ids themselves (in its lists or rows); this reads them through `chunks`.
 */
export class IdSet {
  /** One more than the largest id ever added (saved in the file, so removed ids are not reused). */
  nextId: number;

  constructor(
    private readonly chunks: () => Iterable<Uint32Array>,
    nextId = 0,
  ) {
    this.nextId = nextId;
  }

  /** The ids for n vectors about to be added: `ids` once checked, or fresh ones. */
  forAdd(ids: Uint32Array | undefined, n: number): Uint32Array {
    if (ids === undefined) {
      if (this.nextId + n > NO_ID) {
        throw new ArgumentError(
          'OUT_OF_RANGE',
          'The index ran out of 32-bit ids; pass explicit ids to add()',
        );
      }
      return Uint32Array.from({ length: n }, (_, i) => this.nextId + i);
    }
    checkIds(ids, n);
    const fresh = new Set<number>();
    for (const id of ids) {
      if (id === NO_ID) {
        throw new ArgumentError('OUT_OF_RANGE', `Id ${NO_ID} is reserved for "no result"; use a smaller id`);
      }
      if (fresh.has(id)) throw duplicateId(id, 'twice in this call');
      fresh.add(id);
    }
    for (const chunk of this.chunks())
      for (const id of chunk) if (fresh.has(id)) throw duplicateId(id, 'already in the index');
    return ids;
  }

  /** Records ids now stored, so the next fresh ones come after them. */
  added(ids: Uint32Array): void {
    for (const id of ids) if (id >= this.nextId) this.nextId = id + 1;
  }

  /** Refuses a merge of two indexes that share an id. */
  checkDisjoint(other: IdSet): void {
    const mine = new Set<number>();
    for (const chunk of this.chunks()) for (const id of chunk) mine.add(id);
    for (const chunk of other.chunks())
      for (const id of chunk) if (mine.has(id)) throw duplicateId(id, 'in both indexes');
  }
}

/** The ids a `remove` call names, as a set. */
export function idsToRemove(ids: unknown): Set<number> {
  if (!(ids instanceof Uint32Array) && !Array.isArray(ids)) {
    throw new ArgumentError('INVALID_ARGUMENT', 'Expected ids to be a Uint32Array or an array of numbers');
  }
  return new Set<number>(ids as ArrayLike<number> & Iterable<number>);
}

export function duplicateId(id: number, where: string): ArgumentError {
  return new ArgumentError(
    'DUPLICATE_ID',
    `Id ${id} is ${where}; every vector needs its own id (remove the old one first)`,
  );
}
