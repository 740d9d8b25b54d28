import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { secureHeaders } from 'hono/secure-headers';
import type { CollectionStore, ImageCollection } from '../collection/store.ts';
import type { CollectionOptions } from '../collection/types.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { RequestError } from '../errors.ts';
import {
  type Access,
  accessGuard,
  allowedHosts,
  grants,
  type HostRule,
  hostGuard,
  READ_COOKIE,
} from './auth.ts';
import { SearchBatcher } from './batcher.ts';
import { collectionsRouter } from './collections.ts';
import { duplicatesRouter } from './duplicates.ts';
import { EventHub, eventsRouter } from './events.ts';
import { experimentsRouter } from './experiments.ts';
import { exploreRouter } from './explore.ts';
import type { HostResolver } from './fetch-image.ts';
import { errorHandler } from './http-errors.ts';
import { libraryRouter } from './library.ts';
import { queryBudget } from './load-guards.ts';
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
  /**
   * Who may read and write: the write token every change needs, and a read token reads need (default:
   * reads are open). Without a write token nothing can be changed over HTTP.
   */
  access?: Access;
  /**
   * The Host names requests may carry (DNS rebinding: a page of another site naming this server by its
   * own host name is refused). Default: localhost, 127.0.0.1 and [::1], any port.
   */
  hosts?: HostRule[];
  /** Where collections are made and deleted from the page; without one the served set is fixed. */
  store?: CollectionStore;
  /** How collections made from the page are opened. */
  collectionOptions?: CollectionOptions;
  /** Files per upload request. Default 100. */
  maxUploadFiles?: number;
  /** Bytes per upload request, all files together. Default 200 MB. */
  maxUploadRequestBytes?: number;
  /** Where library events go (GET /api/events); default: a hub of the app's own. */
  hub?: EventHub;
}

/** A JSON body of any other route is at most this (a name, some options, a list of URLs). */
const JSON_BODY_LIMIT = 256 * 1024;

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
  const access = options.access ?? {};
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
  const hub = options.hub ?? new EventHub(registry, options.discover);
  const uploadLimits = {
    maxFiles: options.maxUploadFiles ?? 100,
    maxBytes: options.maxUploadRequestBytes ?? 200_000_000,
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

  app.onError(errorHandler(log));
  // Before anything else: a request naming another host (DNS rebinding) is refused, then one without the
  // token a change or (with a read token) a read needs, then a body larger than its route takes.
  app.use('*', hostGuard(options.hosts ?? allowedHosts('127.0.0.1', 0).map((rule) => ({ name: rule.name }))));
  // API answers are never sniffed into another type (an image file holding HTML stays an image); other
  // origins may still show the images, so no Cross-Origin-Resource-Policy here.
  app.use('/api/*', secureHeaders({ crossOriginResourcePolicy: false, crossOriginOpenerPolicy: false }));
  app.use('/api/*', accessGuard(access));
  const jsonLimit = bodyLimit({
    maxSize: JSON_BODY_LIMIT,
    onError: () =>
      Promise.reject(
        new RequestError('UPLOAD_TOO_LARGE', `The request body is over ${JSON_BODY_LIMIT / 1024} KB`),
      ),
  });
  app.use('/api/*', async (c, next) => {
    // Searches cap their own bodies (images), and so do uploads of files; every other body is small JSON
    // (a list of image addresses to fetch included).
    const multipart = /^multipart\//i.test(c.req.header('content-type') ?? '');
    const own =
      /^\/api\/collections\/[^/]+\/(search|explore(\/[^/]+)?)$/.test(c.req.path) ||
      (multipart && /^\/api\/collections\/[^/]+\/images$/.test(c.req.path));
    if (c.req.method === 'GET' || c.req.method === 'HEAD' || own) return next();
    return jsonLimit(c, next);
  });
  // Query images are held whole while a search runs: only so many bytes of them at once.
  const queries = queryBudget(maxBytes);
  app.use('/api/collections/:name/search', queries);
  app.use('/api/collections/:name/explore', queries);
  app.use('/api/collections/:name/explore/*', queries);
  app.notFound((c) =>
    c.json({ error: { code: 'NOT_FOUND', message: `No route ${c.req.method} ${c.req.path}` } }, 404),
  );

  // What the page may offer: write controls only with the write token, and uploads split into requests
  // the server takes. With a read token, a page that shows it gets a cookie for what it loads without
  // headers (images, the event stream).
  app.get('/api/session', (c) => {
    const granted = grants(c, access);
    if (granted.read && access.readToken !== undefined)
      c.header(
        'Set-Cookie',
        `${READ_COOKIE}=${encodeURIComponent(access.readToken)}; Path=/api; HttpOnly; SameSite=Strict`,
      );
    return c.json({
      ...granted,
      readTokenRequired: access.readToken !== undefined,
      uploads: { maxFiles: uploadLimits.maxFiles, maxBytes: uploadLimits.maxBytes },
    });
  });

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
  app.route('/', eventsRouter(hub));
  app.route(
    '/',
    libraryRouter({
      registry,
      store: options.store,
      collectionOptions: options.collectionOptions,
      collection,
      hub,
      limits: {
        ...uploadLimits,
        maxFileBytes: maxBytes,
        allowLoopbackUrls: options.allowLoopbackUrls,
        resolveHost: options.resolveHost,
      },
      log,
    }),
  );
  app.route('/', duplicatesRouter({ collection: (name) => registry.require(name), hub }));
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
