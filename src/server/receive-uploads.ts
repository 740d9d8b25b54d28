import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import busboy from 'busboy';
import type { Context } from 'hono';
import { STAGING_DIR, stagingPath, type Upload } from '../collection/uploads.ts';
import { ArgumentError, type ErrorCode, RequestError, RisError } from '../errors.ts';
import { fetchImage, formatBytes, type HostResolver } from './fetch-image.ts';

/** How much one request may send to a collection. */
export interface UploadLimits {
  /** Files per request. Default 100. */
  maxFiles: number;
  /** Bytes per request, all files together. Default 200 MB. */
  maxBytes: number;
  /** Largest image, sent or fetched from a URL (a larger one fails on its own, the others go on). */
  maxFileBytes: number;
  allowLoopbackUrls?: boolean;
  resolveHost?: HostResolver;
}

/** What a request sent: the files staged on disk, in order, and those refused on arrival. */
export interface Received {
  uploads: Upload[];
  /** Files that could not be received (a URL that cannot be fetched), with their position. */
  failed: { index: number; name: string; code: ErrorCode | 'INTERNAL'; message: string }[];
  label?: string;
}

/** A label: 1 to 100 characters, none of them a control character. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const LABEL = /^[^\u0000-\u001f\u007f]{1,100}$/;

/**
 * Reads the files of POST …/images into the collection's staging folder as they arrive: a multipart
 * body (fields "image", one or more, and an optional "label"), or JSON `{ "urls": [...], "label"? }`
 * whose images are fetched as URL search fetches them (public addresses only, size-capped). Past
 * `maxFiles` files or `maxBytes` bytes the request is refused (413) and what arrived is removed.
 */
export async function receiveUploads(c: Context, dir: string, limits: UploadLimits): Promise<Received> {
  await mkdir(join(dir, STAGING_DIR), { recursive: true });
  const type = c.req.header('content-type') ?? '';
  const length = Number(c.req.header('content-length') ?? 0);
  if (length > limits.maxBytes + 1024 * 1024) throw tooMuch(limits);
  if (/^multipart\/form-data/i.test(type)) return receiveMultipart(c, dir, type, limits);
  if (/^application\/json/i.test(type)) return receiveUrls(c, dir, limits);
  throw new RequestError(
    'UNSUPPORTED_CONTENT_TYPE',
    `Send images as multipart/form-data (fields "image") or JSON {"urls": [...]}, not ${JSON.stringify(type.slice(0, 60) || 'no content type')}`,
  );
}

function tooMuch(limits: UploadLimits): RequestError {
  return new RequestError(
    'UPLOAD_TOO_LARGE',
    `One request takes at most ${limits.maxFiles} files and ${Math.round(limits.maxBytes / 1e6)} MB; send the rest in another`,
  );
}

/** After a refusal the rest of the body is read and dropped up to this much, so the client hears why. */
const DRAIN_BYTES = 16 * 1024 * 1024;

async function receiveMultipart(
  c: Context,
  dir: string,
  type: string,
  limits: UploadLimits,
): Promise<Received> {
  let parser: busboy.Busboy;
  try {
    parser = busboy({
      headers: { 'content-type': type },
      // Browsers send file names in UTF-8 (busboy's default for parameters is latin1).
      defParamCharset: 'utf8',
      limits: { fields: 20, fieldSize: 4096, parts: limits.maxFiles + 21, fileSize: limits.maxFileBytes },
    });
  } catch (error) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `The multipart body cannot be read: ${(error as Error).message}`,
    );
  }
  const uploads: Upload[] = [];
  /** Files over maxFileBytes: cut off by busboy, dropped, and reported on their own. */
  const oversized = new Set<Upload>();
  const writes: Promise<void>[] = [];
  let label: string | undefined;
  let total = 0;
  let refused: RisError | undefined;
  const input = Readable.fromWeb(c.req.raw.body as WebReadableStream);
  // Once refused, files are no longer written: the body is read to its end (up to DRAIN_BYTES more) and
  // dropped, so the client gets the answer instead of a connection closed under it.
  const refuse = (error: RisError) => {
    refused ??= error;
  };
  parser.on('file', (field, stream, info) => {
    if (refused) return stream.resume();
    if (field !== 'image') {
      stream.resume();
      return refuse(
        new ArgumentError(
          'INVALID_ARGUMENT',
          `Send images in multipart fields named "image", not "${field.slice(0, 40)}"`,
        ),
      );
    }
    if (uploads.length === limits.maxFiles) {
      stream.resume();
      return refuse(tooMuch(limits));
    }
    const file = stagingPath(dir);
    const upload = { name: (info.filename ?? '').normalize('NFC') || `image ${uploads.length + 1}`, file };
    uploads.push(upload);
    stream.on('limit', () => oversized.add(upload));
    const out = createWriteStream(file);
    writes.push(
      new Promise<void>((resolve, reject) => {
        out.on('finish', resolve);
        out.on('error', reject);
      }),
    );
    stream.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > limits.maxBytes) refuse(tooMuch(limits));
      if (refused) return;
      if (!out.write(chunk)) {
        stream.pause();
        out.once('drain', () => stream.resume());
      }
    });
    stream.on('end', () => out.end());
    stream.on('error', (error: Error) => out.destroy(error));
  });
  parser.on('field', (field, value) => {
    if (field === 'label') {
      if (!LABEL.test(value))
        refuse(new ArgumentError('INVALID_ARGUMENT', 'Expected a label of 1 to 100 printable characters'));
      label = value;
    }
  });
  parser.on('partsLimit', () => refuse(tooMuch(limits)));
  parser.on('fieldsLimit', () => refuse(new ArgumentError('INVALID_ARGUMENT', 'Too many form fields')));
  let drained = 0;
  input.on('data', (chunk: Buffer) => {
    if (!refused) return;
    drained += chunk.length;
    if (drained > DRAIN_BYTES) input.destroy(refused);
  });
  try {
    if (!c.req.raw.body)
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        'The request has no body; send images in multipart fields "image"',
      );
    await pipeline(input, parser).catch((error: Error) => {
      if (!refused) throw wrap(error);
    });
    await Promise.all(writes).catch((error: Error) => {
      if (!refused) throw wrap(error);
    });
    if (refused) throw refused;
    if (uploads.length === 0)
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        'No images in the request; send them in multipart fields named "image"',
      );
  } catch (error) {
    await Promise.all(writes.map((w) => w.catch(() => undefined)));
    await Promise.all(uploads.map((u) => rm(u.file, { force: true })));
    throw error;
  }
  const labels = label === undefined ? undefined : [label];
  const received: Received = { uploads: [], failed: [], label };
  for (const [index, upload] of uploads.entries()) {
    if (!oversized.has(upload)) {
      received.uploads.push({ ...upload, index, labels });
      continue;
    }
    await rm(upload.file, { force: true });
    received.failed.push({ index, name: upload.name, ...fileTooLarge(limits) });
  }
  return received;
}

function fileTooLarge(limits: UploadLimits): { code: ErrorCode; message: string } {
  return {
    code: 'IMAGE_TOO_LARGE',
    message: `The image is over ${formatBytes(limits.maxFileBytes)}, the most this server takes per image`,
  };
}

/** A broken multipart body (no boundary, a wrong one, cut short) is the client's: 400 with the reason. */
function wrap(error: Error): RisError {
  if (error instanceof RisError) return error;
  return new ArgumentError('INVALID_ARGUMENT', `The multipart body cannot be read: ${error.message}`);
}

async function receiveUrls(c: Context, dir: string, limits: UploadLimits): Promise<Received> {
  let json: unknown;
  try {
    json = JSON.parse(await c.req.text());
  } catch (error) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `The request body is not valid JSON (${(error as Error).message}); send {"urls": [...]}`,
    );
  }
  const body = json as { urls?: unknown; label?: unknown };
  const unknownKey =
    body && typeof body === 'object'
      ? Object.keys(body).find((k) => k !== 'urls' && k !== 'label')
      : undefined;
  if (unknownKey !== undefined)
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Unknown field "${unknownKey.slice(0, 40)}"; send {"urls": [...], "label"?: "…"}`,
    );
  if (
    !Array.isArray(body?.urls) ||
    body.urls.length === 0 ||
    body.urls.some((u) => typeof u !== 'string' || u.length > 2048)
  )
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      'Expected {"urls": ["https://…", …]}: 1 or more URLs of at most 2048 characters',
    );
  if (body.urls.length > limits.maxFiles) throw tooMuch(limits);
  if (body.label !== undefined && (typeof body.label !== 'string' || !LABEL.test(body.label)))
    throw new ArgumentError('INVALID_ARGUMENT', 'Expected a label of 1 to 100 printable characters');
  const labels = body.label === undefined ? undefined : [body.label as string];
  const received: Received = { uploads: [], failed: [], label: body.label as string | undefined };
  let total = 0;
  const signal = c.req.raw.signal;
  const dropReceived = () => Promise.all(received.uploads.map((u) => rm(u.file, { force: true })));
  for (const [index, url] of (body.urls as string[]).entries()) {
    // A client that went away gets nothing more fetched for it.
    if (signal.aborted) {
      await dropReceived();
      throw new RequestError('BUSY', 'The request was cancelled by its client');
    }
    const name = urlName(url);
    let bytes: Buffer;
    try {
      bytes = await fetchImage(url, {
        maxBytes: limits.maxFileBytes,
        allowLoopback: limits.allowLoopbackUrls,
        resolve: limits.resolveHost,
        signal,
      });
    } catch (error) {
      const one =
        error instanceof RequestError && error.code === 'UPLOAD_TOO_LARGE'
          ? fileTooLarge(limits) // this image, not the request: the others go on
          : {
              code: error instanceof RisError ? error.code : ('INTERNAL' as const),
              message: error instanceof RisError ? error.message : 'The image could not be fetched',
            };
      received.failed.push({ index, name, ...one });
      continue;
    }
    total += bytes.length;
    if (total > limits.maxBytes) {
      await dropReceived();
      throw tooMuch(limits);
    }
    const file = stagingPath(dir);
    await pipeline(Readable.from([bytes]), createWriteStream(file));
    received.uploads.push({ name, file, index, labels });
  }
  return received;
}

/** A file name for an image fetched from `url`: its last path segment, else the host. */
function urlName(url: string): string {
  try {
    const parsed = new URL(url);
    const last = decodeURIComponent(parsed.pathname.split('/').filter(Boolean).pop() ?? '');
    return last || parsed.hostname;
  } catch {
    return url.slice(0, 100);
  }
}
