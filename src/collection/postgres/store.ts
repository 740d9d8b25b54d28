import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { Embedder } from '../../embed/embedder.ts';
import type { LinearProjection } from '../../embed/projection.ts';
import { ArgumentError, CollectionError } from '../../errors.ts';
import { checkCollectionName, risHome } from '../home.ts';
import {
  COLLECTION_FORMAT_VERSION,
  type CollectionManifest,
  type IndexSettingsInput,
  indexSettingsSchema,
  parseManifest,
} from '../manifest.ts';
import type { CollectionStore } from '../store.ts';
import type { CollectionOptions } from '../types.ts';
import { sweepUploads } from '../uploads.ts';
import { type CollectionRow, PgCollection } from './collection.ts';
import { maskUrl, PgDatabase } from './connection.ts';
import { migrate, SCHEMA_VERSION, schemaVersion } from './schema.ts';
import { hnswIndexName } from './vectors.ts';

export { PgCollection } from './collection.ts';
export { maskUrl } from './connection.ts';

/** Collections in a PostgreSQL database with pgvector (`postgres://user:password@host/db`). */
export function postgresStore(url: string, options: { home?: string } = {}): PgStore {
  return new PgStore(url, options.home);
}

/** What creating a Postgres collection takes beyond what every store takes. */
export interface PgCreateInit {
  model: string;
  /** Where the images' files are; default a folder of the collection's own (uploads only). */
  root?: string;
  index?: IndexSettingsInput;
  /** Not supported here yet: a collection with a learned projection stays in a local store. */
  projection?: LinearProjection;
  /** An http(s) base URL under which the images' relative paths are found (for machines without the root). */
  imagesUrl?: string;
}

/**
 * The collections of one database. The schema is created or upgraded on first use (as `ris migrate`
 * does). A store holds a pool of connections, ended by close().
 */
export class PgStore implements CollectionStore {
  readonly location: string;
  readonly db: PgDatabase;
  private schema: Promise<void> | undefined;

  constructor(
    url: string,
    private readonly home = risHome(),
  ) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Expected a database URL such as postgres://user:password@host:5432/database but received ${maskUrl(url)}`,
      );
    }
    this.location = maskUrl(parsed.toString());
    this.db = new PgDatabase(url, this.location);
  }

  /** The schema brought up to date, once per process (a failure is tried again on the next call). */
  ready(): Promise<void> {
    this.schema ??= migrate(this.db).then(
      () => undefined,
      (error: unknown) => {
        this.schema = undefined;
        throw error;
      },
    );
    return this.schema;
  }

  /** `ris migrate`: creates or upgrades the schema; says what it did. */
  async migrate(): Promise<{ from: number; to: number; applied: string[] }> {
    const done = await migrate(this.db);
    this.schema = Promise.resolve();
    return done;
  }

  async schemaVersion(): Promise<{ version: number; latest: number }> {
    return { version: await schemaVersion(this.db), latest: SCHEMA_VERSION };
  }

  async list(): Promise<string[]> {
    await this.ready();
    const { rows } = await this.db.query<{ name: string }>('SELECT name FROM ris_collections ORDER BY name');
    return rows.map((r) => r.name);
  }

  async exists(name: string): Promise<boolean> {
    return (await this.row(name)) !== undefined;
  }

  async row(name: string): Promise<CollectionRow | undefined> {
    await this.ready();
    const { rows } = await this.db.query<CollectionRow>(
      `SELECT id, name, manifest, images_url, settings, image_count, generation, follows_folder
       FROM ris_collections WHERE name = $1`,
      [name],
    );
    return rows[0] && { ...rows[0], id: Number(rows[0].id) };
  }

  async open(name: string, options: CollectionOptions = {}): Promise<PgCollection> {
    checkCollectionName(name); // the same names as everywhere
    const row = await this.row(name);
    if (!row) {
      const known = await this.list();
      throw new CollectionError(
        'COLLECTION_NOT_FOUND',
        `No collection "${name}" in ${this.location}${known.length ? ` (there are: ${known.join(', ')})` : ''}; create it with ris index <folder> --collection ${name} --store …`,
      );
    }
    const manifest = parseManifest(
      JSON.stringify(row.manifest),
      `the manifest of "${name}" in ${this.location}`,
      name,
    );
    // Files staged by requests that died (kill -9) on this machine.
    sweepUploads(this.dirOf(name), () => true);
    return new PgCollection(this.db, row, manifest, this.dirOf(name), options);
  }

  /**
   * Creates an empty collection for images under `root`, embedded with `model`. Without a root, its
   * images are what is sent to it (kept in the database) or added by path: it follows no folder.
   */
  async create(name: string, init: PgCreateInit, options: CollectionOptions = {}): Promise<PgCollection> {
    checkCollectionName(name);
    if (init.projection) throw projectionRefused(name);
    if (await this.exists(name)) throw exists(name);
    const settings = indexSettingsSchema.parse(init.index ?? {});
    const model = init.model.endsWith('.onnx') ? resolve(init.model) : init.model;
    const embedder = await Embedder.create({ model, ...options.embedder });
    const manifest: CollectionManifest = {
      formatVersion: COLLECTION_FORMAT_VERSION,
      name,
      model,
      modelId: embedder.modelId,
      dimension: embedder.dimension,
      root: resolve(init.root ?? join(this.dirOf(name), 'uploads')),
      index: settings,
      projection: null,
      createdAt: new Date().toISOString(),
    };
    try {
      const collection = await this.insert(
        manifest,
        { imagesUrl: init.imagesUrl, followsFolder: init.root !== undefined },
        options,
      );
      collection.adoptEmbedder(embedder);
      return collection;
    } catch (error) {
      await embedder.close();
      throw error;
    }
  }

  /**
   * A new collection from a manifest as it is (a copy from another store: same model, same vectors), with
   * an images URL and whether it follows its root folder (default true).
   */
  async insert(
    manifest: CollectionManifest,
    place: { imagesUrl?: string; followsFolder?: boolean } = {},
    options: CollectionOptions = {},
  ): Promise<PgCollection> {
    const { imagesUrl, followsFolder = true } = place;
    await this.ready();
    if (manifest.projection) throw projectionRefused(manifest.name);
    if (imagesUrl !== undefined) checkImagesUrl(imagesUrl);
    const { rows } = await this.db.query<{ id: number }>(
      `INSERT INTO ris_collections (name, manifest, images_url, follows_folder) VALUES ($1, $2, $3, $4)
       ON CONFLICT (name) DO NOTHING RETURNING id`,
      [manifest.name, JSON.stringify(manifest), imagesUrl ?? null, followsFolder],
    );
    if (!rows[0]) throw exists(manifest.name); // another process created it meanwhile
    return new PgCollection(
      this.db,
      { id: Number(rows[0].id), images_url: imagesUrl ?? null, settings: {}, follows_folder: followsFolder },
      manifest,
      this.dirOf(manifest.name),
      options,
    );
  }

  /** Sets (or, with undefined, removes) the http(s) base URL a collection's images are also read from. */
  async setImagesUrl(name: string, url: string | undefined): Promise<void> {
    if (url !== undefined) checkImagesUrl(url);
    const { rowCount } = await this.db.query('UPDATE ris_collections SET images_url = $2 WHERE name = $1', [
      name,
      url ?? null,
    ]);
    if (!rowCount) throw notFound(name);
  }

  /**
   * Deletes a collection: its index, then its row (its images, thumbnails, the files sent to it, its
   * exclusions and queue go with it), then what this machine derived from it (its folder under ris's
   * home: staged uploads, experiment reports). The folder its images came from is never touched.
   */
  async delete(name: string): Promise<void> {
    const row = await this.row(name);
    if (!row) throw notFound(name);
    await this.db.query(`DROP INDEX CONCURRENTLY IF EXISTS ${hnswIndexName(row.id)}`);
    await this.db.query('DELETE FROM ris_collections WHERE id = $1', [row.id]);
    const own = this.dirOf(name);
    const root = resolve(String((row.manifest as { root?: unknown } | null)?.root ?? ''));
    // A root a user chose inside that folder (odd, but theirs) keeps the folder where it is.
    const rel = relative(own, root);
    if (root === join(own, 'uploads') || rel.startsWith('..') || isAbsolute(rel))
      await rm(own, { recursive: true, force: true });
  }

  /**
   * Repairs what can drift: the stored size recounted from the rows, an index left invalid by a killed
   * build rebuilt, claims of dead workers released. Returns what it did.
   */
  async repair(name: string, options: CollectionOptions = {}): Promise<string[]> {
    const collection = await this.open(name, options);
    const done: string[] = [];
    try {
      const { rows } = await this.db.query<{ was: number; now: number }>(
        `WITH counted AS (SELECT count(*) AS n FROM ris_images WHERE collection_id = $1),
              old AS (SELECT image_count AS was FROM ris_collections WHERE id = $1)
         UPDATE ris_collections SET image_count = counted.n, generation = generation + 1
         FROM counted, old WHERE id = $1 AND image_count <> counted.n
         RETURNING old.was, counted.n AS now`,
        [collection.id],
      );
      if (rows[0]) done.push(`recounted its images: ${rows[0].now} (the stored count said ${rows[0].was})`);
      const { rows: invalid } = await this.db.query<{ valid: boolean }>(
        'SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass($1)',
        [hnswIndexName(collection.id)],
      );
      if (invalid[0] && !invalid[0].valid) {
        await this.db.query(`DROP INDEX CONCURRENTLY IF EXISTS ${hnswIndexName(collection.id)}`);
        done.push('dropped the HNSW index an interrupted build left invalid');
      }
      const before = (await collection.status()).kind;
      await collection.ensureIndex(options);
      const after = (await collection.status()).kind;
      if (before !== after) done.push(`built its HNSW index over ${await collection.count()} images`);
      const { rowCount } = await this.db.query(
        `UPDATE ris_jobs SET locked_by = NULL, locked_until = NULL
         WHERE collection_id = $1 AND state = 'pending' AND locked_until < now()`,
        [collection.id],
      );
      if (rowCount) done.push(`released ${rowCount} queued images claimed by workers that stopped`);
      if (done.length === 0) done.push(`nothing to repair: ${await collection.count()} images, consistent`);
      return done;
    } finally {
      await collection.close();
    }
  }

  async close(): Promise<void> {
    await this.db.end();
  }

  /** A folder on this machine for what is derived from a collection (experiment reports). */
  private dirOf(name: string): string {
    const database = createHash('sha256').update(this.location).digest('hex').slice(0, 8);
    return join(this.home, 'postgres', database, name);
  }
}

function checkImagesUrl(url: string): void {
  if (!/^https?:\/\/[^/]+/i.test(url))
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected the images URL to be an http(s) address such as https://images.example.com/photos/ but received ${JSON.stringify(url)}`,
    );
}

function projectionRefused(name: string): ArgumentError {
  return new ArgumentError(
    'INVALID_ARGUMENT',
    `Collection "${name}" has a learned projection, which a Postgres collection cannot hold yet (its HNSW index is over the model's own vectors); keep it in a local store, or make one without the projection`,
  );
}

function exists(name: string): CollectionError {
  return new CollectionError(
    'COLLECTION_EXISTS',
    `Collection "${name}" already exists; add images to it with ris add, or delete it first`,
  );
}

function notFound(name: string): CollectionError {
  return new CollectionError(
    'COLLECTION_NOT_FOUND',
    `No collection "${name}"; ris collections list shows them`,
  );
}
