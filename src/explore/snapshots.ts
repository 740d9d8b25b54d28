import type { ImageCollection } from '../collection/store.ts';

/** Every stored vector of a collection at one moment, with a way from an id to its row. */
export interface VectorSnapshot {
  /** Changes whenever the collection does (see `generationOf`). */
  generation: string;
  ids: Uint32Array;
  /** n × dimension, as the model made them (before any projection of the collection's index). */
  vectors: Float32Array;
  dimension: number;
  labels: string[][];
  rowOf: Map<number, number>;
}

/** What identifies a collection's contents now: the index's generation and the database's. */
export async function generationOf(col: ImageCollection): Promise<string> {
  const status = await col.status();
  return `${status.generation}/${status.databaseGeneration}`;
}

/**
 * The stored vectors of each collection, read once per generation and kept while they fit in
 * `maxCachedBytes` (47 MB for Caltech101's 9,144 × 1,280): the projections and the HNSW view read them,
 * and reading them again from the database takes longer than the rest of an answer.
 */
export class VectorSnapshots {
  private readonly cache = new WeakMap<ImageCollection, Promise<VectorSnapshot>>();

  constructor(private readonly maxCachedBytes = 256 * 1024 * 1024) {}

  async get(col: ImageCollection): Promise<VectorSnapshot> {
    const generation = await generationOf(col);
    const cached = this.cache.get(col);
    if (cached) {
      const snapshot = await cached.catch(() => undefined);
      if (snapshot?.generation === generation) return snapshot;
    }
    const reading = read(col, generation);
    this.cache.set(col, reading);
    try {
      const snapshot = await reading;
      if (snapshot.vectors.byteLength > this.maxCachedBytes) this.cache.delete(col);
      return snapshot;
    } catch (error) {
      this.cache.delete(col);
      throw error;
    }
  }
}

async function read(col: ImageCollection, generation: string): Promise<VectorSnapshot> {
  const { ids, vectors, labels } = await col.storedVectors();
  const rowOf = new Map<number, number>();
  ids.forEach((id, row) => {
    rowOf.set(id, row);
  });
  return {
    generation,
    ids,
    vectors,
    dimension: ids.length > 0 ? vectors.length / ids.length : col.manifest.dimension,
    labels,
    rowOf,
  };
}
