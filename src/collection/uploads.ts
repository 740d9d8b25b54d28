import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';
import type { Embedder, EmbedProgress } from '../embed/embedder.ts';
import type { ErrorCode, RisError } from '../errors.ts';
import type { CollectionDb } from './database.ts';
import { type EmbeddedFile, embedFiles, planeEntries } from './embed-files.ts';
import { pausePoint } from './pause.ts';
import { PlaneCache } from './plane-cache.ts';
import { IMAGE_EXTENSIONS, type ImageToAdd } from './walk.ts';

/** A file sent to a collection (an upload, or an image fetched from a URL), waiting to be added. */
export interface Upload {
  /** The file's name as the client sent it (shown back in reports; never used as a path as it is). */
  name: string;
  /** A temporary file holding its bytes, in the collection's staging folder; the collection moves or removes it. */
  file: string;
  labels?: string[];
  /** Its position among the files of the request (default: its position in the list given). */
  index?: number;
}

/** What became of each file of an upload, each list in the order the files were sent. */
export interface UploadReport {
  added: { index: number; id: number; name: string }[];
  /** Files not added on purpose (their bytes are in the collection already). */
  skipped: { index: number; name: string; reason: string }[];
  /** Files that cannot be used, with why (corrupt, empty, not an image, too many pixels, …). */
  failed: { index: number; name: string; code: ErrorCode | 'INTERNAL'; message: string }[];
}

/** Progress of an upload batch, for the page's bar. */
export interface UploadProgress {
  type: 'upload';
  done: number;
  total: number;
}

/** Where a local collection keeps the files uploaded to it, inside its own folder. */
export const UPLOADS_DIR = 'uploads';
/** Where files are staged while they arrive (on the same disk as uploads/, so they move by a rename). */
export const STAGING_DIR = '.incoming';
/** Staged files older than this belong to a request that died (kill -9): the next sweep removes them. */
const STAGED_MAX_AGE_MS = 3_600_000;

/** A new staging file name in `dir` (the folder is made by the caller). */
export function stagingPath(dir: string): string {
  return join(dir, STAGING_DIR, `${Date.now()}-${randomBytes(8).toString('hex')}.part`);
}

/**
 * The name an uploaded file is kept under: the first 16 hex digits of its sha256 (so names never
 * collide and the same bytes get the same name), then the name as sent, cleaned of anything that could
 * act as a path or a control character, at most 120 bytes, with an image extension (sniffed from the
 * bytes when the sent name has none).
 */
export function uploadFileName(sentName: string, sha256: string, head: Uint8Array): string {
  const base = (sentName.normalize('NFC').split(/[/\\]/).pop() ?? '')
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
    .replace(/[\u0000-\u001f\u007f<>:"|?*]/g, '')
    .replace(/\s+/g, ' ')
    .replace(/^[.\s-]+/, '')
    .trim();
  const known = IMAGE_EXTENSIONS.test(base);
  const extension = known ? base.slice(base.lastIndexOf('.')) : sniffExtension(head);
  let stem = known ? base.slice(0, base.lastIndexOf('.')) : base;
  while (Buffer.byteLength(stem) > 120) stem = stem.slice(0, -1);
  return `${sha256.slice(0, 16)}-${stem || 'image'}${extension.toLowerCase()}`;
}

/** The extension of an image's format from its first bytes (.img where none is recognised). */
function sniffExtension(head: Uint8Array): string {
  const text = (from: number, to: number) => String.fromCharCode(...head.subarray(from, to));
  if (head[0] === 0xff && head[1] === 0xd8) return '.jpg';
  if (head[0] === 0x89 && text(1, 4) === 'PNG') return '.png';
  if (text(0, 4) === 'RIFF' && text(8, 12) === 'WEBP') return '.webp';
  if (text(0, 4) === 'GIF8') return '.gif';
  if (text(0, 4) === 'II*\0' || text(0, 4) === 'MM\0*') return '.tiff';
  if (text(4, 8) === 'ftyp' && /^avi[fs]$/.test(text(8, 12))) return '.avif';
  return '.jpg'; // sharp decodes by content, not by name; the name only has to look like an image
}

/**
 * An image in words for a report: "image 12 (cats/kitten.jpg)", naming its file only where that names no
 * folder of the server (a path relative to the collection's root, or the name ris keeps an upload under).
 */
export function imageInWords(id: number, file?: { path: string; upload: boolean }): string {
  const shown = !file ? '' : file.upload ? basename(file.path) : isAbsolute(file.path) ? '' : file.path;
  return `image ${id}${shown ? ` (${shown})` : ''}`;
}

/** Makes a folder's new entries (renames into it) survive a power cut. */
export function syncFolder(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Removes what killed uploads left behind: files in uploads/ that no image row names (a kill between
 * the rename and the commit) and staged files older than an hour. Run under the collection's write lock,
 * so no upload of another process is between its rename and its commit. Returns how many it removed.
 */
export function sweepUploads(dir: string, isStored: (file: string) => boolean): number {
  let removed = 0;
  const uploads = join(dir, UPLOADS_DIR);
  for (const name of safeList(uploads)) {
    const file = join(uploads, name);
    if (!isStored(file)) {
      rmSync(file, { force: true });
      removed++;
    }
  }
  const staging = join(dir, STAGING_DIR);
  for (const name of safeList(staging)) {
    const file = join(staging, name);
    const stat = statSync(file, { throwIfNoEntry: false });
    if (stat && Date.now() - stat.mtimeMs > STAGED_MAX_AGE_MS) {
      rmSync(file, { force: true });
      removed++;
    }
  }
  return removed;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** A sent file, embedded, with the name ris keeps it under: what a store is given to keep. */
export interface UploadToKeep {
  upload: Upload;
  /** Its name as kept (see uploadFileName). */
  keptName: string;
  file: EmbeddedFile;
}

/** What became of a file a store was given: its new image, the image that has its bytes, or why not. */
export type KeptUpload = { id: number } | { sameAs: string } | { error: RisError };

/** What a file is whose kept name is stored already (the same name as sent and the same bytes). */
export const KEPT_ALREADY: KeptUpload = { sameAs: 'a file of the same name and bytes' };

/**
 * How a store keeps sent files (its part of addUploadsTo): where their bytes go, in one transaction per
 * batch with their rows.
 */
export interface UploadKeeper {
  /** Of `sha256s`, those some image holds already, each with that image in words ("image 12 (cats/a.jpg)"). */
  holders(sha256s: string[]): Promise<Map<string, string>>;
  /**
   * Keeps a batch (bytes, rows and what the store shows of them) in one transaction; a file whose bytes
   * another process stored meanwhile is `sameAs` that image.
   */
  keep(batch: UploadToKeep[]): Promise<KeptUpload[]>;
  /** Makes what was kept searchable (called after each batch). */
  update(): Promise<void>;
  /**
   * Whether `keep` stores each image's planes for the duplicates' second look (a local collection: see
   * PlaneCache); the embedding pass makes them then.
   */
  readonly keepsPlanes?: boolean;
}

type Outcome =
  | { kind: 'added'; id: number; name: string }
  | { kind: 'skipped'; name: string; reason: string }
  | { kind: 'failed'; name: string; code: ErrorCode | 'INTERNAL'; message: string };

/**
 * Embeds sent files and has `keeper` store them, the same way in every store: files whose bytes the
 * collection holds (or an earlier file of the same request) are skipped naming that image, files that
 * cannot be used are failed with their code and a message naming the file as sent (never where it was
 * staged), each batch is kept in one transaction and made searchable before the next; the report lists
 * every file in the order sent. The staged files are gone when it returns or throws (kept, or removed).
 */
export async function addUploadsTo(
  keeper: UploadKeeper,
  embedder: () => Promise<Embedder>,
  uploads: Upload[],
  options: { onProgress?: (e: EmbedProgress | UploadProgress) => void; signal?: AbortSignal } = {},
): Promise<UploadReport> {
  try {
    return await embedAndKeep(keeper, await embedder(), uploads, options);
  } finally {
    await Promise.all(uploads.map((upload) => rm(upload.file, { force: true })));
  }
}

async function embedAndKeep(
  keeper: UploadKeeper,
  embedder: Embedder,
  uploads: Upload[],
  options: { onProgress?: (e: EmbedProgress | UploadProgress) => void; signal?: AbortSignal },
): Promise<UploadReport> {
  const outcomes: Outcome[] = new Array(uploads.length);
  const sha256s: string[] = [];
  for (const upload of uploads) sha256s.push(await fileSha256(upload.file));
  const holders = await keeper.holders([...new Set(sha256s)]);
  const indexOf = new Map<string, number>();
  const firstOf = new Map<string, number>();
  const todo: ImageToAdd[] = [];
  for (const [index, upload] of uploads.entries()) {
    const sha256 = sha256s[index]!;
    const holder = holders.get(sha256);
    const earlier = firstOf.get(sha256);
    if (holder !== undefined) outcomes[index] = alreadyThere(upload.name, holder);
    else if (earlier !== undefined)
      outcomes[index] = {
        kind: 'skipped',
        name: upload.name,
        reason: `the same bytes as ${JSON.stringify(uploads[earlier]!.name)}, sent with it`,
      };
    else {
      firstOf.set(sha256, index);
      indexOf.set(upload.file, index);
      todo.push({ path: upload.file, labels: upload.labels ?? [] });
    }
  }
  const failed = (index: number, error: RisError): Outcome => {
    const { name, file } = uploads[index]!;
    // A message names the staged file, or no file (the bytes were decoded): name the file as it was sent.
    const message = error.message.includes(file)
      ? error.message.split(file).join(name)
      : `${name}: ${error.message}`;
    return { kind: 'failed', name, code: error.code, message };
  };
  let done = uploads.length - todo.length;
  options.onProgress?.({ type: 'upload', done, total: uploads.length });
  const embedding = embedFiles(embedder, todo, {
    onProgress: options.onProgress,
    planes: keeper.keepsPlanes,
  });
  for await (const { files, failures } of embedding) {
    options.signal?.throwIfAborted();
    for (const { path, error } of failures) {
      const index = indexOf.get(path)!;
      outcomes[index] = failed(index, error);
    }
    if (files.length > 0) {
      const batch = files.map((file): UploadToKeep => {
        const upload = uploads[indexOf.get(file.image.path)!]!;
        return { upload, keptName: uploadFileName(upload.name, file.sha256, file.bytes), file };
      });
      const kept = await keeper.keep(batch);
      pausePoint('upload:committed');
      for (const [i, result] of kept.entries()) {
        const index = indexOf.get(batch[i]!.upload.file)!;
        const name = uploads[index]!.name;
        outcomes[index] =
          'id' in result
            ? { kind: 'added', id: result.id, name }
            : 'sameAs' in result
              ? alreadyThere(name, result.sameAs)
              : failed(index, result.error);
      }
      await keeper.update();
    }
    done += files.length + failures.length;
    options.onProgress?.({ type: 'upload', done, total: uploads.length });
  }
  const report: UploadReport = { added: [], skipped: [], failed: [] };
  for (const [i, outcome] of outcomes.entries()) {
    const index = uploads[i]!.index ?? i;
    if (outcome.kind === 'added') report.added.push({ index, id: outcome.id, name: outcome.name });
    else if (outcome.kind === 'skipped')
      report.skipped.push({ index, name: outcome.name, reason: outcome.reason });
    else report.failed.push({ index, name: outcome.name, code: outcome.code, message: outcome.message });
  }
  return report;
}

/** What a local collection's UploadKeeper works with. */
export interface LocalUploadTarget {
  db: CollectionDb;
  /** Where kept files go (made when needed). */
  uploadsDir: string;
  /** A file's path as the collection stores it. */
  storedPath(file: string): string;
  /** An image of the collection, in words for a report ("image 12 (cats/kitten.jpg)"). */
  describe(id: number): string;
  /** Brings the index up to date with what was committed. */
  update(): Promise<void>;
  /** The collection's folder, where the planes of kept images are appended (PlaneCache). */
  dir: string;
}

/**
 * A local collection keeps sent files in its uploads/ folder: each batch is synced, moved there and
 * committed under SQLite's write lock, so a kill leaves either both or an orphan file the next open removes.
 */
export function localUploadKeeper(target: LocalUploadTarget): UploadKeeper {
  return {
    keepsPlanes: true,
    holders: async (sha256s) => {
      const found = new Map<string, string>();
      for (const sha256 of sha256s) {
        const id = target.db.idOfSha(sha256);
        if (id !== undefined) found.set(sha256, target.describe(id));
      }
      return found;
    },
    keep: async (batch) => {
      await Promise.all(batch.map(({ upload }) => syncFile(upload.file)));
      mkdirSync(target.uploadsDir, { recursive: true });
      const now = new Date().toISOString();
      const kept = target.db.write((generation) => {
        const kept = batch.map(({ upload, keptName, file }): KeptUpload => {
          const same = target.db.idOfSha(file.sha256); // another process sent these bytes meanwhile
          if (same !== undefined) return { sameAs: target.describe(same) };
          const path = join(target.uploadsDir, keptName);
          renameSync(upload.file, path);
          const id = target.db.insert(
            {
              path: target.storedPath(path),
              labels: upload.labels ?? [],
              width: file.width,
              height: file.height,
              bytes: file.bytes.length,
              sha256: file.sha256,
              mtimeMs: file.mtimeMs,
              vector: new Uint8Array(file.vector.buffer, file.vector.byteOffset, file.vector.byteLength),
            },
            generation,
            now,
          );
          return id === undefined ? KEPT_ALREADY : { id };
        });
        syncFolder(target.uploadsDir);
        pausePoint('upload:moved'); // files in place, rows not committed: a kill here leaves orphans
        return kept;
      });
      await PlaneCache.append(target.dir, planeEntries(batch.map(({ file }) => file)));
      return kept;
    },
    update: () => target.update(),
  };
}

function alreadyThere(name: string, what: string): Outcome {
  return { kind: 'skipped', name, reason: `already in the collection: ${what} has the same bytes` };
}

async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
