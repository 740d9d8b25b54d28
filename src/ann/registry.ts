import { FlatIndex } from './flat.ts';
import { type DecodedIndexFile, decodeIndexFile, type IndexKind, kindOf } from './format.ts';
import { HnswIndex } from './hnsw.ts';
import { IvfFlatIndex } from './ivf-flat.ts';
import { IvfPqIndex } from './ivf-pq.ts';
import { PqIndex } from './pq-index.ts';
import { fileStore } from './storage.ts';
import type { VectorIndex } from './vector-index.ts';

/** Every kind's reader, by the kind its file's header names. */
const OPENERS: Record<IndexKind, (file: DecodedIndexFile) => VectorIndex> = {
  flat: FlatIndex.fromFile,
  'ivf-flat': IvfFlatIndex.fromFile,
  'ivf-pq': IvfPqIndex.fromFile,
  pq: PqIndex.fromFile,
  hnsw: HnswIndex.fromFile,
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

/** Reads an index file of any kind through the file store (see `openIndex`). */
export async function loadIndex(path: string): Promise<VectorIndex> {
  return openIndex(await fileStore().read(path), path);
}
