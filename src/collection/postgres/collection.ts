import { existsSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Embedder } from '../../embed/embedder.ts';
import type { CropBox, ImageInput } from '../../embed/image.ts';
import { ArgumentError, CollectionError, describe, ImageError, RisError } from '../../errors.ts';
import { CollectionModel } from '../collection-model.ts';
import type { Exclusion, StoredFile } from '../database.ts';
import { embedFiles } from '../embed-files.ts';
import { exclusionsFor } from '../exclusions.ts';
import { readMarkingChanges } from '../image-file.ts';
import { type CollectionManifest, EXACT_SEARCH_BELOW } from '../manifest.ts';
import { pausePoint } from '../pause.ts';
import { type PendingWork, retrainMarked } from '../pending-work.ts';
import { seededPage } from '../shuffle.ts';
import { checkSearchOptions, type LibraryCollection, type SearchOptions } from '../store.ts';
import { makeThumbnail } from '../thumbnail.ts';
import {
  type AddReport,
  type CollectionOptions,
  type CollectionProgress,
  emptyAddReport,
  type ImageRecord,
  type IndexStatus,
  type RemoveReport,
  type SearchHit,
} from '../types.ts';
import { addUploadsTo, type Upload, type UploadProgress, type UploadReport } from '../uploads.ts';
import { type ImageToAdd, labelsFor } from '../walk.ts';
import { databaseError, type PgDatabase } from './connection.ts';
import { ImageSource } from './images.ts';
import {
  deleteImages,
  exclusions,
  findImages,
  isUploadPath,
  moveImages,
  type PgLibraryTarget,
  pgUploadKeeper,
  readUpload,
  storedFiles,
  touchFiles,
  unexclude,
} from './library.ts';
import { type EmbeddedImage, insertImages } from './rows.ts';
import {
  buildLockKey,
  efSearchFor,
  exactSearchSql,
  HNSW_DEFAULTS,
  hnswIndexName,
  hnswIndexSql,
  hnswSearchSql,
  readVector,
  vectorParam,
} from './vectors.ts';

// Where the work queue and older callers import them from.
export { type EmbeddedImage, insertImages } from './rows.ts';

/** A collection's row in ris_collections, as read. */
export interface CollectionRow {
  id: number;
  name: string;
  manifest: unknown;
  images_url: string | null;
  settings: Partial<PgSettings>;
  image_count: number;
  generation: number;
  /** False for a collection made without a folder of the user's (see LibraryCollection.followsFolder). */
  follows_folder: boolean;
}

/** What a Postgres collection has beyond the manifest every store has. */
export interface PgSettings {
  /** HNSW build settings and the search breadth used unless a search asks for more. */
  m: number;
  efConstruction: number;
  efSearch: number;
}

const IMAGE_COLUMNS = 'id, path, labels, width, height, bytes, sha256, added_at';

interface ImageRow {
  id: number;
  path: string;
  labels: string[];
  width: number;
  height: number;
  bytes: number;
  sha256: string;
  added_at: Date;
}

/**
 * A collection in PostgreSQL with pgvector. Holds nothing but its manifest and its model: sizes, labels,
 * images and vectors are read from the database on every call, so whatever another process (a worker, a
 * server on another machine) committed is seen at once; `refresh()` has nothing to do.
 *
 * Search is exact (every vector of the collection compared, in the database) until the collection reaches
 * EXACT_SEARCH_BELOW images; then a pgvector HNSW index of its own is built (CONCURRENTLY: writers go on
 * meanwhile) and searches use it with `hnsw.ef_search` set for the search's k.
 */
export class PgCollection implements LibraryCollection {
  /** Hits are read with their rows in the same statement: a removed image is never answered. */
  readonly staleHitsDropped = 0;
  readonly source: ImageSource;
  readonly settings: PgSettings;
  private readonly model: CollectionModel;
  private idsCache: { generation: number; ids: Uint32Array } | undefined;
  readonly id: number;
  readonly followsFolder: boolean;
  private readonly rootHere: boolean;
  /** What the library's statements (./library.ts) work on. */
  readonly library: PgLibraryTarget;

  constructor(
    private readonly db: PgDatabase,
    row: Pick<CollectionRow, 'id' | 'images_url' | 'settings' | 'follows_folder'>,
    readonly manifest: CollectionManifest,
    readonly dir: string,
    private readonly options: CollectionOptions = {},
  ) {
    this.id = row.id;
    this.model = new CollectionModel(manifest, options.embedder);
    this.followsFolder = row.follows_folder;
    this.source = new ImageSource(manifest.root, row.images_url ?? undefined);
    this.settings = { ...HNSW_DEFAULTS, ...row.settings };
    this.rootHere = existsSync(manifest.root);
    this.library = { db, id: row.id, gone: () => this.gone() };
  }

  get name(): string {
    return this.manifest.name;
  }

  /** Uses an embedder already made for this collection's model (by whoever created it). */
  adoptEmbedder(embedder: Embedder): void {
    this.model.adopt(embedder);
  }

  /** The embedder of the collection's model, checked to be the very model its vectors came from. */
  embedder(): Promise<Embedder> {
    return this.model.embedder();
  }

  /** The collection's row now; COLLECTION_NOT_FOUND once another process deleted it. */
  async state(): Promise<{ count: number; generation: number; ann: boolean }> {
    const { rows } = await this.db.query<{ image_count: number; generation: number; ann: boolean | null }>(
      `SELECT image_count, generation,
         (SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($2)) AS ann
       FROM ris_collections WHERE id = $1`,
      [this.id, hnswIndexName(this.id)],
    );
    const row = rows[0];
    if (!row) throw this.gone();
    return { count: Number(row.image_count), generation: Number(row.generation), ann: row.ann === true };
  }

  async count(): Promise<number> {
    return (await this.state()).count;
  }

  async labels(): Promise<{ label: string; count: number }[]> {
    const { rows } = await this.db.query<{ label: string; count: number }>(
      `SELECT label, count(*)::int8 AS count FROM ris_images, unnest(labels) AS label
       WHERE collection_id = $1 GROUP BY label`,
      [this.id],
    );
    return rows
      .map((r) => ({ label: r.label, count: Number(r.count) }))
      .sort((a, b) => b.count - a.count || a.label.localeCompare(b.label));
  }

  async get(id: number): Promise<ImageRecord | undefined> {
    if (!Number.isSafeInteger(id) || id < 0) return undefined;
    const { rows } = await this.db.query<ImageRow>(
      `SELECT ${IMAGE_COLUMNS} FROM ris_images WHERE id = $1 AND collection_id = $2`,
      [id, this.id],
    );
    return rows[0] && this.record(rows[0]);
  }

  /** Every image id, ascending; read again only when the generation moved. */
  private async allIds(): Promise<Uint32Array> {
    const { generation } = await this.state();
    if (this.idsCache?.generation !== generation) {
      const { rows } = await this.db.query<{ id: number }>(
        'SELECT id FROM ris_images WHERE collection_id = $1 ORDER BY id',
        [this.id],
      );
      this.idsCache = { generation, ids: Uint32Array.from(rows, (r) => Number(r.id)) };
    }
    return this.idsCache.ids;
  }

  /** The same seeded order as the local store: a seed pages through the images without repeats. */
  async sample(seed: number, page: number, count: number): Promise<{ total: number; images: ImageRecord[] }> {
    const ids = await this.allIds();
    const wanted = seededPage(ids, seed, page, count);
    const { rows } = await this.db.query<ImageRow>(
      `SELECT ${IMAGE_COLUMNS} FROM ris_images WHERE collection_id = $1 AND id = ANY($2::int8[])`,
      [this.id, wanted],
    );
    const byId = new Map(rows.map((r) => [Number(r.id), r]));
    const images = wanted.flatMap((id) => {
      const row = byId.get(id);
      return row ? [this.record(row)] : [];
    });
    return { total: ids.length, images };
  }

  /** Every stored vector with its id, path and labels, read in pages from one snapshot. */
  async storedVectors(): Promise<{
    ids: Uint32Array;
    vectors: Float32Array;
    paths: string[];
    labels: string[][];
  }> {
    const d = this.manifest.dimension;
    return this.db.transaction(async (client) => {
      const { rows: counted } = await client.query<{ n: number }>(
        'SELECT count(*)::int8 AS n FROM ris_images WHERE collection_id = $1',
        [this.id],
      );
      const n = Number(counted[0]!.n);
      const ids = new Uint32Array(n);
      const vectors = new Float32Array(n * d);
      const paths: string[] = [];
      const labels: string[][] = [];
      let after = -1;
      while (paths.length < n) {
        const { rows } = await client.query<{ id: number; path: string; labels: string[]; v: Buffer }>(
          `SELECT id, path, labels, vector_send(embedding) AS v FROM ris_images
           WHERE collection_id = $1 AND id > $2 ORDER BY id LIMIT 2000`,
          [this.id, after],
        );
        if (rows.length === 0) break;
        for (const row of rows) {
          const i = paths.length;
          ids[i] = Number(row.id);
          readVector(row.v, vectors, i, d);
          paths.push(row.path);
          labels.push(row.labels);
          after = Number(row.id);
        }
      }
      return { ids, vectors, paths, labels };
    }, 'REPEATABLE READ');
  }

  /** Paths as stored: relative to the root for images under it, absolute otherwise (as the local store). */
  storedPath(file: string): string {
    const absolute = resolve(file);
    const rel = relative(this.manifest.root, absolute);
    return rel.startsWith('..') || isAbsolute(rel) ? absolute : rel.split(sep).join('/');
  }

  /**
   * Where an image is for this machine: its file under the root, or its URL when the root is not here (a
   * file sent to the collection is in the database, and keeps its path).
   */
  absolutePath(stored: string): string {
    if (!this.rootHere && !isUploadPath(stored)) {
      const url = this.source.urlOf(stored);
      if (url) return url;
    }
    return isAbsolute(stored) ? stored : join(this.manifest.root, stored);
  }

  /** The paths of `paths` already stored. */
  async storedPaths(paths: string[]): Promise<Set<string>> {
    const present = new Set<string>();
    for (let i = 0; i < paths.length; i += 10_000) {
      const { rows } = await this.db.query<{ path: string }>(
        'SELECT path FROM ris_images WHERE collection_id = $1 AND path = ANY($2::text[])',
        [this.id, paths.slice(i, i + 10_000)],
      );
      for (const row of rows) present.add(row.path);
    }
    return present;
  }

  /**
   * Embeds images on this machine and stores them, one transaction per batch (row, vector and thumbnail
   * of each image together), so an interrupted run keeps what it finished and the next run skips those.
   * Once the collection is large enough its HNSW index is built.
   */
  async addImages(
    images: ImageToAdd[],
    options: { onProgress?: (e: CollectionProgress) => void; signal?: AbortSignal } = {},
  ): Promise<AddReport> {
    const embedder = await this.embedder();
    const present = await this.storedPaths(images.map((image) => this.storedPath(image.path)));
    const todo = images.filter((image) => !present.has(this.storedPath(image.path)));
    const report = emptyAddReport(images.length - todo.length);
    for await (const { files, failures } of embedFiles(embedder, todo, { onProgress: options.onProgress })) {
      options.signal?.throwIfAborted();
      const rows: EmbeddedImage[] = [];
      const thumbnails = await Promise.all(
        files.map(({ image, bytes }) =>
          makeThumbnail(bytes, image.path).then(
            (webp) => webp,
            (error: RisError) => error,
          ),
        ),
      );
      for (const [r, { image, bytes, width, height, sha256, mtimeMs, vector }] of files.entries()) {
        const thumbnail = thumbnails[r]!;
        if (thumbnail instanceof RisError) {
          report.failures.push({ path: image.path, error: thumbnail });
          continue;
        }
        rows.push({
          path: this.storedPath(image.path),
          labels: image.labels ?? labelsFor(image.path, this.manifest.root),
          width,
          height,
          bytes: bytes.length,
          sha256,
          mtimeMs,
          vector,
          thumbnail,
        });
      }
      if (rows.length > 0) {
        const stored = await this.db.transaction((client) => insertImages(client, this.id, rows));
        report.ids.push(...stored.ids);
        report.added += stored.ids.length;
        report.alreadyPresent += stored.alreadyPresent; // another process added them since we looked
        report.duplicates.push(...stored.duplicates);
        pausePoint('add:committed');
      }
      report.failures.push(...failures);
    }
    if (report.added > 0) await this.ensureIndex(options);
    return report;
  }

  /**
   * Embeds and stores files sent to the collection (uploads, images fetched from URLs), their bytes kept
   * in the database with their rows so every server reads them (see pgUploadKeeper and addUploadsTo):
   * same bytes skipped, unusable files listed with why, each batch searchable once committed.
   */
  async addUploads(
    uploads: Upload[],
    options: { onProgress?: (e: CollectionProgress | UploadProgress) => void; signal?: AbortSignal } = {},
  ): Promise<UploadReport> {
    const keeper = pgUploadKeeper(this.library, () => this.ensureIndex(options));
    return addUploadsTo(keeper, () => this.embedder(), uploads, options);
  }

  /**
   * Removes images by id or by stored path (or a path that resolves to one), in one transaction, with
   * their thumbnails and, for files sent to the collection, the bytes ris kept. A file of the collection's
   * folder is kept out of rescans until it changes (`exclude`, default true; see exclusionsFor).
   */
  async removeImages(
    targets: (number | string)[],
    options: { exclude?: boolean } = {},
  ): Promise<RemoveReport> {
    const found = await findImages(
      this.library,
      targets.map((given) => ({
        given,
        paths: typeof given === 'number' ? [] : [given, this.storedPath(given)],
      })),
    );
    const rows = [...new Map([...found.values()].map((row) => [row.id, row])).values()];
    const exclusions = new Map<number, Exclusion>();
    if (options.exclude ?? true) {
      const byPath = new Map(rows.map((row) => [row.path, row.id]));
      for (const exclusion of await exclusionsFor(rows, this))
        exclusions.set(byPath.get(exclusion.path)!, exclusion);
    }
    const deleted =
      rows.length > 0
        ? await deleteImages(
            this.library,
            rows.map((row) => row.id),
            exclusions,
          )
        : new Set<number>();
    pausePoint('remove:committed');
    const notFound = targets.filter((given) => !deleted.has(found.get(given)?.id ?? -1));
    return { removed: deleted.size, notFound };
  }

  /** New paths for images whose files moved inside the folder (same bytes): ids and vectors stay. */
  async moveImages(moves: { id: number; path: string; mtimeMs: number | null }[]): Promise<void> {
    await moveImages(
      this.library,
      moves.map((move) => {
        const path = this.storedPath(move.path);
        return { ...move, path, labels: labelsFor(this.source.locate(path), this.manifest.root) };
      }),
    );
  }

  /** Records the mtime of files found unchanged by their content. */
  async touchFiles(files: { id: number; mtimeMs: number | null }[]): Promise<void> {
    await touchFiles(this.library, files);
  }

  /** Every image's stored path, size, sha256 and file mtime (or those under some paths), for a rescan. */
  storedFiles(under?: string[]): Promise<StoredFile[]> {
    return storedFiles(this.library, under);
  }

  /** The folder's files a user removed, kept out of rescans until they change. */
  exclusions(): Promise<Exclusion[]> {
    return exclusions(this.library);
  }

  /** Ends exclusions of files that changed since they were removed (a rescan then adds them). */
  async unexclude(paths: string[]): Promise<void> {
    await unexclude(this.library, paths);
  }

  /** Whether an image is a file sent to the collection (kept in the database, not a file of the user's). */
  isUpload(record: { path: string }): boolean {
    return isUploadPath(record.path);
  }

  /** The smallest size at which searches use the HNSW index ('flat' collections never do). */
  private annFrom(): number {
    const { kind } = this.manifest.index;
    if (kind === 'flat') return Number.POSITIVE_INFINITY;
    return kind === 'ivf-pq' || kind === 'ivf-rabitq' ? 256 : EXACT_SEARCH_BELOW;
  }

  /**
   * Builds the HNSW index once the collection has reached the size for it (a no-op when it exists, or
   * when another process is building it). Writers and searches go on while it is built.
   */
  async ensureIndex(options: { onProgress?: (e: CollectionProgress) => void } = {}): Promise<void> {
    const { count, ann } = await this.state();
    if (ann || count < this.annFrom()) return;
    await this.buildIndex(count, false, options);
  }

  /** Rebuilds the HNSW index from every stored vector (or drops it when the collection is small again). */
  async retrain(options: { onProgress?: (e: CollectionProgress) => void } = {}): Promise<void> {
    await retrainMarked(this, async () => {
      const { count } = await this.state();
      if (count < this.annFrom() / 2 || this.annFrom() === Number.POSITIVE_INFINITY) {
        await this.db.query(`DROP INDEX CONCURRENTLY IF EXISTS ${hnswIndexName(this.id)}`);
        return;
      }
      await this.buildIndex(count, true, options);
    });
  }

  /** The mark of a ris index or retrain started and not finished, kept in the collection's row. */
  async pendingWork(): Promise<PendingWork | undefined> {
    const { rows } = await this.db.query<{ pending_work: PendingWork | null }>(
      'SELECT pending_work FROM ris_collections WHERE id = $1',
      [this.id],
    );
    if (!rows[0]) throw this.gone();
    return rows[0].pending_work ?? undefined;
  }

  async beginWork(work: PendingWork): Promise<void> {
    await this.db.query('UPDATE ris_collections SET pending_work = $2 WHERE id = $1', [
      this.id,
      JSON.stringify(work),
    ]);
  }

  async endWork(): Promise<void> {
    await this.db.query('UPDATE ris_collections SET pending_work = NULL WHERE id = $1', [this.id]);
  }

  /**
   * (Re)builds the index on a connection of its own, under an advisory lock so that two processes never
   * build it at once (the second one finds it built, or leaves it to the first). An invalid index left
   * by a killed build is dropped first.
   */
  private async buildIndex(
    count: number,
    rebuild: boolean,
    options: { onProgress?: (e: CollectionProgress) => void },
  ): Promise<'built' | 'busy' | 'exists' | 'unsupported'> {
    const create = hnswIndexSql(this.id, this.manifest.dimension, this.settings);
    if (!create) return 'unsupported'; // past 4,000 dimensions: exact search only
    const name = hnswIndexName(this.id);
    const client = await this.db.connect();
    let failed = false;
    try {
      const { rows: locked } = await client.query<{ ok: boolean }>(
        'SELECT pg_try_advisory_lock($1, $2) AS ok',
        buildLockKey(this.id),
      );
      if (!locked[0]?.ok) return 'busy';
      try {
        const { rows } = await client.query<{ valid: boolean }>(
          'SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)',
          [name],
        );
        const valid = rows[0]?.valid === true;
        if (valid && !rebuild) return 'exists';
        (options.onProgress ?? this.options.onProgress)?.({ type: 'train', images: count });
        if (rows[0] && !valid) await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
        // HNSW builds fast while its graph fits in maintenance_work_mem (default 64 MB).
        await client.query(`SET maintenance_work_mem = '256MB'`);
        await client.query(valid ? `REINDEX INDEX CONCURRENTLY ${name}` : create);
        await client.query('RESET maintenance_work_mem');
        await client.query('ANALYZE ris_images'); // the planner's row counts, for the new partial index
        return 'built';
      } finally {
        await client.query('SELECT pg_advisory_unlock($1, $2)', buildLockKey(this.id));
      }
    } catch (error) {
      failed = true; // its session settings are unknown now: never hand it out again
      throw databaseError(error, this.db.location);
    } finally {
      client.release(failed);
    }
  }

  /** Nothing is cached but the model: every call reads the database. */
  async refresh(): Promise<void> {}

  async search(input: ImageInput, options: SearchOptions & { crop?: CropBox } = {}): Promise<SearchHit[]> {
    checkSearchOptions(options);
    const embedder = await this.embedder();
    const query = await embedder.embed(input, { crop: options.crop });
    return this.searchVector(query, options);
  }

  /**
   * The k nearest images in one transaction: the collection's state and `hnsw.ef_search` (set locally, for
   * this search only) in one statement, then the search, by the HNSW index once there is one or exactly.
   * `efSearch` sets ef_search (at least k); without it, the collection's setting, at least 2k and at least
   * `nprobes` (the local index's breadth).
   */
  async searchVector(query: Float32Array, options: SearchOptions = {}): Promise<SearchHit[]> {
    const { k, nprobes, efSearch, minSimilarity } = checkSearchOptions(options);
    const d = this.manifest.dimension;
    if (!(query instanceof Float32Array) || query.length !== d)
      throw new ArgumentError(
        'DIMENSION_MISMATCH',
        `Expected a query vector of ${d} values (the model of "${this.name}") but received ${describe(query)}`,
      );
    const ef =
      efSearch === undefined
        ? efSearchFor(k, this.settings.efSearch, nprobes)
        : efSearchFor(k, efSearch, 0, 1);
    const rows = await this.db.transaction(async (client) => {
      // With the index in use, sorting is switched off for this transaction: the planner then takes the
      // index scan that yields rows in distance order rather than a sort of every row, which stale
      // statistics on a new collection can make look cheaper.
      const { rows: state } = await client.query<{ image_count: number; ann: boolean }>(
        `SELECT image_count, ann, set_config('hnsw.ef_search', $3, true),
           set_config('enable_sort', CASE WHEN ann AND image_count >= $4 THEN 'off' ELSE 'on' END, true)
         FROM (SELECT image_count,
                 coalesce((SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($2)), false) AS ann
               FROM ris_collections WHERE id = $1) AS collection`,
        [this.id, hnswIndexName(this.id), String(ef), Math.min(Number.MAX_SAFE_INTEGER, this.annFrom() / 2)],
      );
      const row = state[0];
      if (!row) throw this.gone();
      const count = Number(row.image_count);
      if (count === 0)
        throw new CollectionError(
          'EMPTY_COLLECTION',
          `Collection "${this.name}" has no images yet; add some with ris add ${this.name} <folder> ` +
            `(or run ris index again, or ris worker, if indexing it was interrupted)`,
        );
      const approximate = row.ann && count >= this.annFrom() / 2;
      const hnsw = approximate ? hnswSearchSql(this.id, d, IMAGE_COLUMNS) : undefined;
      const { rows: hits } = hnsw
        ? await client.query<ImageRow & { distance: number }>(hnsw, [vectorParam(query), k])
        : await client.query<ImageRow & { distance: number }>(exactSearchSql(IMAGE_COLUMNS), [
            vectorParam(query),
            k,
            this.id,
          ]);
      return hits;
    });
    return rows.flatMap((row) => {
      const distance = Number(row.distance);
      return 1 - distance >= minSimilarity
        ? [{ ...this.record(row), distance, similarity: 1 - distance }]
        : [];
    });
  }

  /** The index lives in PostgreSQL: there is none in memory to draw. */
  searchIndex(): undefined {
    return undefined;
  }

  /** The bytes of an image: a file sent to the collection from the database, any other from its file. */
  async readImage(record: ImageRecord): Promise<Buffer> {
    if (!this.isUpload(record))
      return readMarkingChanges(
        record,
        () => this.source.readIndexed(record, this.name),
        (files) => this.touchFiles(files),
      );
    const bytes = await readUpload(this.library, record.id);
    if (bytes) return bytes;
    throw new ImageError(
      'IMAGE_NOT_FOUND',
      `Image ${record.id} of collection "${this.name}" was removed; search again for what is there now`,
    );
  }

  /** The WebP stored with the image; made from the file (and stored) when a copy left it out. */
  async thumbnail(record: ImageRecord): Promise<Buffer> {
    const { rows } = await this.db.query<{ webp: Buffer }>(
      'SELECT webp FROM ris_thumbnails WHERE image_id = $1',
      [record.id],
    );
    if (rows[0]) return rows[0].webp;
    const webp = await makeThumbnail(
      await this.readImage(record),
      `image ${record.id} (${record.absolutePath})`,
    );
    await this.db.query(
      `INSERT INTO ris_thumbnails (image_id, webp) SELECT id, $2 FROM ris_images WHERE id = $1
       ON CONFLICT (image_id) DO NOTHING`,
      [record.id, webp],
    );
    return webp;
  }

  async status(): Promise<IndexStatus> {
    const { count, generation, ann } = await this.state();
    const hnsw = ann && count >= this.annFrom() / 2;
    return {
      kind: hnsw ? 'hnsw' : 'flat',
      indexed: count,
      trainedOn: count,
      generation,
      databaseGeneration: generation,
      settings: this.manifest.index,
      built: hnsw
        ? { m: this.settings.m, efConstruction: this.settings.efConstruction, index: 'pgvector' }
        : {},
    };
  }

  async close(): Promise<void> {
    await this.model.close();
  }

  private record(row: ImageRow): ImageRecord {
    return {
      id: Number(row.id),
      path: row.path,
      labels: row.labels,
      width: row.width,
      height: row.height,
      bytes: Number(row.bytes),
      sha256: row.sha256,
      addedAt: row.added_at instanceof Date ? row.added_at.toISOString() : String(row.added_at),
      absolutePath: this.absolutePath(row.path),
    };
  }

  private gone(): CollectionError {
    return new CollectionError(
      'COLLECTION_NOT_FOUND',
      `Collection "${this.name}" was deleted from the database; ris collections list --store … shows what there is`,
    );
  }
}
