import { basename } from 'node:path';
import { CollectionError, ImageError } from '../../errors.ts';
import { type ImageCollection, isLibraryCollection } from '../store.ts';
import { makeThumbnail } from '../thumbnail.ts';
import type { CollectionProgress } from '../types.ts';
import type { PgCollection } from './collection.ts';
import { addExclusions, UPLOADS_PATH } from './library.ts';
import { type EmbeddedImage, insertImages } from './rows.ts';
import type { PgStore } from './store.ts';

export type CopyProgress = { type: 'copy'; done: number; total: number } | CollectionProgress;

export interface CopyReport {
  collection: PgCollection;
  copied: number;
  /** Already in the target (an interrupted copy run again). */
  alreadyThere: number;
  /** Copied without a thumbnail (the file could not be read here); made on first use instead. */
  withoutThumbnail: number;
}

const COPY_BATCH = 64;

/**
 * Copies a collection (from any store) into a Postgres store: its manifest as it is, and every image with
 * its stored vector (nothing is embedded again), labels and sizes, and a thumbnail made from its file.
 * What a library keeps goes too: the files sent to it (their bytes into the database, as the target keeps
 * its own), the files of its folder a user removed, its files' times, whether it follows a folder.
 * Ids are new (the target's own sequence). One transaction per batch: run again after an interruption, it
 * continues; a target of the same name made with another model is refused.
 */
export async function copyCollection(
  source: ImageCollection,
  target: PgStore,
  options: { imagesUrl?: string; onProgress?: (event: CopyProgress) => void } = {},
): Promise<CopyReport> {
  const name = source.name;
  let collection: PgCollection;
  if (await target.exists(name)) {
    collection = await target.open(name);
    if (collection.manifest.modelId !== source.manifest.modelId) {
      await collection.close();
      throw new CollectionError(
        'COLLECTION_EXISTS',
        `Collection "${name}" already exists in ${target.location} with another model (${collection.manifest.modelId}); delete it there first, or copy into another database`,
      );
    }
    if (options.imagesUrl !== undefined) await target.setImagesUrl(name, options.imagesUrl);
  } else
    collection = await target.insert(source.manifest, {
      imagesUrl: options.imagesUrl,
      followsFolder: isLibraryCollection(source) ? source.followsFolder : true,
    });
  try {
    const { ids, vectors, paths: sourcePaths, labels } = await source.storedVectors();
    const library = isLibraryCollection(source) ? source : undefined;
    const mtimes = new Map((await library?.storedFiles())?.map((f) => [f.id, f.mtimeMs]));
    const sent = (path: string) => library?.isUpload({ path }) ?? false;
    const paths = sourcePaths.map((path) => (sent(path) ? UPLOADS_PATH + basename(path) : path));
    const d = source.manifest.dimension;
    const present = await collection.storedPaths(paths);
    const report: CopyReport = { collection, copied: 0, alreadyThere: 0, withoutThumbnail: 0 };
    for (let start = 0; start < ids.length; start += COPY_BATCH) {
      const batch: EmbeddedImage[] = [];
      for (let i = start; i < Math.min(ids.length, start + COPY_BATCH); i++) {
        if (present.has(paths[i]!)) {
          report.alreadyThere++;
          continue;
        }
        const record = await source.get(ids[i]!);
        if (!record) continue; // removed from the source meanwhile
        const bytes = await source.readImage(record).catch(() => undefined);
        // A file sent to the source is the database's to keep now: one it cannot read is not copied.
        if (!bytes && sent(record.path)) throw lostUpload(source, record.id);
        const thumbnail = bytes ? await makeThumbnail(bytes, `image ${record.id}`).catch(() => null) : null;
        if (!thumbnail) report.withoutThumbnail++;
        batch.push({
          path: paths[i]!,
          labels: labels[i]!,
          width: record.width,
          height: record.height,
          bytes: record.bytes,
          sha256: record.sha256,
          vector: vectors.subarray(i * d, (i + 1) * d),
          thumbnail,
          addedAt: record.addedAt,
          mtimeMs: mtimes.get(record.id) ?? null,
          upload: sent(record.path) ? bytes : undefined,
        });
      }
      if (batch.length > 0) {
        const stored = await target.db.transaction((client) => insertImages(client, collection.id, batch));
        report.copied += stored.ids.length;
        report.alreadyThere += stored.alreadyPresent;
      }
      options.onProgress?.({
        type: 'copy',
        done: Math.min(ids.length, start + COPY_BATCH),
        total: ids.length,
      });
    }
    if (library) await addExclusions(collection.library, await library.exclusions());
    await collection.ensureIndex({ onProgress: options.onProgress });
    return report;
  } catch (error) {
    await collection.close();
    throw error;
  }
}

function lostUpload(source: ImageCollection, id: number): ImageError {
  return new ImageError(
    'IMAGE_NOT_FOUND',
    `Image ${id} of "${source.name}" was sent to it, but its file is gone from ris's folder; remove it (ris remove ${source.name} ${id}) and copy again`,
  );
}
