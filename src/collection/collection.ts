import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import sharp from 'sharp';
import { FlatIndex } from '../ann/flat.ts';
import type { IndexKind } from '../ann/format.ts';
import { HnswIndex } from '../ann/hnsw.ts';
import type { HnswBuilder } from '../ann/hnsw-parallel.ts';
import { IvfPqIndex } from '../ann/ivf-pq.ts';
import type { Assigner } from '../ann/kmeans.ts';
import { Random } from '../ann/random.ts';
import { DEFAULT_NPROBES } from '../ann/vector-index.ts';
import { Embedder, type EmbedderProgress, type EmbedProgress } from '../embed/embedder.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import {
  applyProjection,
  type LinearProjection,
  projectionFromJson,
  projectionToJson,
} from '../embed/projection.ts';
import {
  ArgumentError,
  CollectionError,
  describe,
  ImageError,
  ModelError,
  type RisError,
} from '../errors.ts';
import { CollectionDb, type StoredImage } from './database.ts';
import { embedFiles, emptyAddReport } from './embed-files.ts';
import {
  type CollectionIndex,
  type IndexStamp,
  NO_STAMP,
  openIndexFile,
  peekStamp,
  peekStampSync,
  removeOrphanTempFiles,
  stampedBytes,
  writeAtomicSync,
} from './index-file.ts';
import {
  broken,
  COLLECTION_FORMAT_VERSION,
  type CollectionManifest,
  EXACT_SEARCH_BELOW,
  HNSW_UP_TO,
  type IndexSettings,
  type IndexSettingsInput,
  indexSettingsSchema,
  manifestText,
  parseManifest,
  readManifest,
} from './manifest.ts';
import { pausePoint } from './pause.ts';
import {
  type CollectionStore,
  checkSearchOptions,
  type ImageCollection,
  type SearchOptions,
} from './store.ts';
import { type ImageToAdd, labelsFor } from './walk.ts';

export type { CollectionManifest, IndexSettings, IndexSettingsInput } from './manifest.ts';
export { EXACT_SEARCH_BELOW, HNSW_UP_TO } from './manifest.ts';
export { type ImageToAdd, labelsFor, walkImages } from './walk.ts';

/** Where collections live: $RIS_HOME, else $XDG_DATA_HOME/ris, else ~/.local/share/ris. */
export function risHome(): string {
  return process.env.RIS_HOME || join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'ris');
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;
/** Databases up to this size are checked page by page whenever a collection is opened. */
const CHECK_ON_OPEN_BYTES = 2 * 1024 ** 3;
/** IVF-PQ candidates re-ranked exactly per result, from the float16 copy: most of the recall PQ loses. */
const REFINE_FACTOR = 8;
const MANIFEST = 'manifest.json';
const DATABASE = 'metadata.db';
const INDEX = 'index.ris';

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

/**
 * A named folder: metadata.db (SQLite in WAL mode, the one truth: every image with its labels, size,
 * sha256 and vector, a generation bumped by every change, a log of the changes), manifest.json (model and
 * index settings, a readable copy of the one in the database) and index.ris (derived: stamped with the
 * generation it reflects, brought up to date from the database by whoever opens the collection).
 *
 * Images are added and removed without retraining. Any number of processes may open a collection; writers
 * queue on SQLite's lock, index saves too, and every reader catches up with what the others wrote.
 */
export class Collection implements ImageCollection {
  readonly dir: string;
  /** Search results whose image was removed between the index lookup and reading its row (left out). */
  staleHitsDropped = 0;
  private readonly db: CollectionDb;
  private index: CollectionIndex | undefined;
  private stamp: IndexStamp = NO_STAMP;
  private embedderPromise: Promise<Embedder> | undefined;
  private refreshing: Promise<void> | undefined;
  private idsCache: { generation: number; ids: Uint32Array } | undefined;
  /** The projection the index holds vectors in, when the collection has one (see the manifest). */
  private projection: LinearProjection | undefined;

  private constructor(
    readonly manifest: CollectionManifest,
    dir: string,
    db: CollectionDb,
    private readonly options: CollectionOptions,
  ) {
    this.dir = dir;
    this.db = db;
  }

  get name(): string {
    return this.manifest.name;
  }

  /** The dimension of what the index holds: the projection's output, or the model's vectors. */
  private get indexDimension(): number {
    return this.projection?.outputDimension ?? this.manifest.dimension;
  }

  /** Vectors of the model as the index holds them (projected, when the collection has a projection). */
  private toIndexSpace(vectors: Float32Array): Float32Array {
    return this.projection && vectors.length > 0 ? applyProjection(this.projection, vectors) : vectors;
  }

  private get persistsAll(): boolean {
    return this.options.persistIndex !== 'builds';
  }

  private get indexPath(): string {
    return join(this.dir, INDEX);
  }

  /** The folder of collection `name`, after checking the name. */
  static directory(name: string, home = risHome()): string {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Expected a collection name of letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit) but received ${describe(name)}`,
      );
    }
    return join(home, 'collections', name);
  }

  static exists(name: string, home = risHome()): boolean {
    const dir = Collection.directory(name, home);
    return existsSync(join(dir, MANIFEST)) || existsSync(join(dir, DATABASE));
  }

  /** Creates an empty collection for images under `root`, embedded with `model`. */
  static async create(
    name: string,
    init: { model: string; root: string; index?: IndexSettingsInput; projection?: LinearProjection },
    options: CollectionOptions = {},
  ): Promise<Collection> {
    const dir = Collection.directory(name, options.home);
    if (Collection.exists(name, options.home)) throw exists(name);
    const settings = indexSettingsSchema.parse(init.index ?? {});
    const model = init.model.endsWith('.onnx') ? resolve(init.model) : init.model;
    const embedder = await Embedder.create({ model, ...options.embedder });
    const projection = init.projection;
    if (
      projection &&
      (projection.inputDimension !== embedder.dimension ||
        (projection.modelId && projection.modelId !== embedder.modelId))
    ) {
      await embedder.close();
      throw new CollectionError(
        'MODEL_MISMATCH',
        `The projection was learned on ${projection.modelId ?? `${projection.inputDimension}-dimension vectors`}, not on ${embedder.modelId} (${embedder.dimension} dimensions); learn one on this model with ris experiment --preset models`,
      );
    }
    const projectionText = projection ? projectionToJson(projection) : undefined;
    await mkdir(dir, { recursive: true });
    const manifest: CollectionManifest = {
      formatVersion: COLLECTION_FORMAT_VERSION,
      name,
      model,
      modelId: embedder.modelId,
      dimension: embedder.dimension,
      root: resolve(init.root),
      index: settings,
      projection:
        projection && projectionText
          ? {
              method: projection.method,
              outputDimension: projection.outputDimension,
              sha256: createHash('sha256').update(projectionText).digest('hex'),
            }
          : null,
      createdAt: new Date().toISOString(),
    };
    const db = CollectionDb.open(join(dir, DATABASE), name, { create: true });
    try {
      db.locked(() => {
        // Two creators at once: the second finds the first one's manifest.
        if (db.meta('manifest') !== undefined) throw exists(name);
        if (projectionText) db.setMeta('projection', projectionText);
        db.setMeta('manifest', manifestText(manifest));
        writeAtomicSync(join(dir, MANIFEST), new TextEncoder().encode(manifestText(manifest)), dir);
      });
    } catch (error) {
      db.close();
      await embedder.close();
      throw error;
    }
    const collection = new Collection(manifest, dir, db, options);
    collection.embedderPromise = Promise.resolve(embedder);
    collection.projection = projection;
    collection.index = collection.emptyIndex();
    collection.stamp = { build: 0, data: db.generation(), trainedOn: 0 };
    return collection;
  }

  /**
   * Opens a collection and brings its index up to date with the database: a missing or damaged index is
   * rebuilt from the stored vectors (reported through onProgress), changes made since it was written are
   * applied. A collection that cannot be used is COLLECTION_BROKEN, saying what is wrong and what to do.
   */
  static async open(name: string, options: CollectionOptions = {}): Promise<Collection> {
    const dir = Collection.directory(name, options.home);
    if (!Collection.exists(name, options.home)) {
      const known = await Collection.list(options.home);
      throw new CollectionError(
        'COLLECTION_NOT_FOUND',
        `No collection "${name}"${known.length ? ` (there are: ${known.join(', ')})` : ''}; create it with ris index <folder> --collection ${name}`,
      );
    }
    const manifestPath = join(dir, MANIFEST);
    const db = CollectionDb.open(join(dir, DATABASE), name, {
      idFloor: () => legacyIdFloor(join(dir, INDEX)),
    });
    try {
      const manifest = await checkedManifest(db, manifestPath, name);
      // SQLite's check of every page costs about 1 ms per MB: on every open up to 2 GB (some 400,000
      // images of 1280 dimensions); past that, `ris collections repair` runs it.
      const problems = statSync(db.path).size <= CHECK_ON_OPEN_BYTES ? db.check() : [];
      if (problems.length > 0) throw broken(name, `${db.path} is damaged (${problems[0]})`);
      const bytes = db.vectorBytes();
      if (bytes !== undefined && bytes !== manifest.dimension * 4) {
        throw broken(
          name,
          `${manifestPath} says ${manifest.dimension} dimensions but the stored vectors have ${bytes / 4}`,
        );
      }
      const collection = new Collection(manifest, dir, db, options);
      collection.projection = storedProjection(db, manifest);
      const changed = await collection.ensureIndex();
      // A command line reader writes what it caught up with, so the next command starts from it.
      if (changed && collection.persistsAll)
        collection.save({ index: collection.index!, stamp: collection.stamp }, false);
      return collection;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** Names of the collections in `home` (broken ones included: a folder with a manifest or a database). */
  static async list(home = risHome()): Promise<string[]> {
    const dir = join(home, 'collections');
    if (!existsSync(dir)) return [];
    const names = await readdir(dir);
    return names
      .filter(
        (n) => NAME.test(n) && (existsSync(join(dir, n, MANIFEST)) || existsSync(join(dir, n, DATABASE))),
      )
      .sort();
  }

  static async delete(name: string, home = risHome()): Promise<void> {
    if (!Collection.exists(name, home)) {
      throw new CollectionError(
        'COLLECTION_NOT_FOUND',
        `No collection "${name}"; ris collections list shows them`,
      );
    }
    await rm(Collection.directory(name, home), { recursive: true, force: true });
  }

  /**
   * Repairs what can be repaired from metadata.db: checks every page of it (rows SQLite can no longer
   * read are dropped and listed), restores manifest.json from the database's copy, removes temp files left
   * by killed writers, and rebuilds index.ris from the stored vectors. Returns what it did.
   */
  static async repair(name: string, options: CollectionOptions = {}): Promise<string[]> {
    const dir = Collection.directory(name, options.home);
    if (!Collection.exists(name, options.home)) {
      throw new CollectionError(
        'COLLECTION_NOT_FOUND',
        `No collection "${name}"; ris collections list shows them`,
      );
    }
    const done: string[] = [];
    const { salvageDatabase } = await import('./salvage.ts');
    const salvaged = await salvageDatabase(join(dir, DATABASE), name);
    if (salvaged) done.push(salvaged);
    const db = CollectionDb.open(join(dir, DATABASE), name);
    try {
      const stored = db.meta('manifest');
      const manifestPath = join(dir, MANIFEST);
      if (stored === undefined) {
        // A version-1 collection keeps its manifest only in manifest.json: it has to be sound.
        const manifest = await readManifest(manifestPath, name);
        db.setMeta('manifest', manifestText(manifest));
      } else {
        const current = await readFile(manifestPath, 'utf8').catch(() => undefined);
        if (current !== stored) {
          db.locked(() => writeAtomicSync(manifestPath, new TextEncoder().encode(stored), dir));
          done.push(`restored ${MANIFEST} from the copy in ${DATABASE}`);
        }
      }
      const orphans = db.locked(() => removeOrphanTempFiles(dir));
      if (orphans.length) done.push(`removed ${orphans.length} temp files left by interrupted writes`);
    } finally {
      db.close();
    }
    const collection = await Collection.open(name, { ...options, persistIndex: 'always' });
    try {
      await collection.rebuild();
      done.push(`rebuilt ${INDEX} from the ${await collection.count()} stored vectors`);
    } finally {
      await collection.close();
    }
    return done;
  }

  /** The embedder of the collection's model, checked to be the very model the vectors came from. */
  embedder(): Promise<Embedder> {
    this.embedderPromise ??= Embedder.create({ model: this.manifest.model, ...this.options.embedder }).then(
      (embedder) => {
        if (embedder.modelId !== this.manifest.modelId) {
          void embedder.close();
          throw new CollectionError(
            'MODEL_MISMATCH',
            `Collection "${this.name}" was built with ${this.manifest.modelId} but the model now is ${embedder.modelId}; ` +
              'restore that model file, or build a new collection',
          );
        }
        return embedder;
      },
      (error: unknown) => {
        if (error instanceof ModelError && error.code === 'MODEL_NOT_FOUND') {
          throw new ModelError(
            'MODEL_NOT_FOUND',
            `Collection "${this.name}" was built with the model file ${this.manifest.model}, which is missing; put it back there (its vectors need that very model)`,
            { cause: error },
          );
        }
        throw error;
      },
    );
    this.embedderPromise.catch(() => {
      this.embedderPromise = undefined; // a later call tries again (the file may be back)
    });
    return this.embedderPromise;
  }

  async count(): Promise<number> {
    return this.db.count();
  }

  /** Counts per label, most frequent first. */
  async labels(): Promise<{ label: string; count: number }[]> {
    return this.db.labelCounts();
  }

  async get(id: number): Promise<ImageRecord | undefined> {
    const stored = this.db.get(id);
    return stored && { ...stored, absolutePath: this.absolutePath(stored.path) };
  }

  /** Every image id, ascending. */
  async allIds(): Promise<Uint32Array> {
    const generation = this.db.generation();
    if (this.idsCache?.generation !== generation) this.idsCache = { generation, ids: this.db.ids() };
    return this.idsCache.ids;
  }

  /** Page `page` of the images in a seeded random order: the same seed pages through them without repeats. */
  async sample(seed: number, page: number, count: number): Promise<{ total: number; images: ImageRecord[] }> {
    const ids = await this.allIds();
    const order = new Random(seed).sample(ids.length, Math.min(ids.length, (page + 1) * count));
    const images: ImageRecord[] = [];
    for (const i of order.subarray(page * count, (page + 1) * count)) {
      const record = await this.get(ids[i]!);
      if (record) images.push(record);
    }
    return { total: ids.length, images };
  }

  /**
   * Every stored image's id, path, labels and vector (n × dimension, row-major), from one snapshot of the
   * database: what the index is built from (experiments measure indexes on it).
   */
  async storedVectors(): Promise<{
    ids: Uint32Array;
    vectors: Float32Array;
    paths: string[];
    labels: string[][];
  }> {
    return this.db.snapshot(() => this.db.allImages(this.manifest.dimension));
  }

  /** Paths as stored: relative to the root for images under it, absolute otherwise. */
  storedPath(file: string): string {
    const absolute = resolve(file);
    const rel = relative(this.manifest.root, absolute);
    return rel.startsWith('..') || isAbsolute(rel) ? absolute : rel.split(sep).join('/');
  }

  absolutePath(stored: string): string {
    return isAbsolute(stored) ? stored : join(this.manifest.root, stored);
  }

  /**
   * Embeds and stores images, one transaction per batch (so an interrupted run keeps what it finished and
   * the next run skips those images), then brings the index up to date. Labels default to the image's
   * first folder below the collection's root.
   */
  async addImages(
    images: ImageToAdd[],
    options: { onProgress?: (e: CollectionProgress) => void; signal?: AbortSignal } = {},
  ): Promise<AddReport> {
    const embedder = await this.embedder();
    const present = this.db.paths();
    const todo = images.filter((image) => !present.has(this.storedPath(image.path)));
    const report = emptyAddReport(images.length - todo.length);
    for await (const { files, failures } of embedFiles(embedder, todo, options.onProgress)) {
      options.signal?.throwIfAborted();
      const rows = files.map(({ image, bytes, width, height, sha256, vector }) => ({
        path: this.storedPath(image.path),
        labels: image.labels ?? labelsFor(image.path, this.manifest.root),
        width,
        height,
        bytes: bytes.length,
        sha256,
        vector: new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength),
      }));
      const now = new Date().toISOString();
      if (rows.length > 0) {
        this.db.write((generation) => {
          for (const row of rows) {
            const same = this.db.pathOfSha(row.sha256);
            const id = this.db.insert(row, generation, now);
            if (id === undefined) {
              report.alreadyPresent++; // another process added it since we looked
              continue;
            }
            if (same !== undefined) report.duplicates.push({ path: row.path, sameAs: same });
            report.ids.push(id);
            report.added++;
          }
        });
        pausePoint('add:committed');
      }
      report.failures.push(...failures);
    }
    if (report.added > 0) await this.updateIndex(options);
    return report;
  }

  /** Removes images by id or by stored path (or a path that resolves to one), then updates the index. */
  async removeImages(targets: (number | string)[]): Promise<RemoveReport> {
    const notFound: (number | string)[] = [];
    let removed = 0;
    this.db.write((generation) => {
      for (const target of targets) {
        const id =
          typeof target === 'number'
            ? target
            : (this.db.idByPath(target) ?? this.db.idByPath(this.storedPath(target)));
        if (id !== undefined && this.db.remove(id, generation)) removed++;
        else notFound.push(target);
      }
    });
    pausePoint('remove:committed');
    await this.updateIndex();
    return { removed, notFound };
  }

  /**
   * Brings the index up to date with the database and writes it: applies the changes since it was written,
   * and builds it anew when there is none, when it cannot be read, or when an 'auto' collection searching
   * exactly grew past EXACT_SEARCH_BELOW images.
   */
  async updateIndex(options: { onProgress?: (e: CollectionProgress) => void } = {}): Promise<void> {
    await this.ensureIndex(options);
    if (this.persistsAll) this.save({ index: this.index!, stamp: this.stamp }, false);
  }

  /** Rebuilds the index from every stored vector, with new quantizers (after many additions). */
  async retrain(options: { onProgress?: (e: CollectionProgress) => void } = {}): Promise<void> {
    await this.rebuild(options);
  }

  /**
   * The index brought up to date in memory: loaded, caught up, or built when it has to be. Returns whether
   * it changed from what index.ris holds.
   */
  private async ensureIndex(
    options: { onProgress?: (e: CollectionProgress) => void } = {},
  ): Promise<boolean> {
    let why: string | undefined;
    if (!this.index) {
      try {
        const bytes = new Uint8Array(await readFile(this.indexPath));
        ({ index: this.index, stamp: this.stamp } = openIndexFile(bytes, this.indexPath));
      } catch (error) {
        why =
          (error as NodeJS.ErrnoException).code === 'ENOENT'
            ? `${INDEX} is missing`
            : `${INDEX} cannot be used (${(error as Error).message})`;
      }
    }
    const images = this.db.count();
    if (this.index) {
      // Grown past (or shrunk below) what this kind of index suits: build the right one instead.
      if (this.kindFor(images) === this.builtKind()) return this.catchUp();
      await this.rebuild(options);
      return true;
    }
    if (images === 0) {
      // Nothing to build yet: an empty index, written once images arrive.
      this.index = this.emptyIndex();
      this.stamp = { build: 0, data: this.db.generation(), trainedOn: 0 };
      return false;
    }
    (options.onProgress ?? this.options.onProgress)?.({
      type: 'rebuild',
      collection: this.name,
      images,
      reason: why ?? `${INDEX} cannot be used`,
    });
    await this.rebuild(options);
    return true;
  }

  /** Builds an index from every stored vector (outside the lock: training takes time), then saves it. */
  private async rebuild(options: { onProgress?: (e: CollectionProgress) => void } = {}): Promise<void> {
    const { ids, vectors, generation } = this.db.snapshot(() => ({
      ...this.db.allVectors(this.manifest.dimension),
      generation: this.db.generation(),
    }));
    (options.onProgress ?? this.options.onProgress)?.({ type: 'train', images: ids.length });
    const index = await this.buildIndex(ids, vectors);
    pausePoint('retrain:trained');
    this.save({ index, stamp: { build: generation, data: generation, trainedOn: ids.length } }, true);
  }

  /**
   * The index kind a collection of `size` images gets. 'auto': exact search below EXACT_SEARCH_BELOW
   * images, HNSW up to HNSW_UP_TO, IVF-PQ past it; an approximate index goes back to exact search only
   * below half the threshold, so images added and removed around it do not rebuild the index each time.
   */
  private kindFor(size: number): 'flat' | 'hnsw' | 'ivf-pq' {
    const { kind } = this.manifest.index;
    if (kind === 'flat' || kind === 'hnsw') return kind;
    if (kind === 'ivf-pq') return size >= 256 ? 'ivf-pq' : 'flat';
    const built = this.builtKind();
    if (size > HNSW_UP_TO) return 'ivf-pq';
    if (size >= EXACT_SEARCH_BELOW) return built === 'ivf-pq' && size > HNSW_UP_TO / 2 ? 'ivf-pq' : 'hnsw';
    return (built === 'hnsw' || built === 'ivf-pq') && size >= EXACT_SEARCH_BELOW / 2 ? built : 'flat';
  }

  private builtKind(): 'none' | IndexKind {
    return this.index?.kind ?? 'none';
  }

  /** An empty index of the kind the settings give an empty collection. */
  private emptyIndex(): CollectionIndex {
    return this.manifest.index.kind === 'hnsw'
      ? this.newHnsw()
      : new FlatIndex({ dimension: this.indexDimension, distanceType: 'cosine' });
  }

  private newHnsw(): HnswIndex {
    const { m, efConstruction, hnswStorage } = this.manifest.index;
    return new HnswIndex({
      dimension: this.indexDimension,
      distanceType: 'cosine',
      m,
      efConstruction,
      storage: hnswStorage,
      builder: this.options.hnswBuilder,
    });
  }

  private async buildIndex(ids: Uint32Array, raw: Float32Array): Promise<CollectionIndex> {
    const d = this.indexDimension;
    const vectors = this.toIndexSpace(raw);
    const settings = this.manifest.index;
    const kind = this.kindFor(ids.length);
    if (kind === 'flat') {
      const index = new FlatIndex({ dimension: d, distanceType: 'cosine' });
      index.add(vectors, ids);
      return index;
    }
    if (kind === 'hnsw') {
      const index = this.newHnsw();
      index.add(vectors, ids);
      return index;
    }
    const index = new IvfPqIndex({
      dimension: d,
      distanceType: 'cosine',
      numPartitions:
        settings.numPartitions === 'auto' ? undefined : Math.min(settings.numPartitions, ids.length),
      numSubVectors: settings.numSubVectors === 'auto' ? collectionSubVectors(d) : settings.numSubVectors,
      refineStorage: settings.refineStorage,
      assigner: this.options.assigner,
    });
    await index.train(vectors);
    index.add(vectors, ids);
    return index;
  }

  /**
   * Applies to the in-memory index what the database changed since the generation it reflects: from the
   * changes log, or id by id when the log does not reach back that far. Runs on one snapshot.
   */
  private catchUp(): boolean {
    const index = this.index!;
    return this.db.snapshot(() => {
      const generation = this.db.generation();
      if (this.stamp.data === generation && this.stamp.build > 0) return false;
      const changes =
        this.stamp.build > 0 && this.stamp.data <= generation
          ? this.db.changesSince(this.stamp.data, generation)
          : undefined;
      const gone = new Set<number>();
      const fresh = new Set<number>();
      if (changes) {
        for (const { id, op } of changes) {
          if (op === 1) fresh.add(id);
          else if (!fresh.delete(id)) gone.add(id); // added then removed since: nothing to do
        }
      } else {
        const stored = new Set(this.db.ids());
        for (const id of index.ids()) if (!stored.delete(id)) gone.add(id);
        for (const id of stored) fresh.add(id);
      }
      if (gone.size > 0) index.remove([...gone]);
      if (fresh.size > 0) {
        const { ids, vectors } = this.db.vectorsOf(
          [...fresh].sort((a, b) => a - b),
          this.manifest.dimension,
        );
        index.add(this.toIndexSpace(vectors), ids);
      }
      // A stamp that differs from the database is a change too, even with the same ids: it must not
      // stay on disk claiming another generation.
      const changed = gone.size > 0 || fresh.size > 0 || this.stamp.data !== generation;
      this.stamp = { ...this.stamp, data: generation, build: Math.max(this.stamp.build, 1) };
      return changed;
    });
  }

  /**
   * Writes the index under the collection's write lock, so saves of several processes queue. Inside the
   * lock the index is caught up with the database once more (so it never writes stale memory over a newer
   * file), and a file built later than this index (another process retrained) is continued from instead.
   * A new build bumps the generation, so every reader notices it.
   */
  private save(candidate: { index: CollectionIndex; stamp: IndexStamp }, newBuild: boolean): void {
    // A new build gets a generation of its own, committed before any file names it: a file never claims a
    // generation the database might roll back (a kill between the rename and the commit).
    const build = newBuild ? this.db.write((generation) => generation) : undefined;
    this.db.locked(() => {
      removeOrphanTempFiles(this.dir);
      this.index = candidate.index;
      this.stamp = candidate.stamp;
      const disk = peekStampSync(this.indexPath);
      if (build === undefined && disk && disk.build > this.stamp.build) {
        try {
          ({ index: this.index, stamp: this.stamp } = openIndexFile(
            new Uint8Array(readFileSync(this.indexPath)),
            this.indexPath,
          ));
        } catch {
          // A damaged newer file: ours replaces it.
        }
      }
      // Under the lock no other writer can commit: this generation is the one the file will reflect.
      this.catchUp();
      if (build !== undefined) this.stamp = { ...this.stamp, build };
      else if (disk && disk.build === this.stamp.build && disk.data === this.stamp.data) return; // there already
      writeAtomicSync(this.indexPath, stampedBytes(this.index, this.stamp), this.dir);
      this.db.pruneLog(this.stamp.data);
    });
  }

  /**
   * Follows changes other processes made (a server calls it on every request; it costs one SQLite read
   * when nothing changed). The update runs in the background and swaps in when ready: searches never wait
   * for it. Resolves when this update is done.
   */
  refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    if (this.db.generation() === this.stamp.data) return Promise.resolve();
    this.refreshing = (async () => {
      const disk = await peekStamp(this.indexPath);
      if (disk && disk.build > this.stamp.build) {
        // Another process built a new index (retrain): take it rather than patch the old one.
        try {
          const loaded = openIndexFile(new Uint8Array(await readFile(this.indexPath)), this.indexPath);
          this.index = loaded.index;
          this.stamp = loaded.stamp;
        } catch {
          // Being replaced as we read it, or damaged: patch ours instead.
        }
      }
      this.catchUp();
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** The k images most similar to `input` (a path, bytes or a stream), nearest first. */
  async search(input: ImageInput, options: SearchOptions & { crop?: CropBox } = {}): Promise<SearchHit[]> {
    checkSearchOptions(options);
    const embedder = await this.embedder();
    const query = await embedder.embed(input, { crop: options.crop });
    return this.searchVector(query, options);
  }

  /**
   * The k images nearest to a vector of the collection's model. Every hit is read from the database at
   * the end: an image removed since the index was last caught up is left out (and counted in
   * `staleHitsDropped`), never answered.
   */
  async searchVector(query: Float32Array, options: SearchOptions = {}): Promise<SearchHit[]> {
    const { k, nprobes, efSearch } = checkSearchOptions(options);
    if (!(query instanceof Float32Array) || query.length !== this.manifest.dimension) {
      throw new ArgumentError(
        'DIMENSION_MISMATCH',
        `Expected a query vector of ${this.manifest.dimension} values (the model of "${this.name}") but received ${describe(query)}`,
      );
    }
    const index = this.index;
    if (!index || index.size === 0) {
      throw new CollectionError(
        'EMPTY_COLLECTION',
        `Collection "${this.name}" has no images yet; add some with ris add ${this.name} <folder> ` +
          `(or run ris index again if indexing it was interrupted)`,
      );
    }
    // A few more than asked, so a hit left out below does not leave the answer short.
    const wanted = Math.min(k + Math.min(k, 8), index.size);
    const projected = this.toIndexSpace(query);
    // Options a kind has no use for are ignored by it (exact search ignores nprobes and efSearch); more
    // probes than partitions probe them all.
    const partitions = (index as { numPartitions?: number }).numPartitions;
    const probes = partitions ? Math.min(partitions, nprobes ?? DEFAULT_NPROBES) : undefined;
    const result = index.search(projected, wanted, {
      nprobes: probes,
      refineFactor: REFINE_FACTOR,
      efSearch,
    });
    const hits: SearchHit[] = [];
    for (let i = 0; i < result.ids.length && hits.length < k; i++) {
      const record = await this.get(result.ids[i]!);
      if (!record) {
        this.staleHitsDropped++;
        continue;
      }
      const distance = result.distances[i]!;
      hits.push({ ...record, distance, similarity: 1 - distance });
    }
    return hits;
  }

  /**
   * The index searches use now, and the query a model vector becomes for it (projected, when the
   * collection has a projection): what the Explore views draw. Read-only: changing it is the collection's job.
   */
  searchIndex(): { index: CollectionIndex; query(vector: Float32Array): Float32Array } | undefined {
    const index = this.index;
    return index && { index, query: (vector) => this.toIndexSpace(vector) };
  }

  /** The bytes of an image's file. */
  async readImage(record: ImageRecord): Promise<Buffer> {
    return readFile(record.absolutePath).catch((error: NodeJS.ErrnoException) => {
      throw imageGone(this, record, error);
    });
  }

  /**
   * A 256-pixel WebP of the image, cached in thumbnails/ under its id and content hash (so it can never
   * show another image's picture) and written atomically (two requests never see half a file).
   */
  async thumbnail(record: ImageRecord): Promise<Buffer> {
    const dir = join(this.dir, 'thumbnails');
    const file = join(dir, `${record.id}-${record.sha256.slice(0, 12)}.webp`);
    const cached = await readFile(file).catch(() => undefined);
    if (cached) return cached;
    const source = await this.readImage(record);
    let bytes: Buffer;
    try {
      bytes = await sharp(source)
        .rotate()
        .resize(256, 256, { fit: 'inside', withoutEnlargement: true })
        .webp({ quality: 80 })
        .toBuffer();
    } catch (error) {
      throw new ImageError(
        'CORRUPT_IMAGE',
        `The file of image ${record.id} (${record.absolutePath}) cannot be decoded any more (${(error as Error).message})`,
      );
    }
    await mkdir(dir, { recursive: true });
    const temp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
    await writeFile(temp, bytes);
    await rename(temp, file);
    return bytes;
  }

  async status(): Promise<IndexStatus> {
    const index = this.index;
    return {
      kind: this.builtKind(),
      indexed: index?.size ?? 0,
      trainedOn: this.stamp.trainedOn,
      generation: this.stamp.data,
      databaseGeneration: this.db.generation(),
      settings: this.manifest.index,
      built: index && index.kind !== 'flat' ? index.describe().parameters : {},
    };
  }

  async close(): Promise<void> {
    await this.refreshing?.catch(() => undefined);
    this.db.close();
    if (this.embedderPromise) await (await this.embedderPromise.catch(() => undefined))?.close();
  }
}

/** The collections of a folder on this machine (default risHome()): SQLite and index files. */
export function localStore(home = risHome()): CollectionStore {
  const withHome = (options: CollectionOptions = {}) => ({ ...options, home });
  return {
    location: home,
    list: () => Collection.list(home),
    exists: async (name) => Collection.exists(name, home),
    open: (name, options) => Collection.open(name, withHome(options)),
    create: (name, init, options) => Collection.create(name, init, withHome(options)),
    delete: (name) => Collection.delete(name, home),
    repair: (name, options) => Collection.repair(name, withHome(options)),
    close: async () => {},
  };
}

/** The projection a collection's database holds, checked against its manifest. */
function storedProjection(db: CollectionDb, manifest: CollectionManifest): LinearProjection | undefined {
  if (!manifest.projection) return undefined;
  const text = db.meta('projection');
  if (!text || createHash('sha256').update(text).digest('hex') !== manifest.projection.sha256) {
    throw broken(
      manifest.name,
      `its projection is missing from ${db.path} or differs from the one the manifest names`,
    );
  }
  return projectionFromJson(text, `the projection of collection "${manifest.name}"`);
}

function collectionSubVectors(d: number): number {
  for (let m = Math.max(1, Math.floor(d / 32)); m > 1; m--) if (d % m === 0) return m;
  return 1;
}

function exists(name: string): CollectionError {
  return new CollectionError(
    'COLLECTION_EXISTS',
    `Collection "${name}" already exists; add images to it with ris add, or delete it first`,
  );
}

function imageGone(collection: Collection, record: ImageRecord, error: NodeJS.ErrnoException): ImageError {
  if (error.code === 'ENOENT' || error.code === 'ENOTDIR')
    return new ImageError(
      'IMAGE_NOT_FOUND',
      `The file of image ${record.id} is gone: ${record.absolutePath} (collection "${collection.name}"); put it back, or remove the image with ris remove ${collection.name} ${record.id}`,
    );
  return new ImageError(
    'IMAGE_UNREADABLE',
    `The file of image ${record.id} cannot be read: ${record.absolutePath} (${error.code ?? error.message})`,
  );
}

/**
 * The manifest, checked against the copy in the database (the truth). A collection written by ris before
 * the copy existed gets one now (and its manifest.json rewritten in the current format).
 */
async function checkedManifest(db: CollectionDb, path: string, name: string): Promise<CollectionManifest> {
  const stored = db.meta('manifest');
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (stored !== undefined) {
      throw broken(name, `${path} cannot be read (${error.code ?? error.message})`);
    }
    throw broken(
      name,
      `${path} cannot be read (${error.code ?? error.message}) and the database has no copy of it`,
      `delete the collection (ris collections delete ${name}) and index its images again`,
    );
  });
  const manifest = parseManifest(text, path, name);
  if (stored === undefined) {
    const current = manifestText(manifest);
    db.locked(() => {
      db.setMeta('manifest', current);
      if (text !== current) writeAtomicSync(path, new TextEncoder().encode(current), join(path, '..'));
    });
    return manifest;
  }
  if (text !== stored) {
    const truth = parseManifest(stored, `the copy in ${db.path}`, name);
    const field = firstDifference(manifest, truth);
    throw broken(
      name,
      `${path} differs from the copy in ${DATABASE} (${field})`,
      `run ris collections repair ${name} to restore it from the database`,
    );
  }
  return manifest;
}

function firstDifference(a: CollectionManifest, b: CollectionManifest): string {
  for (const key of Object.keys(b) as (keyof CollectionManifest)[]) {
    const x = JSON.stringify(a[key]);
    const y = JSON.stringify(b[key]);
    if (x !== y) return `${key} is ${x} there, ${y} in the database`;
  }
  return 'its text was edited';
}

/**
 * For a collection written before ids were never reused: the next id its index file would have handed
 * out, so the migration keeps every id ever used out of reach.
 */
function legacyIdFloor(indexPath: string): number {
  let fd: number | undefined;
  try {
    fd = openSync(indexPath, 'r');
    const header = new Uint8Array(128);
    if (readSync(fd, header, 0, 128, 0) < 128) return 0;
    const nextId = new DataView(header.buffer).getUint32(52, true); // the header's nextId field
    return nextId > 0 && nextId < 2 ** 31 ? nextId - 1 : 0;
  } catch {
    return 0;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
