import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { DEFAULT_MODEL } from '../embed/config.ts';
import type { DownloadProgress } from '../embed/download.ts';
import type { EmbedProgress } from '../embed/embedder.ts';
import { ArgumentError, CollectionError } from '../errors.ts';
import {
  type AddReport,
  Collection,
  type CollectionOptions,
  type ImageToAdd,
  walkImages,
} from './collection.ts';
import {
  checkDatasetCopy,
  type DatasetName,
  datasetImages,
  downloadDataset,
  isDatasetName,
} from './datasets.ts';

export type BuildProgress =
  | EmbedProgress
  | DownloadProgress
  | { type: 'extract'; dataset: DatasetName }
  | { type: 'scan'; images: number }
  | { type: 'train'; images: number };

export interface IndexOptions extends CollectionOptions {
  /** Model for a new collection. Default 'resnet50'. An existing collection keeps its own. */
  model?: string;
  numPartitions?: number;
  numSubVectors?: number;
  /** For a dataset: an existing copy of its images, instead of downloading. */
  from?: string;
  /** For a dataset: where datasets are downloaded. */
  datasetsDir?: string;
  onProgress?: (event: BuildProgress) => void;
}

/** The images of a folder, or of a dataset (downloaded first unless `from` points at a copy). */
export async function resolveSource(
  source: string,
  options: IndexOptions = {},
): Promise<{ root: string; images: ImageToAdd[] }> {
  if (isDatasetName(source) && !existsSync(source)) {
    let root: string;
    if (options.from) {
      root = resolve(options.from);
      await checkDatasetCopy(source, root);
    } else root = await downloadDataset(source, { dir: options.datasetsDir, onProgress: options.onProgress });
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
 * Creates (or resumes) a collection from a folder or dataset: embeds every image not yet in it, one
 * committed batch at a time, then builds or updates the index. Run again after an interruption, it
 * continues where it stopped.
 */
export async function indexCollection(
  name: string,
  source: string,
  options: IndexOptions = {},
): Promise<{ collection: Collection; report: AddReport; total: number }> {
  const { root, images } = await resolveSource(source, options);
  options.onProgress?.({ type: 'scan', images: images.length });
  if (images.length === 0) {
    throw new CollectionError(
      'EMPTY_COLLECTION',
      `No images (jpg, jpeg, png, webp, gif, tiff, avif) found under ${root}`,
    );
  }
  const collection = Collection.exists(name, options.home)
    ? await Collection.open(name, options)
    : await Collection.create(
        name,
        {
          model: options.model ?? DEFAULT_MODEL,
          root,
          numPartitions: options.numPartitions,
          numSubVectors: options.numSubVectors,
        },
        options,
      );
  if (
    options.model &&
    Collection.exists(name, options.home) &&
    collection.manifest.model !== options.model &&
    collection.manifest.model !== resolve(options.model)
  ) {
    await collection.close();
    throw new CollectionError(
      'MODEL_MISMATCH',
      `Collection "${name}" uses the model ${collection.manifest.model}; leave out --model to continue it, or choose another collection name`,
    );
  }
  const report = await collection.addImages(images, { onProgress: options.onProgress });
  options.onProgress?.({ type: 'train', images: collection.size });
  await collection.updateIndex();
  return { collection, report, total: images.length };
}
