import { StateError } from '../errors.ts';

/**
 * Where `save` and `load` read and write bytes. src/ann stays free of platform imports; the package
 * entry for Node registers a store that writes atomically (temp file, fsync, rename).
 */
export interface FileStore {
  write(path: string, bytes: Uint8Array): Promise<void>;
  read(path: string): Promise<Uint8Array>;
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
