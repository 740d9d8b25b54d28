import type pg from 'pg';
import type { StoredImage } from '../database.ts';
import { vectorParam } from './vectors.ts';

/** One embedded image, ready to be stored with its vector and thumbnail. */
export interface EmbeddedImage extends Omit<StoredImage, 'id' | 'addedAt'> {
  vector: Float32Array;
  /** The WebP thumbnail; null to leave it to be made on first use. */
  thumbnail: Buffer | null;
  /** When it was first added (a copy keeps the original's); default now. */
  addedAt?: string;
  /** Its file's mtime when it was read (ms), for rescans; null or absent where there is no file of the user's. */
  mtimeMs?: number | null;
  /** The bytes of a file sent to the collection, kept in the database (see pgUploadKeeper). */
  upload?: Buffer;
}

/** Stores one image (row, vector and thumbnail in one statement); what it tells about duplicates. */
const INSERT_IMAGE = `
  WITH same AS (
    SELECT path FROM ris_images WHERE collection_id = $1 AND sha256 = $6 ORDER BY id LIMIT 1
  ), added AS (
    INSERT INTO ris_images
      (collection_id, path, labels, width, height, sha256, bytes, embedding, added_at, mtime_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::vector, coalesce($10::timestamptz, now()), $11)
    ON CONFLICT (collection_id, path) DO NOTHING
    RETURNING id
  ), thumbnail AS (
    INSERT INTO ris_thumbnails (image_id, webp) SELECT id, $9 FROM added WHERE $9::bytea IS NOT NULL
  ), upload AS (
    INSERT INTO ris_uploads (image_id, data) SELECT id, $12 FROM added WHERE $12::bytea IS NOT NULL
  ), back AS (
    -- A file added on purpose is no longer kept out of rescans.
    DELETE FROM ris_exclusions WHERE collection_id = $1 AND path = $2 AND EXISTS (SELECT FROM added)
  )
  SELECT (SELECT id FROM added) AS id, (SELECT path FROM same) AS same`;

/**
 * Stores embedded images in the caller's transaction, each row with its vector and thumbnail, and bumps
 * the collection's size and generation once. An image whose path is already stored is left as it is.
 */
export async function insertImages(
  client: pg.PoolClient,
  collectionId: number,
  images: EmbeddedImage[],
): Promise<{
  ids: number[];
  added: EmbeddedImage[];
  duplicates: { path: string; sameAs: string }[];
  alreadyPresent: number;
}> {
  const ids: number[] = [];
  const added: EmbeddedImage[] = [];
  const duplicates: { path: string; sameAs: string }[] = [];
  let alreadyPresent = 0;
  for (const image of images) {
    const { rows } = await client.query<{ id: number | null; same: string | null }>(INSERT_IMAGE, [
      collectionId,
      image.path,
      image.labels,
      image.width,
      image.height,
      image.sha256,
      image.bytes,
      vectorParam(image.vector),
      image.thumbnail,
      image.addedAt ?? null,
      image.mtimeMs ?? null,
      image.upload ?? null,
    ]);
    const row = rows[0]!;
    if (row.id === null) {
      alreadyPresent++;
      continue;
    }
    if (row.same !== null) duplicates.push({ path: image.path, sameAs: row.same });
    ids.push(Number(row.id));
    added.push(image);
  }
  if (ids.length > 0)
    await client.query(
      'UPDATE ris_collections SET image_count = image_count + $2, generation = generation + 1 WHERE id = $1',
      [collectionId, ids.length],
    );
  return { ids, added, duplicates, alreadyPresent };
}
