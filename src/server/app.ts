import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import { type Context, Hono } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import type { ImageCollection } from '../collection/store.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { SearchBatcher } from './batcher.ts';
import { collectionsRouter } from './collections.ts';
import { experimentsRouter } from './experiments.ts';
import { exploreRouter } from './explore.ts';
import type { HostResolver } from './fetch-image.ts';
import { errorHandler } from './http-errors.ts';
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

  // API answers are never sniffed into another type (an image file holding HTML stays an image); other
  // origins may still show the images, so no Cross-Origin-Resource-Policy here.
  app.use('/api/*', secureHeaders({ crossOriginResourcePolicy: false, crossOriginOpenerPolicy: false }));

  app.onError(errorHandler(log));
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

  app.route(
    '/',
    collectionsRouter({
      registry,
      collection,
      embed: embedQuery,
      maxBytes,
      allowLoopbackUrls: options.allowLoopbackUrls,
      resolveHost: options.resolveHost,
      discover: options.discover,
      log,
    }),
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
