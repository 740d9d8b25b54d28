import { FlatIndex } from './flat.ts';
import {
  type DecodedIndexFile,
  decodeIndexFile,
  type IndexKind,
  kindOf,
  type ReadIndexOptions,
  readIndexFile,
} from './format.ts';
import { HnswIndex } from './hnsw.ts';
import { IvfFlatIndex } from './ivf-flat.ts';
import { IvfPqIndex } from './ivf-pq.ts';
import { IvfRabitqIndex } from './ivf-rabitq.ts';
import { PqIndex } from './pq-index.ts';
import { fileStore, type RangedFile } from './storage.ts';
import type { VectorIndex } from './vector-index.ts';

/** Every kind's reader, by the kind its file's header names. */
const OPENERS: Record<IndexKind, (file: DecodedIndexFile) => VectorIndex> = {
  flat: FlatIndex.fromFile,
  'ivf-flat': IvfFlatIndex.fromFile,
  'ivf-pq': IvfPqIndex.fromFile,
  pq: PqIndex.fromFile,
  hnsw: HnswIndex.fromFile,
  'ivf-rabitq': IvfRabitqIndex.fromFile,
};

/**
 * Opens an index file of any kind from its bytes, by its header (kind, format version). A file this ris
 * cannot open is a FileFormatError: NOT_AN_INDEX_FILE, TRUNCATED_FILE, CORRUPT_FILE, UNSUPPORTED_VERSION
 * (a newer format) or UNKNOWN_INDEX_KIND (a kind from a newer ris). The index views the bytes without
 * copying them: do not change them while it is in use.
 */
export function openIndex(bytes: Uint8Array, name = 'index file'): VectorIndex {
  const file = decodeIndexFile(bytes, name);
  return OPENERS[kindOf(file)](file);
}

/**
 * Reads an index file of any kind through the file store (see `openIndex`). Sections the file keeps
 * for reading on demand (an IvfRabitqIndex's full vectors, say) stay on disk: the index reads them a
 * range at a time, so the file may be larger than the memory the process may use. Their checksums are
 * checked as the file opens, streamed through a small buffer, unless `verify` is false.
 */
export async function loadIndex(path: string, options: ReadIndexOptions = {}): Promise<VectorIndex> {
  return openRangedIndex(await fileStore().open(path), path, options);
}

/**
 * Opens an index of any kind from a file already open (see `loadIndex`): the index keeps `file` when it
 * reads sections on demand, else (and on any error) it is closed here.
 */
export function openRangedIndex(file: RangedFile, name: string, options: ReadIndexOptions = {}): VectorIndex {
  try {
    const decoded = readIndexFile(file, name, options);
    const index = OPENERS[kindOf(decoded)](decoded);
    if (!decoded.leftOnDisk) file.close();
    return index;
  } catch (error) {
    file.close();
    throw error;
  }
}
