import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { CollectionError, type RisError } from '../errors.ts';
import type { StoredFile } from './database.ts';
import type { LibraryCollection } from './store.ts';
import type { CollectionProgress } from './types.ts';
import { IMAGE_EXTENSIONS, labelsFor } from './walk.ts';

/** What a rescan changed, in counts, with the files that could not be embedded. */
export interface RescanReport {
  /** New files embedded. */
  added: number;
  /** Files whose bytes changed: embedded again (under a new id). */
  reembedded: number;
  /** Images whose files are gone. */
  removed: number;
  /** Files renamed or moved inside the folder with the same bytes: same id, new path. */
  moved: number;
  /** Files left out because a user removed them (until they change). */
  excluded: number;
  unchanged: number;
  failures: { path: string; error: RisError }[];
}

/** A rescan's report before it counts anything. */
export function emptyRescanReport(): RescanReport {
  return { added: 0, reembedded: 0, removed: 0, moved: 0, excluded: 0, unchanged: 0, failures: [] };
}

/** Progress of a rescan: the files found ('scan'), then the embedding of new and changed ones. */
export type RescanProgress = CollectionProgress | { type: 'scan'; images: number };

interface DiskFile {
  /** The path as the collection stores it (relative to the root, '/'-separated). */
  path: string;
  absolute: string;
  bytes: number;
  mtimeMs: number;
}

/**
 * Brings a collection in line with its folder: new files are embedded, changed ones embedded again,
 * gone ones removed, renamed or moved ones (same bytes) keep their id under the new path. Files are
 * compared by size and mtime, and by content where those differ (a file touched but unchanged costs a
 * read, not an embedding). Files a user removed stay out until they change. `scope` limits the work to
 * some files and folders of the root (what a folder watcher saw change); images outside the root (added
 * from elsewhere) and ris's own uploads are never touched.
 */
export async function rescanFolder(
  collection: LibraryCollection,
  options: { scope?: string[]; onProgress?: (e: RescanProgress) => void; signal?: AbortSignal } = {},
): Promise<RescanReport> {
  const report = emptyRescanReport();
  if (!collection.followsFolder) return report; // its root is ris's own: nothing of the user's to follow
  const root = resolve(collection.manifest.root);
  const rootStat = await stat(root).catch(() => undefined);
  if (!rootStat?.isDirectory()) {
    throw new CollectionError(
      'NO_IMAGES',
      `The folder of collection "${collection.name}" is not there any more; mount or restore it, then rescan`,
    );
  }
  const scope = (options.scope ?? [root]).map((p) => resolve(p)).filter((p) => isInside(root, p));
  // A stored path is in scope when it, or a folder above it, is: a lookup per level, not per scope path
  // (a watch batch can name thousands of files).
  const scoped = new Set(scope.map((s) => relative(root, s).split(sep).join('/')));
  const inScope = (path: string) => {
    if (scoped.has('')) return true;
    for (let at = path; ; at = at.slice(0, at.lastIndexOf('/'))) {
      if (scoped.has(at)) return true;
      if (!at.includes('/')) return false;
    }
  };
  const onDisk = new Map<string, DiskFile>();
  // ris's own folder for the collection (thumbnails, uploads) is never part of the folder it follows.
  const own = resolve(collection.dir);
  for (const start of scope) await walk(root, start, own, onDisk, options.signal);
  options.onProgress?.({ type: 'scan', images: onDisk.size });

  const stored = new Map<string, StoredFile>();
  for (const file of await collection.storedFiles(options.scope ? [...scoped] : undefined)) {
    if (isAbsolute(file.path) || !inScope(file.path)) continue;
    if (collection.isUpload({ path: file.path })) continue;
    stored.set(file.path, file);
  }
  const excluded = new Map((await collection.exclusions()).map((e) => [e.path, e]));

  const fresh: DiskFile[] = [];
  const changed: { disk: DiskFile; old: StoredFile }[] = [];
  const touched: { id: number; mtimeMs: number }[] = [];
  const unexclude: string[] = [];
  for (const disk of onDisk.values()) {
    const exclusion = excluded.get(disk.path);
    if (exclusion) {
      if (exclusion.bytes === disk.bytes && exclusion.mtimeMs === disk.mtimeMs) {
        report.excluded++;
        continue;
      }
      unexclude.push(disk.path); // changed since it was removed: it is a new file now
    }
    const old = stored.get(disk.path);
    if (!old) fresh.push(disk);
    else if (old.bytes === disk.bytes && old.mtimeMs === disk.mtimeMs) report.unchanged++;
    else if (old.bytes === disk.bytes && (await sha256Of(disk.absolute)) === old.sha256) {
      touched.push({ id: old.id, mtimeMs: disk.mtimeMs });
      report.unchanged++;
    } else changed.push({ disk, old });
  }
  const gone = [...stored.values()].filter((file) => !onDisk.has(file.path));

  // A new file with the bytes of a gone one is that file, moved.
  const goneBySize = new Map<number, StoredFile[]>();
  for (const file of gone) goneBySize.set(file.bytes, [...(goneBySize.get(file.bytes) ?? []), file]);
  const moves: { id: number; path: string; mtimeMs: number | null }[] = [];
  const movedIds = new Set<number>();
  const added: DiskFile[] = [];
  for (const disk of fresh) {
    const candidates = goneBySize.get(disk.bytes)?.filter((f) => !movedIds.has(f.id));
    const sha = candidates?.length ? await sha256Of(disk.absolute) : undefined;
    const same = candidates?.find((f) => f.sha256 === sha);
    if (same) {
      moves.push({ id: same.id, path: disk.absolute, mtimeMs: disk.mtimeMs });
      movedIds.add(same.id);
    } else added.push(disk);
  }
  options.signal?.throwIfAborted();

  await collection.unexclude(unexclude);
  await collection.touchFiles(touched);
  await collection.moveImages(moves);
  report.moved = moves.length;
  const removals = [...gone.filter((f) => !movedIds.has(f.id)), ...changed.map((c) => c.old)];
  if (removals.length > 0) {
    const { removed } = await collection.removeImages(
      removals.map((f) => f.id),
      { exclude: false },
    );
    report.removed = removed - changed.length;
  }
  const toEmbed = [...changed.map((c) => c.disk), ...added];
  if (toEmbed.length > 0) {
    const result = await collection.addImages(
      toEmbed.map((disk) => ({ path: disk.absolute, labels: labelsFor(disk.absolute, root) })),
      { onProgress: options.onProgress, signal: options.signal },
    );
    const failed = new Set(result.failures.map((f) => f.path));
    report.reembedded = changed.filter((c) => !failed.has(c.disk.absolute)).length;
    report.added = added.filter((d) => !failed.has(d.absolute)).length;
    report.failures = result.failures;
  }
  return report;
}

/** Image files under `start` (a folder or a file inside root, never `skip`), with their size and mtime. */
async function walk(
  root: string,
  start: string,
  skip: string,
  out: Map<string, DiskFile>,
  signal?: AbortSignal,
) {
  if (isInside(skip, start)) return;
  // The root may be a link (a mounted drive's folder); links inside it are not followed, as below.
  const info = await (start === root ? stat(start) : lstat(start)).catch(() => undefined);
  if (!info) return;
  const add = (absolute: string, bytes: number, mtimeMs: number) => {
    const path = relative(root, absolute).split(sep).join('/');
    out.set(path, { path, absolute, bytes, mtimeMs });
  };
  if (info.isFile()) {
    if (IMAGE_EXTENSIONS.test(start)) add(start, info.size, info.mtimeMs);
    return;
  }
  if (!info.isDirectory()) return;
  const entries = await readdir(start, { withFileTypes: true }).catch(() => []);
  signal?.throwIfAborted();
  // Symbolic links are not followed: a link could lead the collection out of its folder. A folder's
  // files are looked at together (the thread pool stats several at once).
  const images = entries.filter((entry) => entry.isFile() && IMAGE_EXTENSIONS.test(entry.name));
  const stats = await Promise.all(
    images.map((entry) => stat(join(start, entry.name)).catch(() => undefined)),
  );
  for (const [i, entry] of images.entries()) {
    const file = stats[i];
    if (file?.isFile()) add(join(start, entry.name), file.size, file.mtimeMs);
  }
  for (const entry of entries)
    if (entry.isDirectory()) await walk(root, join(start, entry.name), skip, out, signal);
}

function isInside(folder: string, path: string): boolean {
  const rel = relative(folder, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

async function sha256Of(file: string): Promise<string | undefined> {
  try {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    return hash.digest('hex');
  } catch {
    return undefined;
  }
}
