import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Embedder, EmbedProgress } from '../embed/embedder.ts';
import type { ImageInput } from '../embed/image.ts';
import type { RisError } from '../errors.ts';
import { type ImagePlanes, imagePlanes } from './planes.ts';
import type { ImageToAdd } from './walk.ts';

/** An image file embedded for adding, with what a store keeps about its file. */
export interface EmbeddedFile {
  image: ImageToAdd;
  /** The file's bytes as read once (for the thumbnail too). */
  bytes: Buffer;
  width: number;
  height: number;
  sha256: string;
  /** The file's modification time when it was read (ms), for rescans to compare. */
  mtimeMs: number;
  vector: Float32Array;
  /** What the duplicates' second look compares (when asked for, and the file could be decoded for it). */
  planes?: ImagePlanes;
}

export interface EmbedFilesOptions {
  onProgress?: (event: EmbedProgress) => void;
  /**
   * Also make each image's planes for the duplicates' second look, from the bytes read for the embedder
   * (decoded again, at 64 × 64, beside the model's inference: ~2 ms of CPU an image). Default false.
   */
  planes?: boolean;
}

/**
 * Reads and embeds image files batch by batch, as both stores add them: each file is read once (its bytes
 * give the checksum and the thumbnail, and the embedder decodes them), and one that cannot be read or
 * decoded is reported with why.
 */
export async function* embedFiles(
  embedder: Embedder,
  images: ImageToAdd[],
  options: EmbedFilesOptions = {},
): AsyncGenerator<{ files: EmbeddedFile[]; failures: { path: string; error: RisError }[] }> {
  const bytesOf = new Map<number, Buffer>();
  const mtimeOf = new Map<number, number>();
  const planesOf = new Map<number, Promise<ImagePlanes | undefined>>();
  const inputs = async function* () {
    for (const [i, image] of images.entries()) {
      try {
        // The time first: a file written while it is read then looks changed to the next rescan.
        mtimeOf.set(i, (await stat(image.path)).mtimeMs);
        const bytes = await readFile(image.path);
        bytesOf.set(i, bytes);
        // Sizes as displayed come with the embedder's answer; a file it refuses has its planes dropped.
        if (options.planes)
          planesOf.set(
            i,
            imagePlanes(bytes, 0, 0).catch(() => undefined),
          );
        yield bytes as ImageInput;
      } catch {
        yield image.path; // the embedder reports it as missing or unreadable
      }
    }
  };
  const d = embedder.dimension;
  for await (const batch of embedder.embedMany(inputs(), { onProgress: options.onProgress })) {
    const planes = await Promise.all(Array.from(batch.indices, (index) => planesOf.get(index)));
    const files = Array.from(batch.indices, (index, r): EmbeddedFile => {
      const bytes = bytesOf.get(index)!;
      const width = batch.sizes[2 * r]!;
      const height = batch.sizes[2 * r + 1]!;
      const made = planes[r];
      return {
        image: images[index]!,
        bytes,
        width,
        height,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        mtimeMs: mtimeOf.get(index)!,
        vector: batch.vectors.subarray(r * d, (r + 1) * d),
        ...(made && { planes: { ...made, width, height } }),
      };
    });
    const failures = batch.failures.map(({ index, error }) => ({ path: images[index]!.path, error }));
    for (const index of batch.indices) {
      bytesOf.delete(index);
      mtimeOf.delete(index);
      planesOf.delete(index);
    }
    for (const failure of batch.failures) {
      bytesOf.delete(failure.index);
      mtimeOf.delete(failure.index);
      planesOf.delete(failure.index);
    }
    yield { files, failures };
  }
}

/** The planes made for `files` (those that have them), as PlaneCache.append takes them. */
export function planeEntries(files: EmbeddedFile[]): [sha256: string, planes: ImagePlanes][] {
  return files.flatMap((file) => (file.planes ? [[file.sha256, file.planes] as [string, ImagePlanes]] : []));
}
