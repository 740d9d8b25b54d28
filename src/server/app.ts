import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { secureHeaders } from 'hono/secure-headers';
import sharp from 'sharp';
import { z } from 'zod';
import { Random } from '../ann/random.ts';
import type { Collection } from '../collection/collection.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { ArgumentError, RequestError, RisError } from '../errors.ts';
import { SearchBatcher } from './batcher.ts';
import { fetchImage, tooLarge } from './fetch-image.ts';

export interface ServerOptions {
  collections: Collection[];
  /** Largest upload or fetched image, in bytes. Default 20 MB. */
  maxUploadBytes?: number;
  /** Searches waiting per collection before the server answers 503. Default 64. */
  maxQueue?: number;
  /** Tests only: URL search may reach loopback addresses (the tests serve their own images). */
  allowLoopbackUrls?: boolean;
  /** The built web page (`npm run build:web`). Default: this package's web/dist. */
  webRoot?: string;
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

/** HTTP status of each error code: the one place where library errors meet HTTP. */
export function statusFor(error: unknown): number {
  if (!(error instanceof RisError)) return 500;
  switch (error.code) {
    case 'INVALID_ARGUMENT':
    case 'OUT_OF_RANGE':
    case 'DIMENSION_MISMATCH':
    case 'CROP_OUT_OF_BOUNDS':
    case 'EMPTY_IMAGE':
    case 'CORRUPT_IMAGE':
      return 400;
    case 'URL_NOT_ALLOWED':
      return 403;
    case 'COLLECTION_NOT_FOUND':
    case 'NOT_FOUND':
      return 404;
    case 'EMPTY_COLLECTION':
      return 409;
    case 'UPLOAD_TOO_LARGE':
    case 'IMAGE_TOO_LARGE':
      return 413;
    case 'UNSUPPORTED_IMAGE':
      return 415;
    case 'URL_FETCH_FAILED':
      return 422;
    case 'BUSY':
      return 503;
    default:
      return 500;
  }
}

/** Bad input caught by zod or JSON parsing becomes an ArgumentError, so the mapping above covers it. */
function asRisError(error: unknown): unknown {
  if (error instanceof z.ZodError) {
    const issue = error.issues[0]!;
    return new ArgumentError(
      'INVALID_ARGUMENT',
      `Invalid ${issue.path.join('.') || 'request'}: ${issue.message}`,
    );
  }
  if (error instanceof SyntaxError)
    return new ArgumentError('INVALID_ARGUMENT', `Invalid JSON: ${error.message}`);
  return error;
}

const searchOptions = z.object({
  k: z.coerce.number().int().min(1).max(50).default(5),
  nprobes: z.coerce.number().int().min(1).max(4096).optional(),
  crop: z
    .object({
      left: z.coerce.number().int().min(0),
      top: z.coerce.number().int().min(0),
      width: z.coerce.number().int().min(1),
      height: z.coerce.number().int().min(1),
    })
    .optional(),
});
const searchJson = searchOptions.extend({
  url: z.string().max(2048).optional(),
  id: z.coerce.number().int().min(0).optional(),
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

/** The ris HTTP API over opened collections. The app is separate from `listen`, so tests call it directly. */
export function createApp(options: ServerOptions): Hono {
  const maxBytes = options.maxUploadBytes ?? 20_000_000;
  const byName = new Map(options.collections.map((c) => [c.name, c]));
  const batchers = new Map(
    options.collections.map((c) => [c.name, new SearchBatcher(c, options.maxQueue ?? 64)]),
  );
  const app = new Hono();

  const collection = (c: Context): Collection => {
    const name = c.req.param('name')!;
    const found = byName.get(name);
    if (!found)
      throw new RequestError(
        'COLLECTION_NOT_FOUND',
        `No collection "${name}" is served here; GET /api/collections lists them`,
      );
    return found;
  };
  const image = (col: Collection, idText: string | number | undefined) => {
    const id = Number(idText);
    const record = Number.isInteger(id) && id >= 0 ? col.get(id) : undefined;
    if (!record) throw new RequestError('NOT_FOUND', `No image ${idText} in ${col.name}`);
    return record;
  };
  const links = (name: string, id: number) => ({
    imageUrl: `/api/collections/${encodeURIComponent(name)}/images/${id}`,
    thumbnailUrl: `/api/collections/${encodeURIComponent(name)}/thumbnails/${id}`,
  });

  // API answers are never sniffed into another type (an image file holding HTML stays an image); other
  // origins may still show the images, so no Cross-Origin-Resource-Policy here.
  app.use('/api/*', secureHeaders({ crossOriginResourcePolicy: false, crossOriginOpenerPolicy: false }));

  app.onError((thrown, c) => {
    const error = asRisError(thrown);
    const status = statusFor(error);
    const body =
      error instanceof RisError
        ? { code: error.code, message: error.message }
        : { code: 'INTERNAL', message: 'Internal error' };
    if (status === 503) c.header('Retry-After', '1');
    if (status === 500 && !(error instanceof RisError)) console.error(error);
    return c.json({ error: body }, status as 400);
  });
  app.notFound((c) =>
    c.json({ error: { code: 'NOT_FOUND', message: `No route ${c.req.method} ${c.req.path}` } }, 404),
  );

  app.get('/api/health', (c) => c.json({ status: 'ok', collections: byName.size }));

  app.get('/api/collections', (c) =>
    c.json(
      [...byName.values()].map((col) => ({
        name: col.name,
        model: col.manifest.model,
        modelId: col.manifest.modelId,
        size: col.size,
        labels: col.labels(),
      })),
    ),
  );

  // Random images of a collection, seeded: page after page without repeats (examples and the gallery).
  const randomPage = (c: Context) => {
    const col = collection(c);
    const { count, page, seed } = pageQuery.parse(c.req.query());
    const ids = col.allIds();
    const order = new Random(seed).sample(ids.length, ids.length);
    const slice = order.subarray(page * count, (page + 1) * count);
    return c.json({
      seed,
      page,
      total: ids.length,
      hasMore: (page + 1) * count < ids.length,
      images: Array.from(slice, (i) => {
        const record = col.get(ids[i]!)!;
        return {
          id: record.id,
          labels: record.labels,
          width: record.width,
          height: record.height,
          ...links(col.name, record.id),
        };
      }),
    });
  };
  app.get('/api/collections/:name/examples', randomPage);
  app.get('/api/collections/:name/gallery', randomPage);

  app.get('/api/collections/:name/images/:id', async (c) => {
    const col = collection(c);
    const record = image(col, c.req.param('id'));
    const bytes = await readFile(record.absolutePath).catch(() => {
      throw new RequestError('NOT_FOUND', `The file of image ${record.id} is gone from ${col.manifest.root}`);
    });
    c.header('Content-Type', MIME[extname(record.path).toLowerCase()] ?? 'application/octet-stream');
    c.header('Cache-Control', 'public, max-age=86400');
    c.header('Content-Disposition', `inline; filename="${record.path.split('/').pop()!.replace(/"/g, '')}"`);
    return c.body(new Uint8Array(bytes));
  });

  app.get('/api/collections/:name/thumbnails/:id', async (c) => {
    const col = collection(c);
    const record = image(col, c.req.param('id'));
    const dir = join(col.dir, 'thumbnails');
    const file = join(dir, `${record.id}-${record.sha256.slice(0, 12)}.webp`);
    let bytes: Buffer;
    if (existsSync(file)) bytes = await readFile(file);
    else {
      bytes = await sharp(record.absolutePath)
        .rotate()
        .resize(256, 256, { fit: 'inside', withoutEnlargement: true })
        .webp({ quality: 80 })
        .toBuffer();
      await mkdir(dir, { recursive: true });
      await writeFile(file, bytes);
    }
    c.header('Content-Type', 'image/webp');
    c.header('Cache-Control', 'public, max-age=86400');
    return c.body(new Uint8Array(bytes));
  });

  app.post(
    '/api/collections/:name/search',
    bodyLimit({ maxSize: maxBytes + 64 * 1024, onError: () => Promise.reject(tooLarge(maxBytes)) }),
    async (c) => {
      const col = collection(c);
      const started = performance.now();
      const type = c.req.header('content-type') ?? '';
      let input: ImageInput;
      let parsed: z.infer<typeof searchOptions>;
      if (type.startsWith('multipart/form-data')) {
        const form = await c.req.parseBody();
        const file = form.image;
        if (!(file instanceof File))
          throw new RequestError('INVALID_ARGUMENT', 'Send the image in a multipart field named "image"');
        if (file.size > maxBytes) throw tooLarge(maxBytes);
        parsed = searchOptions.parse({
          k: form.k,
          nprobes: form.nprobes,
          crop: typeof form.crop === 'string' ? JSON.parse(form.crop) : undefined,
        });
        input = Buffer.from(await file.arrayBuffer());
      } else {
        const body = searchJson.parse(await c.req.json().catch(() => ({})));
        parsed = body;
        if (body.url !== undefined)
          input = await fetchImage(body.url, { maxBytes, allowLoopback: options.allowLoopbackUrls });
        else if (body.id !== undefined) input = image(col, body.id).absolutePath;
        else
          throw new RequestError(
            'INVALID_ARGUMENT',
            'Send an image upload (multipart field "image"), or JSON with "url" or "id"',
          );
      }
      const vector = await batchers.get(col.name)!.embed(input, parsed.crop as CropBox | undefined);
      const hits = col.searchVector(vector, { k: parsed.k, nprobes: parsed.nprobes });
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
          ...links(col.name, hit.id),
        })),
      });
    },
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
