import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { ImageError } from '../errors.ts';

/**
 * The 256-pixel WebP every store shows. Made for every image a worker stores, so with WebP effort 2
 * instead of 4: 30 % less time, 2 % more bytes.
 */
export async function makeThumbnail(bytes: Buffer, what: string): Promise<Buffer> {
  try {
    return await sharp(bytes)
      .rotate()
      .resize(256, 256, { fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 80, effort: 2 })
      .toBuffer();
  } catch (error) {
    throw new ImageError(
      'CORRUPT_IMAGE',
      `The file of ${what} cannot be decoded any more (${(error as Error).message})`,
    );
  }
}

/**
 * A thumbnail cached in `dir` under the image's id and content hash (so it can never show another image's
 * picture), made from `read()` when absent and written atomically (two requests never see half a file).
 */
export async function cachedThumbnail(
  dir: string,
  record: { id: number; sha256: string },
  read: () => Promise<Buffer>,
): Promise<Buffer> {
  const file = join(dir, `${record.id}-${record.sha256.slice(0, 12)}.webp`);
  const cached = await readFile(file).catch(() => undefined);
  if (cached) return cached;
  const bytes = await makeThumbnail(await read(), `image ${record.id}`);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(temp, bytes);
  await rename(temp, file);
  return bytes;
}
