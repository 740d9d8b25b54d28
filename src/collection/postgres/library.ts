import type pg from 'pg';
import { type CollectionError, ImageError, RisError } from '../../errors.ts';
import type { Exclusion, StoredFile } from '../database.ts';
import { makeThumbnail } from '../thumbnail.ts';
import { imageInWords, KEPT_ALREADY, type KeptUpload, type UploadKeeper } from '../uploads.ts';
import type { PgDatabase } from './connection.ts';
import { type EmbeddedImage, insertImages } from './rows.ts';

/**
 * The library's side of a PostgreSQL collection (LibraryCollection): files sent to it kept in the database,
 * exclusions, moves and the file times rescans compare. Every server of the collection, on any machine,
 * sees the same.
 */

/**
 * Where a file sent to a PostgreSQL collection is, as its path: its bytes are in ris_uploads, under this
 * prefix and the name uploadFileName gives. An absolute path no file of a folder is stored under (those
 * are relative to the root), and that rescans, which follow the root, never touch.
 */
export const UPLOADS_PATH = '/ris:uploads/';

export function isUploadPath(path: string): boolean {
  return path.startsWith(UPLOADS_PATH);
}

/** A pool or one connection of it (inside a transaction). */
type Runner = {
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
};

/** What the library's statements need of a collection. */
export interface PgLibraryTarget {
  readonly db: PgDatabase;
  readonly id: number;
  /** COLLECTION_NOT_FOUND, for a collection another process deleted. */
  gone(): CollectionError;
}

/** Of `sha256s`, those some image of the collection holds, each with the first such image in words. */
async function holdersOf(
  client: Runner,
  collectionId: number,
  sha256s: string[],
): Promise<Map<string, string>> {
  const { rows } = await client.query<{ sha256: string; id: number; path: string }>(
    `SELECT DISTINCT ON (sha256) sha256, id, path FROM ris_images
     WHERE collection_id = $1 AND sha256 = ANY($2::text[]) ORDER BY sha256, id`,
    [collectionId, sha256s],
  );
  return new Map(
    rows.map((r) => [r.sha256, imageInWords(Number(r.id), { path: r.path, upload: isUploadPath(r.path) })]),
  );
}

/**
 * A PostgreSQL collection keeps sent files in the database: each batch's rows, vectors, thumbnails and
 * bytes in one transaction, which first locks the collection's row, so that two servers sending the same
 * bytes at once store them once (the second finds the first's).
 */
export function pgUploadKeeper(target: PgLibraryTarget, update: () => Promise<void>): UploadKeeper {
  return {
    holders: (sha256s) => holdersOf(target.db, target.id, sha256s),
    keep: async (batch) => {
      // Made before the transaction: it holds the collection's lock only to write.
      const thumbnails = await Promise.all(
        batch.map(({ upload, file }) =>
          makeThumbnail(file.bytes, upload.file).then(
            (webp) => webp,
            (error: unknown) =>
              error instanceof RisError ? error : new ImageError('CORRUPT_IMAGE', String(error)),
          ),
        ),
      );
      return target.db.transaction(async (client) => {
        const { rows } = await client.query('SELECT FROM ris_collections WHERE id = $1 FOR UPDATE', [
          target.id,
        ]);
        if (rows.length === 0) throw target.gone();
        const holders = await holdersOf(
          client,
          target.id,
          batch.map(({ file }) => file.sha256),
        );
        const results: KeptUpload[] = [];
        const images = new Map<number, EmbeddedImage>();
        for (const [i, { upload, keptName, file }] of batch.entries()) {
          const thumbnail = thumbnails[i]!;
          const holder = holders.get(file.sha256); // sent through another server meanwhile
          if (thumbnail instanceof RisError) results[i] = { error: thumbnail };
          else if (holder !== undefined) results[i] = { sameAs: holder };
          else
            images.set(i, {
              path: UPLOADS_PATH + keptName,
              labels: upload.labels ?? [],
              width: file.width,
              height: file.height,
              bytes: file.bytes.length,
              sha256: file.sha256,
              vector: file.vector,
              thumbnail,
              upload: file.bytes,
            });
        }
        const stored = await insertImages(client, target.id, [...images.values()]);
        const idOf = new Map(stored.added.map((image, j) => [image, stored.ids[j]!]));
        for (const [i, image] of images) {
          const id = idOf.get(image);
          results[i] = id === undefined ? KEPT_ALREADY : { id };
        }
        return results;
      });
    },
    update,
  };
}

/** The bytes of a file sent to the collection; undefined once its image is removed. */
export async function readUpload(target: PgLibraryTarget, imageId: number): Promise<Buffer | undefined> {
  const { rows } = await target.db.query<{ data: Buffer }>(
    `SELECT u.data FROM ris_uploads u JOIN ris_images i ON i.id = u.image_id
     WHERE u.image_id = $1 AND i.collection_id = $2`,
    [imageId, target.id],
  );
  return rows[0]?.data;
}

/** A removed image, as removal reads it. */
export interface RemovedRow {
  id: number;
  path: string;
  bytes: number;
  mtimeMs: number | null;
}

/** The images that ids or stored paths name (paths: as given, and as the collection would store them). */
export async function findImages(
  target: PgLibraryTarget,
  targets: { given: number | string; paths: string[] }[],
): Promise<Map<number | string, RemovedRow>> {
  const found = new Map<number | string, RemovedRow>();
  for (const { given, paths } of targets) {
    const { rows } =
      typeof given === 'number'
        ? await target.db.query<RemovedRow>(
            `SELECT id, path, bytes, mtime_ms AS "mtimeMs" FROM ris_images WHERE collection_id = $1 AND id = $2`,
            [target.id, Number.isSafeInteger(given) && given >= 0 ? given : -1],
          )
        : await target.db.query<RemovedRow>(
            `SELECT id, path, bytes, mtime_ms AS "mtimeMs" FROM ris_images
             WHERE collection_id = $1 AND path = ANY($2::text[]) ORDER BY id LIMIT 1`,
            [target.id, paths],
          );
    if (rows[0]) found.set(given, { ...rows[0], id: Number(rows[0].id), bytes: Number(rows[0].bytes) });
  }
  return found;
}

/**
 * Deletes images (their thumbnails and kept uploads go with them) and records `exclusions` of those
 * deleted, in one transaction; returns the ids it deleted (another process may have been first).
 */
export async function deleteImages(
  target: PgLibraryTarget,
  ids: number[],
  exclusions: Map<number, Exclusion>,
): Promise<Set<number>> {
  return target.db.transaction(async (client) => {
    const { rows } = await client.query<{ id: number }>(
      'DELETE FROM ris_images WHERE collection_id = $1 AND id = ANY($2::int8[]) RETURNING id',
      [target.id, ids],
    );
    const deleted = new Set(rows.map((r) => Number(r.id)));
    const kept = [...deleted].flatMap((id) => exclusions.get(id) ?? []);
    if (kept.length > 0) await excludeIn(client, target.id, kept);
    if (deleted.size > 0)
      await client.query(
        'UPDATE ris_collections SET image_count = image_count - $2, generation = generation + 1 WHERE id = $1',
        [target.id, deleted.size],
      );
    return deleted;
  });
}

/** Keeps files of the collection's folder out of rescans (a copy's exclusions), as deleteImages does. */
export async function addExclusions(target: PgLibraryTarget, kept: Exclusion[]): Promise<void> {
  if (kept.length > 0) await excludeIn(target.db, target.id, kept);
}

function excludeIn(client: Runner, collectionId: number, kept: Exclusion[]) {
  return client.query(
    `INSERT INTO ris_exclusions (collection_id, path, bytes, mtime_ms)
     SELECT $1, * FROM unnest($2::text[], $3::int8[], $4::float8[])
     ON CONFLICT (collection_id, path) DO UPDATE
       SET bytes = excluded.bytes, mtime_ms = excluded.mtime_ms, excluded_at = now()`,
    [collectionId, kept.map((e) => e.path), kept.map((e) => e.bytes), kept.map((e) => e.mtimeMs)],
  );
}

/** New paths and labels for moved files (same bytes): ids, vectors and thumbnails stay. */
export async function moveImages(
  target: PgLibraryTarget,
  moves: { id: number; path: string; labels: string[]; mtimeMs: number | null }[],
): Promise<void> {
  if (moves.length === 0) return;
  await target.db.transaction(async (client) => {
    for (const move of moves) {
      await client.query(
        'UPDATE ris_images SET path = $3, labels = $4, mtime_ms = $5 WHERE collection_id = $1 AND id = $2',
        [target.id, move.id, move.path, move.labels, move.mtimeMs],
      );
    }
    await unexcludeIn(
      client,
      target.id,
      moves.map((m) => m.path),
    );
    // Labels changed: servers that follow the generation tell their pages.
    await client.query('UPDATE ris_collections SET generation = generation + 1 WHERE id = $1', [target.id]);
  });
}

/** Records the mtimes of files found unchanged by their content. */
export async function touchFiles(
  target: PgLibraryTarget,
  files: { id: number; mtimeMs: number | null }[],
): Promise<void> {
  if (files.length === 0) return;
  await target.db.query(
    `UPDATE ris_images AS i SET mtime_ms = t.mtime_ms
     FROM unnest($2::int8[], $3::float8[]) AS t (id, mtime_ms)
     WHERE i.collection_id = $1 AND i.id = t.id`,
    [target.id, files.map((f) => f.id), files.map((f) => f.mtimeMs)],
  );
}

/** Every image's file facts, or (with `under`) those stored at or below some paths ('' for all). */
export async function storedFiles(target: PgLibraryTarget, under?: string[]): Promise<StoredFile[]> {
  const all = !under || under.includes('');
  const { rows } = await target.db.query<StoredFile>(
    `SELECT id, path, bytes, sha256, mtime_ms AS "mtimeMs" FROM ris_images WHERE collection_id = $1` +
      (all
        ? ''
        : ` AND (path = ANY($2::text[])
               OR EXISTS (SELECT 1 FROM unnest($2::text[]) AS u (p) WHERE starts_with(path, u.p || '/')))`),
    all ? [target.id] : [target.id, under],
  );
  return rows.map((r) => ({ ...r, id: Number(r.id), bytes: Number(r.bytes) }));
}

export async function exclusions(target: PgLibraryTarget): Promise<Exclusion[]> {
  const { rows } = await target.db.query<Exclusion>(
    'SELECT path, bytes, mtime_ms AS "mtimeMs" FROM ris_exclusions WHERE collection_id = $1',
    [target.id],
  );
  return rows.map((r) => ({ ...r, bytes: Number(r.bytes) }));
}

export async function unexclude(target: PgLibraryTarget, paths: string[]): Promise<void> {
  if (paths.length > 0) await unexcludeIn(target.db, target.id, paths);
}

function unexcludeIn(client: Runner, collectionId: number, paths: string[]) {
  return client.query('DELETE FROM ris_exclusions WHERE collection_id = $1 AND path = ANY($2::text[])', [
    collectionId,
    paths,
  ]);
}
