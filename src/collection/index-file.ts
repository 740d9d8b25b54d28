import { readFile } from 'node:fs/promises';
import { FlatIndex } from '../ann/flat.ts';
import { decodeIndexFile } from '../ann/format.ts';
import { IvfPqIndex } from '../ann/ivf-pq.ts';

export type CollectionIndex = FlatIndex | IvfPqIndex;

/** Loads an index file of either kind a collection uses (its header says which). */
export async function loadIndex(path: string): Promise<CollectionIndex> {
  const bytes = new Uint8Array(await readFile(path));
  const { fields } = decodeIndexFile(bytes, path);
  return fields.kind === 1 ? FlatIndex.fromBytes(bytes, path) : IvfPqIndex.fromBytes(bytes, path);
}
