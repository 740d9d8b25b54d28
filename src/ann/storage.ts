import { StateError } from '../errors.ts';

/**
 * Where `save` and `load` read and write bytes. src/ann stays free of platform imports; the package
 * entry for Node registers a store that writes atomically (temp file, fsync, rename).
 */
export interface FileStore {
  /** Writes a whole file atomically: from one array, or from parts (see StreamedFile). */
  write(path: string, bytes: Uint8Array | StreamedFile): Promise<void>;
  read(path: string): Promise<Uint8Array>;
  /** Opens a file to read ranges of it (index sections read on demand); the caller closes it. */
  open(path: string): Promise<RangedFile>;
}

/**
 * A file written part by part, so that it need not be in memory at once: `parts` in order, then
 * `head()` (called once every part is written) over the file's first head().length bytes.
 */
export interface StreamedFile {
  readonly byteLength: number;
  readonly parts: Iterable<Uint8Array>;
  head(): Uint8Array;
}

/** A file open for reads of byte ranges. */
export interface RangedFile {
  /** Bytes in the file when it was opened. */
  readonly size: number;
  /**
   * Fills `into` with the bytes from `offset`, synchronously (searches read rows through it between
   * two computations); a file shorter than that is an error.
   */
  read(into: Uint8Array, offset: number): void;
  /** CRC-32 of `length` bytes from `offset`, where the store has a faster one than src/ann's. */
  crc32?(offset: number, length: number): number;
  /**
   * What tells this version of the file from any other on this machine (device, inode, size, modification
   * and change times), where the store has such a thing: a file rewritten, replaced or modified in place
   * has another.
   */
  readonly identity?: string;
  /** Gives the file back; later reads fail. */
  close(): void;
}

/** A RangedFile over bytes already in memory (for files handed over as bytes). */
export function bytesFile(bytes: Uint8Array): RangedFile {
  return {
    size: bytes.length,
    read(into, offset) {
      if (offset < 0 || offset + into.length > bytes.length) {
        throw new RangeError(`Bytes ${offset}…${offset + into.length} are past the end (${bytes.length})`);
      }
      into.set(bytes.subarray(offset, offset + into.length));
    },
    close() {},
  };
}

let store: FileStore | undefined;

export function setFileStore(next: FileStore): void {
  store = next;
}

export function fileStore(): FileStore {
  if (!store) {
    throw new StateError(
      'NO_FILE_STORE',
      'No file store is registered; import ris from its package entry (which registers the Node one) or call setFileStore()',
    );
  }
  return store;
}
