import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import { create as contentDisposition } from 'content-disposition';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { secureHeaders } from 'hono/secure-headers';
import { z } from 'zod';
import type { ImageRecord } from '../collection/collection.ts';
import type { ImageCollection } from '../collection/store.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { ArgumentError, type ErrorCode, RequestError, RisError } from '../errors.ts';
import { SearchBatcher } from './batcher.ts';
import { experimentsRouter } from './experiments.ts';
import { exploreRouter } from './explore.ts';
import { fetchImage, type HostResolver, tooLarge } from './fetch-image.ts';
import { CollectionRegistry } from './registry.ts';

export interface ServerOptions {
  /** The collections to serve (or `registry`, whose collections can change while serving). */
  collections?: ImageCollection[];
  registry?: CollectionRegistry;
  /** Largest upload or fetched image, in bytes. Default 20 MB. */
  maxUploadBytes?: number;
  /** Searches waiting per collection before the server answers 503. Default 64. */
  maxQueue?: number;
  /** Tests only: URL search may reach loopback addresses (the tests serve their own images). */
  allowLoopbackUrls?: boolean;
  /** Tests only: how URL search resolves host names (default: the system resolver). */
  resolveHost?: HostResolver;
  /** The built web page (`npm run build:web`). Default: this package's web/dist. */
  webRoot?: string;
  /** Where the server says what happens (a client gone mid-upload, a failed background update). */
  log?: (line: string) => void;
  /** Largest collection an experiment may be started for from the page. Default 20,000 images. */
  experimentMaxImages?: number;
  /**
   * Looks for collections made or deleted since the start (when serving all of a store's collections);
   * given a name, resolves once that collection, if just found, has opened.
   */
  discover?: (name?: string) => Promise<void>;
}

export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../web/dist', import.meta.url));

// The page loads only its own code; previews of "Image URL" come from anywhere, hence img-src http(s).
const pageSecurity = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'self'"],
    imgSrc: ["'self'", 'blob:', 'data:', 'http:', 'https:'],
    mediaSrc: ["'self'", 'blob:'],
    objectSrc: ["'none'"],
    baseUri: ["'self'"],
    frameAncestors: ["'none'"],
  },
  permissionsPolicy: { camera: ['self'], microphone: [] },
});

/** HTTP status of every error code: the one place where library errors meet HTTP. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  DIMENSION_MISMATCH: 400,
  NON_FINITE_VALUE: 400,
  OUT_OF_RANGE: 400,
  TOO_FEW_TRAINING_VECTORS: 400,
  DUPLICATE_ID: 409,
  NOT_TRAINED: 409,
  ALREADY_TRAINED: 409,
  INCOMPATIBLE_INDEX: 409,
  NO_FILE_STORE: 500,
  PORT_IN_USE: 500,
  WORKER_FAILED: 500,
  CORRUPT_FILE: 500,
  TRUNCATED_FILE: 500,
  UNSUPPORTED_VERSION: 500,
  NOT_AN_INDEX_FILE: 500,
  WRONG_INDEX_KIND: 500,
  UNKNOWN_INDEX_KIND: 500,
  DISK_FULL: 507,
  IMAGE_NOT_FOUND: 404,
  IMAGE_UNREADABLE: 500,
  EMPTY_IMAGE: 400,
  UNSUPPORTED_IMAGE: 415,
  CORRUPT_IMAGE: 400,
  IMAGE_TOO_LARGE: 413,
  CROP_OUT_OF_BOUNDS: 400,
  UNKNOWN_MODEL: 503,
  MODEL_NOT_FOUND: 503,
  INVALID_MODEL: 503,
  DOWNLOAD_FAILED: 503,
  CHECKSUM_MISMATCH: 503,
  INFERENCE_FAILED: 503,
  COLLECTION_NOT_FOUND: 404,
  COLLECTION_EXISTS: 409,
  COLLECTION_BROKEN: 503,
  COLLECTION_BUSY: 503,
  COLLECTION_PREPARING: 503,
  DATABASE_UNREACHABLE: 503,
  DATABASE_AUTH_FAILED: 503,
  DATABASE_UNUSABLE: 503,
  MODEL_MISMATCH: 503,
  EMPTY_COLLECTION: 409,
  NO_IMAGES: 400,
  UNKNOWN_DATASET: 404,
  DATASET_FAILED: 502,
  URL_NOT_ALLOWED: 403,
  URL_FETCH_FAILED: 422,
  URL_TIMEOUT: 422,
  UPLOAD_TOO_LARGE: 413,
  NOT_FOUND: 404,
  BUSY: 503,
  RUN_FROM_CLI: 409,
  EXPERIMENT_RUNNING: 409,
  NO_PARTITIONS: 409,
  HNSW_UNAVAILABLE: 409,
};

export function statusFor(error: unknown): number {
  return error instanceof RisError ? HTTP_STATUS[error.code as ErrorCode] : 500;
}

/** Bad input caught by zod becomes an ArgumentError naming the field, so the table above covers it. */
function asRisError(error: unknown): unknown {
  if (error instanceof z.ZodError) {
    const issue = error.issues[0]!;
    return new ArgumentError(
      'INVALID_ARGUMENT',
      `Invalid ${issue.path.join('.') || 'request'}: ${issue.message}`,
    );
  }
  return error;
}

/** A client that went away mid-request: nothing to answer, nothing broken on our side. */
function clientGone(error: unknown, c: Context): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return (
    c.req.raw.signal.aborted ||
    code === 'ECONNRESET' ||
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    (error instanceof Error && /^(aborted|request aborted)$/i.test(error.message))
  );
}

const cropSchema = z.object({
  left: z.coerce.number().int().min(0),
  top: z.coerce.number().int().min(0),
  width: z.coerce.number().int().min(1),
  height: z.coerce.number().int().min(1),
});
const searchOptions = z.object({
  k: z.coerce.number().int().min(1).max(50).default(5),
  nprobes: z.coerce.number().int().min(1).max(4096).optional(),
  efSearch: z.coerce.number().int().min(1).max(4096).optional(),
  crop: cropSchema.optional(),
});
const pageQuery = z.object({
  count: z.coerce.number().int().min(1).max(100).default(20),
  page: z.coerce.number().int().min(0).default(0),
  seed: z.coerce
    .number()
    .int()
    .min(0)
    .max(2 ** 31)
    .default(1),
});

/** A multipart `crop` field: JSON {"left","top","width","height"}, or x,y,width,height as the CLI takes it. */
function parseCropField(value: unknown): unknown {
  if (typeof value !== 'string') return undefined;
  const parts = value.split(',');
  if (parts.length === 4 && !value.trim().startsWith('{')) {
    const [left, top, width, height] = parts;
    return { left, top, width, height };
  }
  try {
    return JSON.parse(value);
  } catch {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Invalid crop: expected {"left","top","width","height"} in JSON or x,y,width,height in pixels but received "${value.slice(0, 60)}"`,
    );
  }
}

const MIME: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.avif': 'image/avif',
};

/**
 * The query of a search-like request: a multipart upload (field "image", with k, nprobes, efSearch, crop), or JSON
 * with a public `url` (fetched safely) or the `id` of an image of the collection. Options are checked;
 * `extra` adds the fields a route takes besides k, nprobes and crop.
 */
export async function readSearchRequest<Extra extends z.ZodRawShape = Record<never, never>>(
  c: Context,
  col: ImageCollection,
  limits: { maxBytes: number; allowLoopbackUrls?: boolean; resolveHost?: HostResolver },
  extra?: Extra,
): Promise<{ input: ImageInput; options: z.infer<typeof searchOptions> & z.infer<z.ZodObject<Extra>> }> {
  const schema = extra ? searchOptions.extend(extra) : searchOptions;
  const type = c.req.header('content-type') ?? '';
  if (type.startsWith('multipart/form-data')) {
    const form = await c.req.parseBody();
    const file = form.image;
    if (!(file instanceof File))
      throw new ArgumentError('INVALID_ARGUMENT', 'Send the image in a multipart field named "image"');
    if (file.size > limits.maxBytes) throw tooLarge(limits.maxBytes);
    const fields = Object.fromEntries(
      Object.entries(form).filter(([key]) => key !== 'image' && key !== 'crop'),
    );
    const options = schema.parse({ ...fields, crop: parseCropField(form.crop) });
    return { input: Buffer.from(await file.arrayBuffer()), options: options as never };
  }
  const text = await c.req.text();
  let json: unknown = {};
  if (text.trim() !== '') {
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `The request body is not valid JSON (${(error as Error).message}); send {"url": "…"} or {"id": …}, or upload the image as multipart field "image"`,
      );
    }
  }
  const body = schema
    .extend({ url: z.string().max(2048).optional(), id: z.coerce.number().int().min(0).optional() })
    .parse(json);
  let input: ImageInput;
  if (body.url !== undefined)
    input = await fetchImage(body.url, {
      maxBytes: limits.maxBytes,
      allowLoopback: limits.allowLoopbackUrls,
      resolve: limits.resolveHost,
    });
  else if (body.id !== undefined) {
    const record = await col.get(body.id);
    if (!record) throw new RequestError('NOT_FOUND', `No image ${body.id} in ${col.name}`);
    input = await col.readImage(record);
  } else
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      'Send an image upload (multipart field "image"), or JSON with "url" or "id"',
    );
  return { input, options: body as never };
}

/** The ris HTTP API over opened collections. The app is separate from `listen`, so tests call it directly. */
export function createApp(options: ServerOptions): Hono {
  const maxBytes = options.maxUploadBytes ?? 20_000_000;
  const registry = options.registry ?? CollectionRegistry.of(options.collections ?? []);
  const log = options.log ?? ((line: string) => console.error(line));
  const batchers = new WeakMap<ImageCollection, SearchBatcher>();
  const batcher = (col: ImageCollection) => {
    let found = batchers.get(col);
    if (!found) {
      found = new SearchBatcher(col, options.maxQueue ?? 64);
      batchers.set(col, found);
    }
    return found;
  };
  const app = new Hono();
  /** A query image as the collection's model sees it; queries that arrive together share a forward pass. */
  const embedQuery = (col: ImageCollection, input: ImageInput, crop: CropBox | undefined) =>
    batcher(col).embed(input, crop);

  /** The collection a request names, caught up in the background with what other processes changed. */
  const collection = (c: Context): ImageCollection => {
    const col = registry.require(c.req.param('name')!);
    col.refresh().catch((error: unknown) => log(`updating ${col.name} failed: ${(error as Error).message}`));
    return col;
  };
  const image = async (col: ImageCollection, idText: string | number | undefined): Promise<ImageRecord> => {
    const id = Number(idText);
    const record = Number.isInteger(id) && id >= 0 ? await col.get(id) : undefined;
    if (!record) throw new RequestError('NOT_FOUND', `No image ${idText} in ${col.name}`);
    return record;
  };
  // The content hash is in the URL: a removed image's id never shows another picture from a cache.
  const links = (name: string, record: { id: number; sha256: string }) => {
    const base = `/api/collections/${encodeURIComponent(name)}`;
    const version = record.sha256.slice(0, 16);
    return {
      imageUrl: `${base}/images/${record.id}?v=${version}`,
      thumbnailUrl: `${base}/thumbnails/${record.id}?v=${version}`,
    };
  };
  /** Cache headers by content: immutable under the URL that names its hash, revalidated by ETag otherwise. */
  const cacheByContent = (c: Context, record: ImageRecord, variant: string): boolean => {
    const etag = `"${record.sha256.slice(0, 32)}-${variant}"`;
    c.header('ETag', etag);
    c.header(
      'Cache-Control',
      c.req.query('v') === record.sha256.slice(0, 16) ? 'public, max-age=31536000, immutable' : 'no-cache',
    );
    return (
      c.req
        .header('if-none-match')
        ?.split(/\s*,\s*/)
        .includes(etag) ?? false
    );
  };

  // API answers are never sniffed into another type (an image file holding HTML stays an image); other
  // origins may still show the images, so no Cross-Origin-Resource-Policy here.
  app.use('/api/*', secureHeaders({ crossOriginResourcePolicy: false, crossOriginOpenerPolicy: false }));

  app.onError((thrown, c) => {
    if (clientGone(thrown, c)) {
      log(`client closed the connection during ${c.req.method} ${c.req.path}`);
      return c.body(null, 499 as 400);
    }
    const error = asRisError(thrown);
    const status = statusFor(error);
    const body =
      error instanceof RisError
        ? { ...error.details, code: error.code, message: error.message }
        : { code: 'INTERNAL', message: 'Internal error' };
    if (status === 503) c.header('Retry-After', '1');
    if (!(error instanceof RisError)) console.error(error);
    return c.json({ error: body }, status as 400);
  });
  app.notFound((c) =>
    c.json({ error: { code: 'NOT_FOUND', message: `No route ${c.req.method} ${c.req.path}` } }, 404),
  );

  app.get('/api/health', (c) =>
    c.json({
      status: 'ok',
      collections: registry.ready().length,
      staleHitsDropped: registry.ready().reduce((sum, col) => sum + col.staleHitsDropped, 0),
    }),
  );

  // Every request for one collection first follows the store: a collection made or deleted by another
  // process is answered (or refused) without waiting for someone to list them.
  const follow = async (c: Context, next: () => Promise<void>) => {
    await options
      .discover?.(c.req.param('name'))
      .catch((error: Error) => log(`listing the collections failed: ${error.message}`));
    await next();
  };
  app.use('/api/collections/:name', follow);
  app.use('/api/collections/:name/*', follow);

  app.get('/api/collections', async (c) => {
    await options
      .discover?.()
      .catch((error: Error) => log(`listing the collections failed: ${error.message}`));
    const list = [];
    for (const entry of registry.list()) {
      if (entry.state !== 'ready') {
        list.push(
          entry.state === 'preparing'
            ? { name: entry.name, state: entry.state, ...entry.preparation }
            : { name: entry.name, state: entry.state, reason: entry.reason },
        );
        continue;
      }
      const col = entry.collection;
      col.refresh().catch(() => undefined);
      const status = await col.status();
      list.push({
        name: col.name,
        state: 'ready',
        model: col.manifest.model,
        modelId: col.manifest.modelId,
        size: await col.count(),
        labels: await col.labels(),
        // What searches use now: it follows the database (generation) as other processes change it.
        index: { kind: status.kind, indexed: status.indexed, generation: status.generation },
      });
    }
    return c.json(list);
  });

  // Random images of a collection, seeded: page after page without repeats (examples and the gallery).
  const randomPage = async (c: Context) => {
    const col = collection(c);
    const { count, page, seed } = pageQuery.parse(c.req.query());
    const { total, images } = await col.sample(seed, page, count);
    return c.json({
      seed,
      page,
      total,
      hasMore: (page + 1) * count < total,
      images: images.map((record) => ({
        id: record.id,
        labels: record.labels,
        width: record.width,
        height: record.height,
        ...links(col.name, record),
      })),
    });
  };
  app.get('/api/collections/:name/examples', randomPage);
  app.get('/api/collections/:name/gallery', randomPage);

  app.get('/api/collections/:name/images/:id', async (c) => {
    const col = collection(c);
    const record = await image(col, c.req.param('id'));
    if (cacheByContent(c, record, 'image')) return c.body(null, 304);
    const bytes = await col.readImage(record);
    c.header('Content-Type', MIME[extname(record.path).toLowerCase()] ?? 'application/octet-stream');
    c.header('Content-Disposition', contentDisposition(record.path.split('/').pop()!, { type: 'inline' }));
    return c.body(new Uint8Array(bytes));
  });

  app.get('/api/collections/:name/thumbnails/:id', async (c) => {
    const col = collection(c);
    const record = await image(col, c.req.param('id'));
    if (cacheByContent(c, record, 'thumbnail')) return c.body(null, 304);
    const bytes = await col.thumbnail(record);
    c.header('Content-Type', 'image/webp');
    return c.body(new Uint8Array(bytes));
  });

  app.post(
    '/api/collections/:name/search',
    bodyLimit({ maxSize: maxBytes + 64 * 1024, onError: () => Promise.reject(tooLarge(maxBytes)) }),
    async (c) => {
      const col = collection(c);
      const started = performance.now();
      const { input, options: parsed } = await readSearchRequest(c, col, {
        maxBytes,
        allowLoopbackUrls: options.allowLoopbackUrls,
        resolveHost: options.resolveHost,
      });
      const vector = await embedQuery(col, input, parsed.crop);
      const hits = await col.searchVector(vector, {
        k: parsed.k,
        nprobes: parsed.nprobes,
        efSearch: parsed.efSearch,
      });
      return c.json({
        collection: col.name,
        timeMs: performance.now() - started,
        results: hits.map((hit, i) => ({
          rank: i + 1,
          id: hit.id,
          labels: hit.labels,
          distance: hit.distance,
          similarity: hit.similarity,
          width: hit.width,
          height: hit.height,
          ...links(col.name, hit),
        })),
      });
    },
  );

  app.route(
    '/',
    experimentsRouter({
      collection: (name) => registry.require(name),
      maxImages: options.experimentMaxImages,
    }),
  );
  app.route(
    '/',
    exploreRouter({
      ...options,
      collection: (name) => registry.require(name),
      embed: embedQuery,
      maxBytes,
      log,
    }),
  );

  // The web page. API paths never reach here: their 404 is JSON (above), the page's is a note.
  const webRoot = options.webRoot ?? DEFAULT_WEB_ROOT;
  app.use('/*', pageSecurity);
  app.use('/assets/*', async (c, next) => {
    await next();
    // Vite names assets by content hash, so they never change under their name.
    if (c.res.ok) c.header('Cache-Control', 'public, max-age=31536000, immutable');
  });
  if (existsSync(webRoot)) app.use('/*', serveStatic({ root: webRoot }));
  app.get('/', (c) =>
    c.html(
      '<!doctype html><title>ris</title><p>The web page is not built. Run <code>npm run build:web</code> ' +
        '(npm install does it), then reload. The API is at <a href="/api/collections">/api</a>.</p>',
      503,
    ),
  );

  return app;
}
