import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fsyncSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { stampChecksum } from '../ann/format.ts';
import { openIndex, openRangedIndex } from '../ann/registry.ts';
import type { VectorIndex } from '../ann/vector-index.ts';
import { StorageError } from '../errors.ts';
import { nodeFileStore, openRanged } from '../node/file-store.ts';
import { pausePoint } from './pause.ts';

/** A collection's index: any kind src/ann has. */
export type CollectionIndex = VectorIndex;

/**
 * Which state of the database an index file reflects, kept in the reserved part of its header (so the
 * stamp and the contents are written, renamed and checksummed as one):
 * - `data`: the generation whose images the index holds, exactly;
 * - `build`: the generation at which its quantizers (or, for an exact index, the index itself) were built,
 *   so a newer build (a retrain) wins over an older one however many images were added since;
 * - `trainedOn`: how many vectors the quantizers were trained on;
 * - `builder`: the BUILDER_REVISION of the code that built it (0: before revisions were stamped).
 * A file written before stamps existed reads as all zeros: it is compared with the database id by id.
 */
export interface IndexStamp {
  build: number;
  data: number;
  trainedOn: number;
  builder: number;
}

/**
 * What the code that builds indexes is worth, bumped when a build of the same settings gets better: an
 * index built before is reported (IndexStatus.outdated) until rebuilt.
 * 1: HNSW links the nodes of each batch built on both cores to each other (before, folders indexed class
 *    by class lost recall: 0.936 against 0.995 at efSearch 64).
 */
export const BUILDER_REVISION = 1;
/** The revision from which HNSW graphs are as good as one built now. */
export const HNSW_REVISION = 1;

export const NO_STAMP: IndexStamp = { build: 0, data: 0, trainedOn: 0, builder: 0 };
const STAMP_OFFSET = 72;
const HEADER_SIZE = 128;

export function readStamp(bytes: Uint8Array): IndexStamp {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  return {
    build: Number(view.getBigUint64(STAMP_OFFSET, true)),
    data: Number(view.getBigUint64(STAMP_OFFSET + 8, true)),
    trainedOn: view.getUint32(STAMP_OFFSET + 16, true),
    builder: view.getUint32(STAMP_OFFSET + 20, true),
  };
}

/** The bytes of `index`'s file with `stamp` in its header (and the checksum made again). */
export function stampedBytes(index: CollectionIndex, stamp: IndexStamp): Uint8Array {
  const bytes = index.toBytes();
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  view.setBigUint64(STAMP_OFFSET, BigInt(stamp.build), true);
  view.setBigUint64(STAMP_OFFSET + 8, BigInt(stamp.data), true);
  view.setUint32(STAMP_OFFSET + 16, stamp.trainedOn, true);
  view.setUint32(STAMP_OFFSET + 20, stamp.builder, true);
  stampChecksum(bytes);
  return bytes;
}

/** Opens an index file of any kind (its header says which), with its stamp. */
export function openIndexFile(
  bytes: Uint8Array,
  path: string,
): { index: CollectionIndex; stamp: IndexStamp } {
  return { index: openIndex(bytes, path), stamp: readStamp(bytes) };
}

/**
 * Opens index.ris through ranged reads, with its stamp (read from the same open file, so both are of one
 * version of it): sections kept for reading on demand (IVF-RaBitQ's full vectors) stay on disk, their
 * checksums checked as it opens — once per version of the file: a version checked (or written) before, as
 * `index.ris.checked` records by the file's identity, is not streamed through again, so a search from the
 * command line on a large collection does not read gigabytes first. A file rewritten, replaced or modified
 * in place (even with its modification time put back: the change time moves, on file systems that keep
 * one — not FAT or exFAT) is checked again; damage that changes no metadata (the disk's own bit rot) goes
 * unseen by the open, the trade-off for opening in milliseconds.
 */
export async function loadIndexFile(path: string): Promise<{ index: CollectionIndex; stamp: IndexStamp }> {
  const file = await nodeFileStore.open(path);
  let stamp: IndexStamp;
  let index: CollectionIndex;
  const checked = await readChecked(path);
  const verify = file.identity === undefined || checked !== file.identity;
  try {
    const header = new Uint8Array(HEADER_SIZE);
    file.read(header, 0);
    stamp = readStamp(header);
    index = openRangedIndex(file, path, { verify });
  } catch (error) {
    file.close();
    throw error;
  }
  if (verify) recordChecked(path, index, file.identity);
  return { index, stamp };
}

/**
 * Opens the index file this process has just written (fsynced, under the write lock) without checking
 * its on-demand sections again: so an index that reads rows on demand holds the file's rows instead of
 * the copies it made while it was built or grown.
 */
export function reopenWrittenIndex(path: string): CollectionIndex {
  const file = openRanged(path);
  const index = openRangedIndex(file, path, { verify: false });
  recordChecked(path, index, file.identity);
  return index;
}

/** Where the identity of the last version of an index file whose checksums were checked is kept. */
const checkedRecord = (path: string) => `${path}.checked`;

/** The identity last recorded as checked (a record is a line; anything longer is not one). */
async function readChecked(path: string): Promise<string | undefined> {
  const handle = await open(checkedRecord(path), constants.O_RDONLY | constants.O_NOFOLLOW).catch(
    () => undefined,
  );
  if (!handle) return undefined;
  try {
    const bytes = Buffer.alloc(256);
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
    return bytes.subarray(0, bytesRead).toString('utf8');
  } catch {
    return undefined; // a folder, say
  } finally {
    await handle.close();
  }
}

/**
 * Records `identity` as checked, for an index that reads from its file later (only those have sections
 * the open streams through). Written beside and renamed into place, so a link planted there is replaced,
 * never written through. Best effort: a record that cannot be written only means the next open checks.
 */
function recordChecked(path: string, index: CollectionIndex, identity: string | undefined): void {
  const usage = index.memoryUsage() as { onDisk?: number };
  if (identity === undefined || !(usage.onDisk! > 0)) return;
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSync(temp, identity, { flag: 'wx' });
    renameSync(temp, checkedRecord(path));
  } catch {
    rmSync(temp, { force: true }); // a read-only folder: checked on every open, as before
  }
}

/** The stamp in a file's header without reading the rest; undefined when there is no readable file. */
export async function peekStamp(path: string): Promise<IndexStamp | undefined> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return undefined;
  try {
    const header = new Uint8Array(HEADER_SIZE);
    const { bytesRead } = await handle.read(header, 0, HEADER_SIZE, 0);
    return bytesRead === HEADER_SIZE && isIndexHeader(header) ? readStamp(header) : undefined;
  } finally {
    await handle.close();
  }
}

export function peekStampSync(path: string): IndexStamp | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const header = new Uint8Array(HEADER_SIZE);
    return readSync(fd, header, 0, HEADER_SIZE, 0) === HEADER_SIZE && isIndexHeader(header)
      ? readStamp(header)
      : undefined;
  } finally {
    closeSync(fd);
  }
}

function isIndexHeader(header: Uint8Array): boolean {
  return String.fromCharCode(...header.subarray(0, 8)) === 'RISINDEX';
}

const TEMP = /^\..*\.tmp$/;

/**
 * Writes `bytes` to `path` as a whole or not at all: a temp file beside it, fsync, rename, fsync of the
 * folder. Synchronous on purpose: it runs while holding the collection's write lock, inside one SQLite
 * transaction. A full disk is DISK_FULL, and the temp file is removed.
 */
export function writeAtomicSync(path: string, bytes: Uint8Array, dir: string): void {
  const temp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'w');
    for (let at = 0; at < bytes.length; )
      at += writeSync(fd, bytes, at, Math.min(bytes.length - at, 1 << 24));
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    pausePoint('index:temp-written');
    renameSync(temp, path);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temp, { force: true });
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT')
      throw new StorageError(
        'DISK_FULL',
        `The disk is full while writing ${path}; free some space and run the command again (the images are safe in metadata.db)`,
        { cause: error },
      );
    throw error;
  }
  const folder = openSync(dir, 'r');
  try {
    fsyncSync(folder);
  } finally {
    closeSync(folder);
  }
  pausePoint('index:renamed');
}

/**
 * Removes temp files left by a process killed in the middle of a write. Only called while holding the
 * write lock: every writer writes under it, so any temp file found then belongs to nobody.
 */
export function removeOrphanTempFiles(dir: string): string[] {
  const orphans = readdirSync(dir).filter((name) => TEMP.test(name));
  for (const name of orphans) rmSync(join(dir, name), { force: true });
  return orphans;
}

/**
 * For a collection written before ids were never reused: the next id its index file would have handed
 * out, so the migration keeps every id ever used out of reach.
 */
export function legacyIdFloor(indexPath: string): number {
  let fd: number | undefined;
  try {
    fd = openSync(indexPath, 'r');
    const header = new Uint8Array(HEADER_SIZE);
    if (readSync(fd, header, 0, HEADER_SIZE, 0) < HEADER_SIZE) return 0;
    const nextId = new DataView(header.buffer).getUint32(52, true); // the header's nextId field
    return nextId > 0 && nextId < 2 ** 31 ? nextId - 1 : 0;
  } catch {
    return 0;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
