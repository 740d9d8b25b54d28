import { DEFAULT_MODEL } from '../embed/config.ts';
import { CollectionError } from '../errors.ts';
import { imagesToAdd } from './build.ts';
import { checkCollectionName } from './home.ts';
import type { IndexSettingsInput } from './manifest.ts';
import { type RescanProgress, type RescanReport, rescanFolder } from './rescan.ts';
import {
  type CollectionStore,
  type ImageCollection,
  isLibraryCollection,
  type LibraryCollection,
} from './store.ts';
import type { AddReport, CollectionOptions, CollectionProgress, RemoveReport } from './types.ts';
import type { Upload, UploadProgress, UploadReport } from './uploads.ts';

/**
 * The operations that change a library, as the CLI, the HTTP API and the page all reach them: create a
 * collection, add files or folders, send files (uploads and URLs), remove images, rescan a folder, delete
 * a collection. A rule about what changes (what is kept out, what is deleted with what) lives here or in
 * the stores below, never in a caller.
 */

/**
 * Creates an empty collection. Without `root` its images are only what is sent to it (kept in a folder
 * of its own); with one, `rescan` and folder watching follow that folder.
 */
export async function createCollection(
  store: CollectionStore,
  name: string,
  init: { model?: string; index?: IndexSettingsInput; root?: string } = {},
  options: CollectionOptions = {},
): Promise<ImageCollection> {
  checkCollectionName(name);
  if (await store.exists(name)) {
    throw new CollectionError(
      'COLLECTION_EXISTS',
      `Collection "${name}" already exists; add images to it, or choose another name`,
    );
  }
  return store.create(
    name,
    { model: init.model ?? DEFAULT_MODEL, root: init.root, index: init.index },
    options,
  );
}

/**
 * Adds files and folders (walked) to a collection, labelled by the folder rule unless `labels` is given;
 * a removed file added again on purpose comes back.
 */
export async function addPaths(
  collection: ImageCollection,
  paths: string[],
  options: { labels?: string[]; onProgress?: (e: CollectionProgress) => void; signal?: AbortSignal } = {},
): Promise<AddReport> {
  const images = await imagesToAdd(paths, collection.manifest.root, options.labels);
  return collection.addImages(images, { onProgress: options.onProgress, signal: options.signal });
}

/** Adds files sent to the collection (see LibraryCollection.addUploads). */
export async function addUploads(
  collection: ImageCollection,
  uploads: Upload[],
  options: { onProgress?: (e: CollectionProgress | UploadProgress) => void; signal?: AbortSignal } = {},
): Promise<UploadReport> {
  return library(collection).addUploads(uploads, options);
}

/**
 * Removes images by id or path. A file of the collection's folder stays out of rescans and watching
 * until it changes; ris's own copy of an uploaded file is deleted.
 */
export async function removeImages(
  collection: ImageCollection,
  targets: (number | string)[],
): Promise<RemoveReport> {
  return isLibraryCollection(collection)
    ? collection.removeImages(targets, { exclude: true })
    : collection.removeImages(targets);
}

/** Brings a collection in line with its folder (see rescanFolder). */
export async function rescan(
  collection: ImageCollection,
  options: { scope?: string[]; onProgress?: (e: RescanProgress) => void; signal?: AbortSignal } = {},
): Promise<RescanReport> {
  return rescanFolder(library(collection), options);
}

/**
 * Deletes a collection: its database, index, thumbnails and the files ris kept for its uploads. The
 * folders its images came from are never touched.
 */
export async function deleteCollection(store: CollectionStore, name: string): Promise<void> {
  checkCollectionName(name);
  await store.delete(name);
}

function library(collection: ImageCollection): LibraryCollection {
  if (isLibraryCollection(collection)) return collection;
  throw new CollectionError(
    'COLLECTION_BROKEN',
    `Collection "${collection.name}" is kept where ris cannot store uploads or follow a folder yet`,
  );
}
