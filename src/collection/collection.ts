import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Embedder } from '../embed/embedder.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { applyProjection, type LinearProjection, projectionToJson } from '../embed/projection.ts';
import { ArgumentError, CollectionError, describe } from '../errors.ts';
import { CollectionModel } from './collection-model.ts';
import { CollectionDb, type Exclusion, type StoredFile, type StoredImage } from './database.ts';
import { embedFiles, planeEntries } from './embed-files.ts';
import { exclusionsFor } from './exclusions.ts';
import { collectionDirectory, collectionExists, collectionNames, DATABASE, INDEX, MANIFEST } from './home.ts';
import { readIndexedFile, readMarkingChanges } from './image-file.ts';
import { HNSW_REVISION, legacyIdFloor, writeAtomicSync } from './index-file.ts';
import { indexSearchOptions } from './index-policy.ts';
import { LocalIndex } from './local-index.ts';
import {
  broken,
  COLLECTION_FORMAT_VERSION,
  type CollectionManifest,
  type IndexSettingsInput,
  indexSettingsSchema,
  manifestText,
} from './manifest.ts';
import { checkedManifest, storedProjection } from './manifest-check.ts';
import { pausePoint } from './pause.ts';
import { type PendingWork, retrainMarked } from './pending-work.ts';
import { PlaneCache } from './plane-cache.ts';
import { seededPage } from './shuffle.ts';
import {
  checkSearchOptions,
  type ImageCollection,
  type LibraryCollection,
  type SearchOptions,
} from './store.ts';
import { cachedThumbnail } from './thumbnail.ts';
import {
  type AddReport,
  type CollectionOptions,
  type CollectionProgress,
  emptyAddReport,
  type ImageRecord,
  type IndexStatus,
  type RemoveReport,
  type SearchHit,
} from './types.ts';
import {
  addUploadsTo,
  imageInWords,
  localUploadKeeper,
  STAGING_DIR,
  sweepUploads,
  UPLOADS_DIR,
  type Upload,
  type UploadKeeper,
  type UploadProgress,
  type UploadReport,
} from './uploads.ts';
import { type ImageToAdd, labelsFor } from './walk.ts';

/** Databases up to this size are checked page by page whenever a collection is opened. */
const CHECK_ON_OPEN_BYTES = 2 * 1024 ** 3;

/**
 * A named folder: metadata.db (SQLite in WAL mode, the one truth: every image with its labels, size,
 * sha256 and vector, a generation bumped by every change, a log of the changes), manifest.json (model and
 * index settings, a readable copy of the one in the database) and index.ris (derived: stamped with the
 * generation it reflects, brought up to date from the database by whoever opens the collection).
 *
 * Images are added and removed without retraining. Any number of processes may open a collection; writers
 * queue on SQLite's lock, index saves too, and every reader catches up with what the others wrote.
 */
/** The metadata.db key of the pending-work mark (JSON of PendingWork; empty when none). */
const PENDING_WORK = 'pending_work';

export class Collection implements LibraryCollection {
  /** Search results whose image was removed between the index lookup and reading its row (left out). */
  staleHitsDropped = 0;
  private readonly keeper: LocalIndex;
  private readonly model: CollectionModel;
  private idsCache: { generation: number; ids: Uint32Array } | undefined;

  private constructor(
    readonly manifest: CollectionManifest,
    readonly dir: string,
    private readonly db: CollectionDb,
    readonly options: CollectionOptions,
    /** The projection the index holds vectors in, when the collection has one (see the manifest). */
    private readonly projection: LinearProjection | undefined,
  ) {
    this.model = new CollectionModel(manifest, options.embedder);
    this.keeper = new LocalIndex(db, dir, {
      name: manifest.name,
      settings: manifest.index,
      modelDimension: manifest.dimension,
      context: {
        dimension: projection?.outputDimension ?? manifest.dimension,
        assigner: options.assigner,
        hnswBuilder: options.hnswBuilder,
      },
      toIndexSpace: (vectors) => this.toIndexSpace(vectors),
      persistsAll: options.persistIndex !== 'builds',
      onProgress: options.onProgress,
    });
  }

  get name(): string {
    return this.manifest.name;
  }

  /** Vectors of the model as the index holds them (projected, when the collection has a projection). */
  private toIndexSpace(vectors: Float32Array): Float32Array {
    return this.projection && vectors.length > 0 ? applyProjection(this.projection, vectors) : vectors;
  }

  /** Creates an empty collection for images under `root`, embedded with `model`. */
  static async create(
    name: string,
    init: { model: string; root?: string; index?: IndexSettingsInput; projection?: LinearProjection },
    options: CollectionOptions = {},
  ): Promise<Collection> {
    const dir = collectionDirectory(name, options.home);
    if (collectionExists(name, options.home)) throw exists(name);
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
      root: resolve(init.root ?? join(dir, UPLOADS_DIR)),
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
    const collection = new Collection(manifest, dir, db, options, projection);
    collection.model.adopt(embedder);
    collection.keeper.startEmpty();
    return collection;
  }

  /**
   * Opens a collection and brings its index up to date with the database: a missing or damaged index is
   * rebuilt from the stored vectors (reported through onProgress), changes made since it was written are
   * applied. A collection that cannot be used is COLLECTION_BROKEN, saying what is wrong and what to do.
   */
  static async open(name: string, options: CollectionOptions = {}): Promise<Collection> {
    const dir = collectionDirectory(name, options.home);
    if (!collectionExists(name, options.home)) {
      const known = await collectionNames(options.home);
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
      const collection = new Collection(manifest, dir, db, options, storedProjection(db, manifest));
      collection.sweepUploads();
      await collection.keeper.open();
      return collection;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** Removes the files a killed upload left behind (see sweepUploads), under the write lock. */
  private sweepUploads(): void {
    if (!existsSync(join(this.dir, UPLOADS_DIR)) && !existsSync(join(this.dir, STAGING_DIR))) return;
    this.db.locked(() => {
      const stored = this.db.paths();
      sweepUploads(this.dir, (file) => stored.has(this.storedPath(file)));
    });
  }

  /** The embedder of the collection's model, checked to be the very model its vectors came from. */
  embedder(): Promise<Embedder> {
    return this.model.embedder();
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
    const images: ImageRecord[] = [];
    for (const id of seededPage(ids, seed, page, count)) {
      const record = await this.get(id);
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
    // One lookup per image, not a read of every path: a watched change adds one image to 100,000.
    const todo = images.filter((image) => this.db.idByPath(this.storedPath(image.path)) === undefined);
    const report = emptyAddReport(images.length - todo.length);
    const embedding = embedFiles(embedder, todo, { onProgress: options.onProgress, planes: true });
    for await (const { files, failures } of embedding) {
      options.signal?.throwIfAborted();
      const rows = files.map(({ image, bytes, width, height, sha256, mtimeMs, vector }) => ({
        path: this.storedPath(image.path),
        labels: image.labels ?? labelsFor(image.path, this.manifest.root),
        width,
        height,
        bytes: bytes.length,
        sha256,
        mtimeMs,
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
        await PlaneCache.append(this.dir, planeEntries(files));
      }
      report.failures.push(...failures);
    }
    if (report.added > 0) await this.keeper.update(options);
    return report;
  }

  /**
   * Embeds and stores files sent to the collection (uploads, images fetched from URLs): each is kept
   * in uploads/ under a name made from its content (see uploadFileName), moved there and committed in one
   * step per batch, so a kill leaves either both or an orphan file the next open removes. Files whose
   * bytes the collection already holds are skipped; files that cannot be used are listed with why. Each
   * batch is searchable once committed.
   */
  async addUploads(
    uploads: Upload[],
    options: { onProgress?: (e: CollectionProgress | UploadProgress) => void; signal?: AbortSignal } = {},
  ): Promise<UploadReport> {
    return addUploadsTo(this.uploadKeeper(), () => this.embedder(), uploads, options);
  }

  /** How addUploads keeps files here: the database, where files go, and the index to update per batch. */
  private uploadKeeper(): UploadKeeper {
    return localUploadKeeper({
      db: this.db,
      uploadsDir: join(this.dir, UPLOADS_DIR),
      storedPath: (file) => this.storedPath(file),
      describe: (id) => {
        const path = this.db.get(id)?.path;
        return imageInWords(id, path === undefined ? undefined : { path, upload: this.isUpload({ path }) });
      },
      update: () => this.keeper.update(),
      dir: this.dir,
    });
  }

  /**
   * Removes images by id or by stored path (or a path that resolves to one), then updates the index. A
   * file of the collection's folder that is still there is kept out of rescans and folder watching until
   * it changes (`exclude`, default true; a rescan removing files that are gone or changed passes false);
   * a file ris kept for an upload is deleted.
   */
  async removeImages(
    targets: (number | string)[],
    options: { exclude?: boolean } = {},
  ): Promise<RemoveReport> {
    const notFound: (number | string)[] = [];
    const found: StoredImage[] = [];
    for (const target of targets) {
      const id =
        typeof target === 'number'
          ? target
          : (this.db.idByPath(target) ?? this.db.idByPath(this.storedPath(target)));
      const record = id === undefined ? undefined : this.db.get(id);
      if (record) found.push(record);
      else notFound.push(target);
    }
    const isUpload = (record: StoredImage) => this.isUpload(record);
    const exclusions = new Map<string, Exclusion>();
    if (options.exclude ?? true) {
      const removed = found.map((record) => ({ ...record, mtimeMs: null }));
      for (const exclusion of await exclusionsFor(removed, this)) exclusions.set(exclusion.path, exclusion);
    }
    let removed = 0;
    const gone: StoredImage[] = [];
    this.db.write((generation) => {
      for (const record of found) {
        if (this.db.remove(record.id, generation)) {
          removed++;
          gone.push(record);
          const exclusion = exclusions.get(record.path);
          if (exclusion) this.db.exclude(exclusion);
        } else notFound.push(record.id); // removed by another process since we looked
      }
    });
    pausePoint('remove:committed');
    // After the commit: a kill before this leaves an orphan upload, which the next open removes.
    await Promise.all(
      gone.filter(isUpload).map((record) => rm(this.absolutePath(record.path), { force: true })),
    );
    await this.keeper.update();
    return { removed, notFound };
  }

  /**
   * Gives images new paths (files renamed or moved inside the folder, with the same bytes): their ids,
   * vectors and index entries stay; labels follow the folder rule for the new path.
   */
  async moveImages(moves: { id: number; path: string; mtimeMs: number | null }[]): Promise<void> {
    if (moves.length === 0) return;
    this.db.write(() => {
      for (const move of moves) {
        const path = this.storedPath(move.path);
        this.db.move(move.id, path, labelsFor(this.absolutePath(path), this.manifest.root), move.mtimeMs);
      }
    });
  }

  get followsFolder(): boolean {
    return resolve(this.manifest.root) !== resolve(this.dir, UPLOADS_DIR);
  }

  isUpload(record: { path: string }): boolean {
    return this.absolutePath(record.path).startsWith(join(this.dir, UPLOADS_DIR) + sep);
  }

  /** Records the mtime of files found unchanged by their content (stored before mtimes were). */
  async touchFiles(files: { id: number; mtimeMs: number | null }[]): Promise<void> {
    if (files.length === 0) return;
    this.db.locked(() => {
      for (const file of files) this.db.touch(file.id, file.mtimeMs);
    });
  }

  /** Every image's stored path, size, sha256 and file mtime (or those under some paths), for a rescan. */
  async storedFiles(under?: string[]): Promise<StoredFile[]> {
    return this.db.files(under);
  }

  /** The folder's files a user removed, kept out of rescans until they change. */
  async exclusions(): Promise<Exclusion[]> {
    return this.db.exclusions();
  }

  /** Ends exclusions of files that changed since they were removed (a rescan then adds them). */
  async unexclude(paths: string[]): Promise<void> {
    if (paths.length === 0) return;
    this.db.write(() => {
      for (const path of paths) this.db.unexclude(path);
    });
  }

  /** Brings the index up to date with the database and writes it (see LocalIndex.update). */
  async updateIndex(options: { onProgress?: (e: CollectionProgress) => void } = {}): Promise<void> {
    await this.keeper.update(options);
  }

  /** Rebuilds the index from every stored vector, with new quantizers (after many additions). */
  async retrain(options: { onProgress?: (e: CollectionProgress) => void } = {}): Promise<void> {
    await retrainMarked(this, () => this.keeper.rebuild(options));
  }

  async pendingWork(): Promise<PendingWork | undefined> {
    const text = this.db.meta(PENDING_WORK);
    return text ? (JSON.parse(text) as PendingWork) : undefined;
  }

  async beginWork(work: PendingWork): Promise<void> {
    this.db.setMeta(PENDING_WORK, JSON.stringify(work));
  }

  async endWork(): Promise<void> {
    this.db.setMeta(PENDING_WORK, '');
  }

  /**
   * Follows changes other processes made (a server calls it on every request; it costs one SQLite read
   * when nothing changed). The update runs in the background and swaps in when ready: searches never wait
   * for it. Resolves when this update is done.
   */
  refresh(): Promise<void> {
    return this.keeper.refresh();
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
    const { k, nprobes, efSearch, minSimilarity } = checkSearchOptions(options);
    if (!(query instanceof Float32Array) || query.length !== this.manifest.dimension) {
      throw new ArgumentError(
        'DIMENSION_MISMATCH',
        `Expected a query vector of ${this.manifest.dimension} values (the model of "${this.name}") but received ${describe(query)}`,
      );
    }
    const index = this.keeper.index;
    if (!index || index.size === 0) {
      throw new CollectionError(
        'EMPTY_COLLECTION',
        `Collection "${this.name}" has no images yet; add some with ris add ${this.name} <folder> ` +
          `(or run ris index again if indexing it was interrupted)`,
      );
    }
    // A few more than asked, so a hit left out below does not leave the answer short.
    const wanted = Math.min(k + Math.min(k, 8), index.size);
    const result = index.search(
      this.toIndexSpace(query),
      wanted,
      indexSearchOptions(index, { nprobes, efSearch }),
    );
    const hits: SearchHit[] = [];
    for (let i = 0; i < result.ids.length && hits.length < k; i++) {
      const record = await this.get(result.ids[i]!);
      if (!record) {
        this.staleHitsDropped++;
        continue;
      }
      const distance = result.distances[i]!;
      if (1 - distance < minSimilarity) break; // nearest first: the rest are less similar still
      hits.push({ ...record, distance, similarity: 1 - distance });
    }
    return hits;
  }

  /**
   * The index searches use now, and the query a model vector becomes for it (projected, when the
   * collection has a projection): what the Explore views draw. Read-only: changing it is the collection's job.
   */
  searchIndex(): ReturnType<ImageCollection['searchIndex']> {
    const index = this.keeper.index;
    return index && { index, query: (vector) => this.toIndexSpace(vector) };
  }

  /** The bytes of an image's file, while it is the file that was indexed (readIndexedFile). */
  async readImage(record: ImageRecord): Promise<Buffer> {
    return readMarkingChanges(
      record,
      () => readIndexedFile(record.absolutePath, record, this.name, `ris rescan ${this.name}`),
      (files) => this.touchFiles(files),
    );
  }

  /** A 256-pixel WebP of the image, cached in thumbnails/ (see cachedThumbnail). */
  async thumbnail(record: ImageRecord): Promise<Buffer> {
    return cachedThumbnail(join(this.dir, 'thumbnails'), record, () => this.readImage(record));
  }

  async status(): Promise<IndexStatus> {
    const index = this.keeper.index;
    const stamp = this.keeper.stamp;
    return {
      kind: this.keeper.builtKind(),
      indexed: index?.size ?? 0,
      trainedOn: stamp.trainedOn,
      generation: stamp.data,
      databaseGeneration: this.db.generation(),
      settings: this.manifest.index,
      built: index && index.kind !== 'flat' ? index.describe().parameters : {},
      memoryBytes: index?.memoryUsage().total,
      ...(index?.kind === 'hnsw' && stamp.builder < HNSW_REVISION
        ? {
            outdated: `its HNSW graph was built by an older ris, whose graphs of folders indexed class by class find fewer of the true neighbours; run ris retrain ${this.name} to rebuild it`,
          }
        : {}),
    };
  }

  async close(): Promise<void> {
    await this.keeper.settled();
    this.db.close();
    await this.model.close();
  }
}

function exists(name: string): CollectionError {
  return new CollectionError(
    'COLLECTION_EXISTS',
    `Collection "${name}" already exists; add images to it with ris add, or delete it first`,
  );
}
