import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { Exclusion } from './database.ts';

/** A removed image, as exclusionsFor needs it. */
export interface RemovedFile {
  /** As stored: relative to the collection's root, or absolute. */
  path: string;
  bytes: number;
  /** Its file's mtime when it was embedded (null where unknown). */
  mtimeMs: number | null;
}

/**
 * What removing images records so that rescans and folder watching keep their files out until they
 * change (both stores): one exclusion per removed file of the collection's folder (not an upload, not a
 * file added from elsewhere), with its size and mtime now. Where the folder is not on this machine (a
 * server of a PostgreSQL collection without the mount), with its size and mtime as embedded: the file as
 * the machines that rescan see it, unless it changed since. A file gone from a folder that is here needs
 * none.
 */
export async function exclusionsFor(
  removed: RemovedFile[],
  collection: { manifest: { root: string }; isUpload(file: { path: string }): boolean },
): Promise<Exclusion[]> {
  const root = collection.manifest.root;
  const rootHere = existsSync(root);
  const exclusions: Exclusion[] = [];
  for (const file of removed) {
    if (isAbsolute(file.path) || collection.isUpload(file)) continue; // only files of the folder it follows
    if (!rootHere) {
      if (file.mtimeMs !== null)
        exclusions.push({ path: file.path, bytes: file.bytes, mtimeMs: file.mtimeMs });
      continue;
    }
    const now = await stat(join(root, file.path)).catch(() => undefined);
    if (now?.isFile()) exclusions.push({ path: file.path, bytes: now.size, mtimeMs: now.mtimeMs });
  }
  return exclusions;
}
