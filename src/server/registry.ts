import type { ImageCollection } from '../collection/store.ts';
import { CollectionError } from '../errors.ts';

/** Where a dataset being prepared in the background is. */
export interface Preparation {
  phase: 'waiting' | 'opening' | 'downloading' | 'extracting' | 'embedding' | 'indexing';
  /** Of the whole preparation, 0 to 100. */
  percent: number;
}

/** A collection the server knows of, in whatever state it is. */
export type CollectionEntry =
  | { name: string; state: 'ready'; collection: ImageCollection }
  | { name: string; state: 'broken'; reason: string }
  | { name: string; state: 'preparing'; preparation: Preparation }
  | { name: string; state: 'failed'; reason: string };

/**
 * The collections a server answers for, in the order the page shows them. A broken one is listed with the
 * reason and answers 503; one being prepared joins once ready, without a restart.
 */
export class CollectionRegistry {
  private readonly entries = new Map<string, CollectionEntry>();
  private readonly listeners = new Set<(name: string, entry: CollectionEntry | undefined) => void>();

  constructor(entries: CollectionEntry[] = []) {
    for (const entry of entries) this.entries.set(entry.name, entry);
  }

  static of(collections: ImageCollection[]): CollectionRegistry {
    return new CollectionRegistry(
      collections.map((collection) => ({ name: collection.name, state: 'ready', collection })),
    );
  }

  list(): CollectionEntry[] {
    return [...this.entries.values()];
  }

  ready(): ImageCollection[] {
    return this.list().flatMap((e) => (e.state === 'ready' ? [e.collection] : []));
  }

  set(entry: CollectionEntry): void {
    this.entries.set(entry.name, entry);
    for (const listener of this.listeners) listener(entry.name, entry);
  }

  delete(name: string): void {
    if (!this.entries.delete(name)) return;
    for (const listener of this.listeners) listener(name, undefined);
  }

  /** Calls `listener` on every change of an entry (undefined: it left); returns how to stop. */
  onChange(listener: (name: string, entry: CollectionEntry | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The collection to answer a request with, or the error that says why there is none. */
  require(name: string): ImageCollection {
    const entry = this.entries.get(name);
    if (!entry) {
      const known = this.list().map((e) => e.name);
      throw new CollectionError(
        'COLLECTION_NOT_FOUND',
        `No collection "${name}" is served here${known.length ? ` (there are: ${known.join(', ')})` : ''}; GET /api/collections lists them`,
      );
    }
    switch (entry.state) {
      case 'ready':
        return entry.collection;
      case 'broken':
        throw new CollectionError('COLLECTION_BROKEN', entry.reason);
      case 'failed':
        throw new CollectionError(
          'COLLECTION_BROKEN',
          `Preparing collection "${name}" failed: ${entry.reason}`,
        );
      case 'preparing':
        throw new CollectionError(
          'COLLECTION_PREPARING',
          `Collection "${name}" is being prepared (${entry.preparation.phase}, ${entry.preparation.percent}%); try again when it is ready`,
        );
    }
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.ready().map((c) => c.close()));
  }
}
