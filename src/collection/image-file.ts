import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { ImageError } from '../errors.ts';
import type { ImageRecord } from './types.ts';

/** What an indexed image's file must still be for its bytes to be served as that image. */
export type IndexedFile = Pick<ImageRecord, 'id' | 'bytes' | 'sha256'>;

/**
 * The bytes of an indexed image's file, only while it is what was indexed: a regular file (a symlink is
 * followed) of the indexed size and SHA-256. Anything else is refused: gone (IMAGE_NOT_FOUND), or changed
 * since indexing (IMAGE_CHANGED): edited, replaced by another file, or by a link to one (/etc/passwd), a
 * device or a pipe. Opened without blocking (a pipe put in its place cannot hang the reader) and checked
 * for its kind and size before a byte is read.
 */
export async function readIndexedFile(
  file: string,
  record: IndexedFile,
  collection: string,
  /** The command that indexes the file as it is now, for the message. */
  reindex: string,
): Promise<Buffer> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw fileError(error as NodeJS.ErrnoException, file, record, collection);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw changed(file, record, collection, 'it is no longer a regular file', reindex);
    if (stat.size !== record.bytes)
      throw changed(file, record, collection, `${stat.size} bytes instead of ${record.bytes}`, reindex);
    const bytes = await handle.readFile();
    checkIndexedBytes(bytes, file, record, collection, reindex);
    return bytes;
  } finally {
    await handle.close();
  }
}

/** Refuses bytes (read from a file or fetched from a URL) that are not the ones indexed for `record`. */
export function checkIndexedBytes(
  bytes: Buffer,
  where: string,
  record: IndexedFile,
  collection: string,
  reindex: string,
): void {
  if (bytes.length !== record.bytes)
    throw changed(where, record, collection, `${bytes.length} bytes instead of ${record.bytes}`, reindex);
  if (createHash('sha256').update(bytes).digest('hex') !== record.sha256)
    throw changed(where, record, collection, 'other content, of the same size', reindex);
}

/**
 * Reads an image's file with `read`; a file found changed (IMAGE_CHANGED) has its recorded mtime
 * forgotten through `touch`, so the next rescan (or watch sweep) compares its content and embeds it
 * again even when size and mtime were put back as they were.
 */
export async function readMarkingChanges(
  record: Pick<ImageRecord, 'id'>,
  read: () => Promise<Buffer>,
  touch: (files: { id: number; mtimeMs: null }[]) => Promise<void>,
): Promise<Buffer> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof ImageError && error.code === 'IMAGE_CHANGED')
      await touch([{ id: record.id, mtimeMs: null }]).catch(() => undefined);
    throw error;
  }
}

function changed(
  where: string,
  record: IndexedFile,
  collection: string,
  how: string,
  reindex: string,
): ImageError {
  return new ImageError(
    'IMAGE_CHANGED',
    `The file of image ${record.id} changed since it was indexed: ${where} (collection "${collection}": ${how}); put the indexed file back, or index what is there now (${reindex})`,
  );
}

function fileError(
  error: NodeJS.ErrnoException,
  file: string,
  record: IndexedFile,
  collection: string,
): ImageError {
  if (error.code === 'ENOENT' || error.code === 'ENOTDIR')
    return new ImageError(
      'IMAGE_NOT_FOUND',
      `The file of image ${record.id} is gone: ${file} (collection "${collection}"); put it back, or remove the image with ris remove ${collection} ${record.id}`,
    );
  return new ImageError(
    'IMAGE_UNREADABLE',
    `The file of image ${record.id} cannot be read: ${file} (${error.code ?? error.message})`,
  );
}
