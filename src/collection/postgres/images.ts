import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { fetch } from 'undici';
import { ImageError } from '../../errors.ts';
import { checkIndexedBytes, readIndexedFile } from '../image-file.ts';
import type { ImageRecord } from '../types.ts';

/** Largest image file read from an images URL. */
const MAX_IMAGE_BYTES = 100_000_000;
const FETCH_TIMEOUT_MS = 30_000;

/**
 * Where the files of a collection's images are: the root folder (paths are stored relative to it; every
 * machine that embeds or serves originals mounts it at the same place), and optionally an http(s) base URL
 * the same relative paths are found under, for machines without the mount. A file is read from the root
 * when it is there, else from the URL.
 */
export class ImageSource {
  constructor(
    readonly root: string,
    readonly url: string | undefined,
  ) {}

  /** Where an image is: its file under the root, or (with no such file here) its URL. */
  locate(path: string): string {
    return isAbsolute(path) ? path : join(this.root, path);
  }

  urlOf(path: string): string | undefined {
    if (!this.url || isAbsolute(path)) return undefined;
    const base = this.url.endsWith('/') ? this.url : `${this.url}/`;
    return new URL(path.split('/').map(encodeURIComponent).join('/'), base).toString();
  }

  /**
   * The bytes of the image stored under `path` (for messages: `what`, such as "image 17"), with its file's
   * mtime (what a rescan compares; null when it came from the URL).
   */
  async read(
    path: string,
    what: string,
    collection: string,
  ): Promise<{ bytes: Buffer; mtimeMs: number | null }> {
    const file = this.locate(path);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(file);
    } catch (error) {
      const url = this.urlOf(path);
      if (url) return { bytes: await fetchImageFile(url, what), mtimeMs: null };
      throw fileError(error as NodeJS.ErrnoException, file, what, collection);
    }
    try {
      // The time of the very file read (one handle): a file replaced meanwhile cannot lend it its time.
      const { mtimeMs } = await handle.stat();
      return { bytes: await handle.readFile(), mtimeMs };
    } catch (error) {
      throw fileError(error as NodeJS.ErrnoException, file, what, collection);
    } finally {
      await handle.close();
    }
  }

  /**
   * The bytes of a stored image, while they are the ones indexed (readIndexedFile): from its file here,
   * or else from its URL, checked the same way.
   */
  async readIndexed(record: ImageRecord, collection: string): Promise<Buffer> {
    const file = this.locate(record.path);
    const url = this.urlOf(record.path);
    const reindex = `ris remove ${collection} ${record.id}, then ris add ${collection} with the file`;
    if (!url || existsSync(file)) return readIndexedFile(file, record, collection, reindex);
    const bytes = await fetchImageFile(url, `image ${record.id}`);
    checkIndexedBytes(bytes, url, record, collection, reindex);
    return bytes;
  }
}

function fileError(error: NodeJS.ErrnoException, file: string, what: string, collection: string): ImageError {
  if (error.code === 'ENOENT' || error.code === 'ENOTDIR')
    return new ImageError(
      'IMAGE_NOT_FOUND',
      `The file of ${what} is gone: ${file} (collection "${collection}"); put it back, mount the images folder at the same place on this machine, or give the collection an images URL`,
    );
  return new ImageError(
    'IMAGE_UNREADABLE',
    `The file of ${what} cannot be read: ${file} (${error.code ?? error.message})`,
  );
}

async function fetchImageFile(url: string, what: string): Promise<Buffer> {
  let response: Awaited<ReturnType<typeof fetch>>;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'follow' });
  } catch (error) {
    throw new ImageError(
      'IMAGE_UNREADABLE',
      `The file of ${what} cannot be fetched from ${url} (${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message})`,
    );
  }
  if (response.status === 404 || response.status === 410) {
    await response.body?.cancel();
    throw new ImageError('IMAGE_NOT_FOUND', `The file of ${what} is gone: ${url} answers ${response.status}`);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new ImageError(
      'IMAGE_UNREADABLE',
      `The file of ${what} cannot be fetched: ${url} answers ${response.status}`,
    );
  }
  const length = Number(response.headers.get('content-length') ?? 0);
  if (length > MAX_IMAGE_BYTES) {
    await response.body?.cancel();
    throw new ImageError(
      'IMAGE_TOO_LARGE',
      `The file of ${what} at ${url} is ${length} bytes, over ${MAX_IMAGE_BYTES}`,
    );
  }
  const bytes = Buffer.from(await response.arrayBuffer());
  if (bytes.length > MAX_IMAGE_BYTES)
    throw new ImageError('IMAGE_TOO_LARGE', `The file of ${what} at ${url} is over ${MAX_IMAGE_BYTES} bytes`);
  return bytes;
}
