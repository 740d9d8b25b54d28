import { CollectionError } from '../../errors.ts';
import type { PgDatabase } from './connection.ts';

/**
 * The schema, as numbered migrations. Each runs once, in the transaction that records it in
 * ris_schema_migrations, under an advisory lock: processes starting together wait for the first one, then
 * find nothing left to do. A database whose schema is newer than this ris knows is refused, never touched.
 *
 * Tables (every name starts with ris_, so they can share a database with others):
 * - ris_collections: one row per collection: its manifest (model, model id, dimension, root, index
 *   settings), where its image files are read from, and its size and generation, kept by every write.
 * - ris_images: every image of every collection: path, labels, size, sha256, and its vector in a
 *   `vector` column (float32, as embedded). Ids come from one identity sequence and are never reused.
 *   Each collection has its own partial HNSW index over `embedding::vector(d)` (or `halfvec(d)` past
 *   2,000 dimensions, pgvector's limit for `vector` in HNSW), made once it is large enough.
 * - ris_thumbnails: a 256-pixel WebP per image, written with the image, so servers need no image files.
 * - ris_jobs: images waiting to be embedded (`ris index --enqueue`), claimed by workers with a lease.
 * - ris_uploads (2): the bytes of files sent to a collection (uploads, fetched URLs), one row per image,
 *   so that every server of the collection reads them; deleted with their image (and collection).
 * - ris_exclusions (2): files of a collection's folder a user removed, kept out of rescans until they
 *   change (path, size and mtime when removed).
 * Version 2 also gives images their file's mtime (null for images stored before: a rescan compares those
 * by content) and collections whether they follow a folder of the user's.
 */
export const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'collections, images with pgvector embeddings, thumbnails, work queue',
    sql: `
      CREATE TABLE ris_collections (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL UNIQUE,
        manifest jsonb NOT NULL,
        images_url text,
        settings jsonb NOT NULL DEFAULT '{}',
        image_count bigint NOT NULL DEFAULT 0,
        generation bigint NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE ris_images (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection_id bigint NOT NULL REFERENCES ris_collections (id) ON DELETE CASCADE,
        path text NOT NULL,
        labels text[] NOT NULL DEFAULT '{}',
        width integer NOT NULL,
        height integer NOT NULL,
        bytes bigint NOT NULL,
        sha256 text NOT NULL,
        added_at timestamptz NOT NULL DEFAULT now(),
        embedding vector NOT NULL,
        UNIQUE (collection_id, path)
      );
      CREATE INDEX ris_images_sha256 ON ris_images (collection_id, sha256);
      CREATE TABLE ris_thumbnails (
        image_id bigint PRIMARY KEY REFERENCES ris_images (id) ON DELETE CASCADE,
        webp bytea NOT NULL
      );
      CREATE TABLE ris_jobs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        collection_id bigint NOT NULL REFERENCES ris_collections (id) ON DELETE CASCADE,
        path text NOT NULL,
        labels jsonb NOT NULL DEFAULT '[]',
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
        attempts integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL DEFAULT 3,
        run_after timestamptz NOT NULL DEFAULT now(),
        locked_by text,
        locked_until timestamptz,
        error_code text,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (collection_id, path)
      );
      CREATE INDEX ris_jobs_pending ON ris_jobs (collection_id, id) WHERE state = 'pending';
    `,
  },
  {
    version: 2,
    name: 'the library: uploaded files, exclusions, file mtimes',
    sql: `
      ALTER TABLE ris_images ADD COLUMN mtime_ms double precision;
      ALTER TABLE ris_collections ADD COLUMN follows_folder boolean NOT NULL DEFAULT true;
      -- A ris index or retrain started and not finished (see PendingWork): shown until it ends well.
      ALTER TABLE ris_collections ADD COLUMN pending_work jsonb;
      CREATE TABLE ris_uploads (
        image_id bigint PRIMARY KEY REFERENCES ris_images (id) ON DELETE CASCADE,
        data bytea NOT NULL
      );
      -- Photos do not compress: stored out of line as they are, without pglz trying.
      ALTER TABLE ris_uploads ALTER COLUMN data SET STORAGE EXTERNAL;
      CREATE TABLE ris_exclusions (
        collection_id bigint NOT NULL REFERENCES ris_collections (id) ON DELETE CASCADE,
        path text NOT NULL,
        bytes bigint NOT NULL,
        mtime_ms double precision,
        excluded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (collection_id, path)
      );
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

/** Advisory lock keys: (RIS_LOCKS, 0) for migrations, (RIS_LOCKS, collection id) for index builds. */
export const RIS_LOCKS = 0x726973; // 'ris'

/** The schema version a database is at: 0 when ris never ran there. */
export async function schemaVersion(db: PgDatabase): Promise<number> {
  const { rows: table } = await db.query<{ present: boolean }>(
    `SELECT to_regclass('ris_schema_migrations') IS NOT NULL AS present`,
  );
  if (!table[0]?.present) return 0;
  const { rows } = await db.query<{ version: number }>(
    'SELECT coalesce(max(version), 0) AS version FROM ris_schema_migrations',
  );
  return Number(rows[0]?.version ?? 0);
}

/**
 * Brings the schema up to SCHEMA_VERSION: creates the pgvector extension if it is missing (which needs the
 * right to), then runs the migrations not yet applied. Returns the version it found, and the migrations
 * it ran (none when up to date, or when another process ran them while this one waited for the lock).
 */
export async function migrate(db: PgDatabase): Promise<{ from: number; to: number; applied: string[] }> {
  const from = await schemaVersion(db);
  if (from > SCHEMA_VERSION) throw tooNew(db, from);
  if (from === SCHEMA_VERSION) return { from, to: from, applied: [] };
  return db.transaction(async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1, 0)', [RIS_LOCKS]);
    const { rows: installed } = await client.query(`SELECT 1 FROM pg_extension WHERE extname = 'vector'`);
    if (installed.length === 0) {
      const { rows: available } = await client.query(
        `SELECT 1 FROM pg_available_extensions WHERE name = 'vector'`,
      );
      if (available.length === 0)
        throw new CollectionError(
          'DATABASE_UNUSABLE',
          `The database at ${db.location} has no pgvector extension to install; install pgvector on that server (https://github.com/pgvector/pgvector), or use a managed PostgreSQL that offers it`,
        );
      try {
        await client.query('CREATE EXTENSION IF NOT EXISTS vector');
      } catch (error) {
        throw new CollectionError(
          'DATABASE_UNUSABLE',
          `The database at ${db.location} lacks the vector extension and this user may not create it (${(error as Error).message}); ask its administrator to run CREATE EXTENSION vector in that database`,
          { cause: error },
        );
      }
    }
    await client.query(`CREATE TABLE IF NOT EXISTS ris_schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    // Under the lock: another process may have migrated while this one waited.
    const { rows } = await client.query<{ version: number }>(
      'SELECT coalesce(max(version), 0) AS version FROM ris_schema_migrations',
    );
    const current = Number(rows[0]?.version ?? 0);
    if (current > SCHEMA_VERSION) throw tooNew(db, current);
    const applied: string[] = [];
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO ris_schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      applied.push(`${migration.version}: ${migration.name}`);
    }
    return { from, to: SCHEMA_VERSION, applied };
  });
}

function tooNew(db: PgDatabase, version: number): CollectionError {
  return new CollectionError(
    'DATABASE_UNUSABLE',
    `The ris schema at ${db.location} is at version ${version}, newer than this ris knows (${SCHEMA_VERSION}); upgrade ris on this machine`,
  );
}
