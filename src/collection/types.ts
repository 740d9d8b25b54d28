import type { IndexKind } from '../ann/format.ts';
import type { HnswBuilder } from '../ann/hnsw-parallel.ts';
import type { Assigner } from '../ann/kmeans.ts';
import type { EmbedderProgress, EmbedProgress } from '../embed/embedder.ts';
import type { RisError } from '../errors.ts';
import type { StoredImage } from './database.ts';
import type { IndexSettings } from './manifest.ts';

/** An image of a collection, as both stores read it. */
export interface ImageRecord extends StoredImage {
  /** Where the file is now: the stored path resolved against the collection's root. */
  absolutePath: string;
}

export interface SearchHit extends ImageRecord {
  /** Cosine distance, 0 (same direction) to 2. */
  distance: number;
  /** 1 − distance: 1 for the same picture, about 0 for unrelated ones. */
  similarity: number;
}

export interface AddReport {
  added: number;
  /** Already in the collection (by path): an interrupted run resumed, or the same call twice. */
  alreadyPresent: number;
  failures: { path: string; error: RisError }[];
  /** Images whose bytes equal an image already in the collection. */
  duplicates: { path: string; sameAs: string }[];
  ids: number[];
}

export interface RemoveReport {
  removed: number;
  /** Targets (ids or paths) that matched no image. */
  notFound: (number | string)[];
}

/** What the index of a collection is now. */
export interface IndexStatus {
  kind: 'none' | IndexKind;
  /** Vectors in the index. */
  indexed: number;
  /** Vectors the quantizers were trained on (IVF-PQ); the index's size when it was built otherwise. */
  trainedOn: number;
  /** The database generation the index reflects, and the database's own. */
  generation: number;
  databaseGeneration: number;
  /** The settings the index is built with (manifest.json), and what was built from them. */
  settings: IndexSettings;
  /** The index's own parameters as built (partitions, sub-vectors, refine storage, …). */
  built: Record<string, number | string>;
  /**
   * Bytes the index holds in memory (its memoryUsage().total: an IVF-RaBitQ index's full vectors only
   * while added and not yet written), where the store holds the index itself.
   */
  memoryBytes?: number;
  /** Why the index is weaker than one built now (built by an older ris), and what rebuilds it. */
  outdated?: string;
}

/** Progress of the library's long steps, for the CLI's lines and bars. */
export type CollectionProgress =
  | EmbedProgress
  | { type: 'train'; images: number }
  | { type: 'rebuild'; collection: string; images: number; reason: string };

export interface CollectionOptions {
  /** Where collections live. Default: risHome(). */
  home?: string;
  /** Options for the embedder the collection opens for its model (threads, cache directory, …). */
  embedder?: {
    threads?: number;
    cacheDir?: string;
    batchSize?: number;
    onProgress?: (e: EmbedderProgress) => void;
  };
  /** Spreads index training over threads. */
  assigner?: Assigner;
  /** Spreads HNSW builds over threads (createNodeHnswBuilder). */
  hnswBuilder?: HnswBuilder;
  /** Reports a rebuild of a missing or damaged index. */
  onProgress?: (event: CollectionProgress) => void;
  /**
   * Which index updates are written to index.ris: 'always' (the CLI: a later command starts from them) or
   * 'builds' (a server: it follows other writers in memory, and writes only an index it had to build).
   * Default 'always'.
   */
  persistIndex?: 'always' | 'builds';
}

/** A report of nothing added yet, `alreadyPresent` of the images asked for being there already. */
export function emptyAddReport(alreadyPresent: number): AddReport {
  return { added: 0, alreadyPresent, failures: [], duplicates: [], ids: [] };
}
