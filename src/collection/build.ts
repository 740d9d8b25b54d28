import { existsSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { DEFAULT_MODEL } from '../embed/config.ts';
import type { DownloadProgress } from '../embed/download.ts';
import type { LinearProjection } from '../embed/projection.ts';
import { ArgumentError, CollectionError, ImageError } from '../errors.ts';
import {
  checkDatasetCopy,
  type DatasetName,
  type DatasetSource,
  datasetImages,
  downloadDataset,
  isDatasetName,
} from './datasets.ts';
import { checkCollectionName } from './home.ts';
import { localStore } from './local-store.ts';
import type { IndexSettingsInput } from './manifest.ts';
import { newPendingWork } from './pending-work.ts';
import type { CollectionStore, ImageCollection } from './store.ts';
import type { AddReport, CollectionOptions, CollectionProgress } from './types.ts';
import { type ImageToAdd, labelsFor, walkImages } from './walk.ts';

export type BuildProgress =
  | CollectionProgress
  | DownloadProgress
  | { type: 'extract'; dataset: DatasetName }
  | { type: 'scan'; images: number };

export interface IndexOptions extends Omit<CollectionOptions, 'onProgress'> {
  /** Where the collection is kept. Default: the folder `home` (risHome()). */
  store?: CollectionStore;
  /** Model for a new collection. Default 'resnet50'. An existing collection keeps its own. */
  model?: string;
  /** How a new collection's index is built (kind, partitions, sub-vectors); see IndexSettings. */
  index?: IndexSettingsInput;
  /** For a new collection: a projection learned from labels (loadProjection), applied before indexing. */
  projection?: LinearProjection;
  /** For a dataset: an existing copy of its images, instead of downloading. */
  from?: string;
  /** For a dataset: where datasets are downloaded. */
  datasetsDir?: string;
  /** For a dataset: another source than the official one (a mirror). */
  datasetSource?: DatasetSource;
  /** Stops the work between batches (what is committed stays; running again resumes). */
  signal?: AbortSignal;
  onProgress?: (event: BuildProgress) => void;
}

/**
 * The images of a folder, or of a dataset. A dataset that is not there yet is downloaded (unless `from`
 * points at a copy, which is checked); one that is there is used as it is.
 */
export async function resolveSource(
  source: string,
  options: IndexOptions = {},
): Promise<{ root: string; images: ImageToAdd[] }> {
  if (isDatasetName(source) && !existsSync(source)) {
    let root: string;
    if (options.from) {
      root = resolve(options.from);
      await checkDatasetCopy(source, root);
    } else
      root = await downloadDataset(source, {
        dir: options.datasetsDir,
        source: options.datasetSource,
        signal: options.signal,
        onProgress: options.onProgress,
      });
    return { root, images: await datasetImages(source, root) };
  }
  if (!existsSync(source) || !statSync(source).isDirectory()) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `${source} is neither a folder nor a dataset name; give a folder of images, caltech101 or voc2012`,
    );
  }
  return { root: resolve(source), images: await walkImages(source) };
}

/**
 * The images behind files and folders given to `add`: folders are walked, and every image is labelled by
 * the one rule `index` uses — its first folder below the collection's root, or, for a folder outside the
 * root, below that folder. `labels`, when given, replaces those for every image.
 */
export async function imagesToAdd(paths: string[], root: string, labels?: string[]): Promise<ImageToAdd[]> {
  const images: ImageToAdd[] = [];
  // A mistyped path is refused before anything is added, not reported afterwards as an unreadable image.
  const missing = paths.filter((path) => !existsSync(path));
  if (missing.length > 0) {
    throw new ImageError(
      'IMAGE_NOT_FOUND',
      `There is no file or folder ${missing.map((p) => JSON.stringify(p)).join(', ')}; check the path (nothing was added)`,
    );
  }
  for (const path of paths) {
    const inside =
      !relative(root, resolve(path)).startsWith('..') && !isAbsolute(relative(root, resolve(path)));
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
      const found = await walkImages(path, inside ? root : path);
      if (found.length === 0) {
        throw new CollectionError(
          'NO_IMAGES',
          `No images (jpg, jpeg, png, webp, gif, tiff, avif) found under ${path}; nothing was added`,
        );
      }
      images.push(...found);
    } else images.push({ path, labels: labelsFor(path, root) });
  }
  return labels ? images.map((image) => ({ ...image, labels })) : images;
}

/**
 * Creates (or resumes) a collection from a folder or dataset: embeds every image not yet in it, one
 * committed batch at a time, and brings the index up to date. Run again after an interruption, it
 * continues where it stopped.
 */
export async function indexCollection(
  name: string,
  source: string,
  options: IndexOptions = {},
): Promise<{ collection: ImageCollection; report: AddReport; total: number }> {
  checkCollectionName(name); // a bad name is refused before any work
  const store = options.store ?? localStore(options.home);
  const existed = await store.exists(name);
  const { root, images } = await resolveSource(source, options);
  options.onProgress?.({ type: 'scan', images: images.length });
  if (images.length === 0) {
    throw new CollectionError(
      'NO_IMAGES',
      `No images (jpg, jpeg, png, webp, gif, tiff, avif) found under ${root}; point ris at a folder of images`,
    );
  }
  const collection = existed
    ? await store.open(name, options)
    : await store.create(
        name,
        { model: options.model ?? DEFAULT_MODEL, root, index: options.index, projection: options.projection },
        options,
      );
  if (existed && resolve(collection.manifest.root) !== resolve(root) && (await collection.count()) > 0) {
    await collection.close();
    throw new CollectionError(
      'COLLECTION_EXISTS',
      `Collection "${name}" was indexed from ${collection.manifest.root}, and ris index resumes it only from there; ` +
        `add ${root} to it with ris add ${name} ${root}, or choose another collection name`,
    );
  }
  if (existed && options.projection && !collection.manifest.projection) {
    await collection.close();
    throw new CollectionError(
      'MODEL_MISMATCH',
      `Collection "${name}" exists without a projection; leave out --projection to continue it, or choose another collection name`,
    );
  }
  if (
    existed &&
    options.model &&
    collection.manifest.model !== options.model &&
    collection.manifest.model !== resolve(options.model)
  ) {
    await collection.close();
    throw new CollectionError(
      'MODEL_MISMATCH',
      `Collection "${name}" uses the model ${collection.manifest.model}; leave out --model to continue it, or choose another collection name`,
    );
  }
  try {
    await collection.beginWork(
      newPendingWork(
        'index',
        resumeCommand(name, existsSync(source) ? root : source, options),
        images.length,
      ),
    );
    const report = await collection.addImages(images, {
      onProgress: options.onProgress,
      signal: options.signal,
    });
    await collection.endWork();
    return { collection, report, total: images.length };
  } catch (error) {
    await collection.close();
    throw error;
  }
}

/** The `ris index` that resumes this one (quoted where a shell needs it). */
function resumeCommand(name: string, source: string, options: IndexOptions): string {
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const from = options.from === undefined ? '' : ` --from ${quote(options.from)}`;
  return `ris index ${quote(source)} --collection ${quote(name)}${from}`;
}
