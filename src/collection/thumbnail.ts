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
