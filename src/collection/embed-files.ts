import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Embedder, EmbedProgress } from '../embed/embedder.ts';
import type { ImageInput } from '../embed/image.ts';
import type { RisError } from '../errors.ts';
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
}

/**
 * Reads and embeds image files batch by batch, as both stores add them: each file is read once (its bytes
 * give the checksum and the thumbnail, and the embedder decodes them), and one that cannot be read or
 * decoded is reported with why.
 */
export async function* embedFiles(
  embedder: Embedder,
  images: ImageToAdd[],
  onProgress?: (event: EmbedProgress) => void,
): AsyncGenerator<{ files: EmbeddedFile[]; failures: { path: string; error: RisError }[] }> {
  const bytesOf = new Map<number, Buffer>();
  const mtimeOf = new Map<number, number>();
  const inputs = async function* () {
    for (const [i, image] of images.entries()) {
      try {
        // The time first: a file written while it is read then looks changed to the next rescan.
        mtimeOf.set(i, (await stat(image.path)).mtimeMs);
        const bytes = await readFile(image.path);
        bytesOf.set(i, bytes);
        yield bytes as ImageInput;
      } catch {
        yield image.path; // the embedder reports it as missing or unreadable
      }
    }
  };
  const d = embedder.dimension;
  for await (const batch of embedder.embedMany(inputs(), { onProgress })) {
    const files = Array.from(batch.indices, (index, r): EmbeddedFile => {
      const bytes = bytesOf.get(index)!;
      return {
        image: images[index]!,
        bytes,
        width: batch.sizes[2 * r]!,
        height: batch.sizes[2 * r + 1]!,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        mtimeMs: mtimeOf.get(index)!,
        vector: batch.vectors.subarray(r * d, (r + 1) * d),
      };
    });
    const failures = batch.failures.map(({ index, error }) => ({ path: images[index]!.path, error }));
    for (const index of batch.indices) {
      bytesOf.delete(index);
      mtimeOf.delete(index);
    }
    for (const failure of batch.failures) {
      bytesOf.delete(failure.index);
      mtimeOf.delete(failure.index);
    }
    yield { files, failures };
  }
}
