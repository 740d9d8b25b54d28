import { checkInteger } from '../ann/validate.ts';
import type { VectorIndex } from '../ann/vector-index.ts';
import type { Embedder } from '../embed/embedder.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import type { LinearProjection } from '../embed/projection.ts';
import { ArgumentError, describe } from '../errors.ts';
import type { Exclusion, StoredFile } from './database.ts';
import type { CollectionManifest, IndexSettingsInput } from './manifest.ts';
import type { PendingWork } from './pending-work.ts';
import type {
  AddReport,
  CollectionOptions,
  CollectionProgress,
  ImageRecord,
  IndexStatus,
  RemoveReport,
  SearchHit,
} from './types.ts';
import type { Upload, UploadProgress, UploadReport } from './uploads.ts';
import type { ImageToAdd } from './walk.ts';

/** How a collection searches; both stores take the same options and ignore those their index has no use for. */
export interface SearchOptions {
  /** Number of results, 1 to 1000. Default 5. */
  k?: number;
  /**
   * IVF-PQ collections: partitions probed. More finds more of the true neighbours and costs time roughly in
   * proportion. Default 16 (DEFAULT_NPROBES). In PostgreSQL, a floor for efSearch.
   */
  nprobes?: number;
  /**
   * HNSW collections: the width of the search's beam (at least k). More finds more of the true neighbours,
   * slower. Default 64 (DEFAULT_EF_SEARCH) locally; in PostgreSQL the collection's setting (40), at least 2k.
   */
  efSearch?: number;
  /**
   * Answer only hits at least this similar (1 − cosine distance, −1 to 1); fewer than k, or none, when
   * nothing else is close enough. Default: no cutoff. Each model's scores have their own scale (see the
   * registry's `similarity`).
   */
  minSimilarity?: number;
}

/** k, nprobes, efSearch and minSimilarity, checked the same way by every store. */
export function checkSearchOptions(options: SearchOptions): {
  k: number;
  nprobes: number | undefined;
  efSearch: number | undefined;
  minSimilarity: number;
} {
  const k = checkInteger(options.k ?? 5, 'k', 1, 1000);
  const nprobes =
    options.nprobes === undefined ? undefined : checkInteger(options.nprobes, 'nprobes', 1, 1 << 20);
  const efSearch =
    options.efSearch === undefined ? undefined : checkInteger(options.efSearch, 'efSearch', 1, 1 << 20);
  const minSimilarity = options.minSimilarity ?? -Infinity;
  if (options.minSimilarity !== undefined && !(minSimilarity >= -1 && minSimilarity <= 1))
    throw new ArgumentError(
      'OUT_OF_RANGE',
      `Expected minSimilarity from -1 to 1 but received ${describe(options.minSimilarity)}`,
    );
  return { k, nprobes, efSearch, minSimilarity };
}

/**
 * A collection, wherever it is stored: a folder on this machine (SQLite + index.ris, `Collection`) or a
 * PostgreSQL database with pgvector. The CLI and the server use only this.
 */
export interface ImageCollection {
  readonly name: string;
  readonly manifest: CollectionManifest;
  /** A folder on this machine for what is derived from the collection (thumbnails, experiment reports). */
  readonly dir: string;
  /** Search hits left out because their image was removed between the index lookup and reading its row. */
  readonly staleHitsDropped: number;
  /** The embedder of the collection's model (MODEL_MISMATCH if the model file changed). */
  embedder(): Promise<Embedder>;
  count(): Promise<number>;
  /** Counts per label, most frequent first. */
  labels(): Promise<{ label: string; count: number }[]>;
  get(id: number): Promise<ImageRecord | undefined>;
  /**
   * Page `page` of the images in a seeded random order, without repeats across pages of one seed; images
   * added or removed leave the others in their order (see seededPage).
   */
  sample(seed: number, page: number, count: number): Promise<{ total: number; images: ImageRecord[] }>;
  /** Every stored image's id, path, labels and vector (n × dimension, row-major), from one snapshot. */
  storedVectors(): Promise<{ ids: Uint32Array; vectors: Float32Array; paths: string[]; labels: string[][] }>;
  addImages(
    images: ImageToAdd[],
    options?: { onProgress?: (e: CollectionProgress) => void; signal?: AbortSignal },
  ): Promise<AddReport>;
  removeImages(targets: (number | string)[]): Promise<RemoveReport>;
  retrain(options?: { onProgress?: (e: CollectionProgress) => void }): Promise<void>;
  /**
   * A `ris index` or `ris retrain` started and not finished (killed, or still running), marked from its
   * start to its end (beginWork, endWork) with the collection, wherever it is kept.
   */
  pendingWork(): Promise<PendingWork | undefined>;
  beginWork(work: PendingWork): Promise<void>;
  endWork(): Promise<void>;
  /** Follows what other processes changed; cheap when nothing did. */
  refresh(): Promise<void>;
  search(input: ImageInput, options?: SearchOptions & { crop?: CropBox }): Promise<SearchHit[]>;
  searchVector(query: Float32Array, options?: SearchOptions): Promise<SearchHit[]>;
  /**
   * The in-memory index searches use, and how a model vector becomes its query; undefined where the index
   * lives elsewhere (in PostgreSQL). Explore draws it.
   */
  searchIndex(): { index: VectorIndex; query(vector: Float32Array): Float32Array } | undefined;
  readImage(record: ImageRecord): Promise<Buffer>;
  thumbnail(record: ImageRecord): Promise<Buffer>;
  status(): Promise<IndexStatus>;
  close(): Promise<void>;
}

/**
 * What a collection offers for keeping a library from the page and for following its folder: files
 * sent to it, removal that keeps a folder's removed files out, and what a rescan compares the folder with.
 */
export interface LibraryCollection extends ImageCollection {
  /**
   * Embeds and stores sent files (uploads, fetched URLs); their bytes are kept by ris where every server
   * of the collection can read them. Skips bytes already in the collection; lists unusable files with why.
   */
  addUploads(
    uploads: Upload[],
    options?: { onProgress?: (e: CollectionProgress | UploadProgress) => void; signal?: AbortSignal },
  ): Promise<UploadReport>;
  /**
   * Removes images; with `exclude` (the default) a removed file of the collection's folder stays out of
   * rescans until it changes, and ris's own copy of an uploaded file is deleted.
   */
  removeImages(targets: (number | string)[], options?: { exclude?: boolean }): Promise<RemoveReport>;
  /** New paths for images whose files moved inside the folder (same bytes): ids and vectors stay. */
  moveImages(moves: { id: number; path: string; mtimeMs: number | null }[]): Promise<void>;
  /** Records the mtime of files found unchanged by content. */
  touchFiles(files: { id: number; mtimeMs: number | null }[]): Promise<void>;
  /**
   * Every image's stored path, size, sha256 and file mtime; with `under` (stored paths of folders or
   * files, '' for the root), at least those at or below them: a rescan of a few paths reads only theirs.
   */
  storedFiles(under?: string[]): Promise<StoredFile[]>;
  /** Files of the folder a user removed (kept out of rescans until they change). */
  exclusions(): Promise<Exclusion[]>;
  unexclude(paths: string[]): Promise<void>;
  /** Whether an image's file is ris's own copy of an upload (not a file of the user's). */
  isUpload(record: { path: string }): boolean;
  /**
   * Whether it follows a folder of the user's (its root: rescans and watching compare the two); false for
   * a collection made without one, whose images are only what is sent or added to it.
   */
  readonly followsFolder: boolean;
}

/** Whether a collection can keep a library (uploads, removal with exclusions, rescans). */
export function isLibraryCollection(collection: ImageCollection): collection is LibraryCollection {
  return typeof (collection as Partial<LibraryCollection>).addUploads === 'function';
}

/** Where collections are kept, and the operations on them as a whole. */
export interface CollectionStore {
  /** Where it is, fit to print (a folder, or a database URL with its password masked). */
  readonly location: string;
  list(): Promise<string[]>;
  exists(name: string): Promise<boolean>;
  open(name: string, options?: CollectionOptions): Promise<ImageCollection>;
  /**
   * Creates an empty collection of images under `root` (default: a folder of the collection's own, for
   * collections that only receive uploads).
   */
  create(
    name: string,
    init: { model: string; root?: string; index?: IndexSettingsInput; projection?: LinearProjection },
    options?: CollectionOptions,
  ): Promise<ImageCollection>;
  delete(name: string): Promise<void>;
  /** Repairs what can be repaired; returns what it did. */
  repair(name: string, options?: CollectionOptions): Promise<string[]>;
  close(): Promise<void>;
}
