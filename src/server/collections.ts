import { extname } from 'node:path';
import { create as contentDisposition } from 'content-disposition';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { describePendingWork, stillRunning } from '../collection/pending-work.ts';
import { searchQuery } from '../collection/query-search.ts';
import { type ImageCollection, isLibraryCollection } from '../collection/store.ts';
import type { ImageRecord } from '../collection/types.ts';
import { similarityScale, textSimilarityScale } from '../embed/config.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { modelHasTextTower } from '../embed/resolve-model.ts';
import { RequestError } from '../errors.ts';
import { type HostResolver, tooLarge } from './fetch-image.ts';
import { withoutServerPaths } from './public-text.ts';
import { readQueryRequest } from './query-request.ts';
import type { CollectionRegistry } from './registry.ts';
import { imageIdOf } from './request-body.ts';

/** What the collection routes work with, given by the app. */
export interface CollectionsRouterOptions {
  registry: CollectionRegistry;
  /** The collection a request names, caught up in the background with what other processes changed. */
  collection: (c: Context) => ImageCollection;
  /** A query image as the collection's model sees it (queries that arrive together share a forward pass). */
  embed: (col: ImageCollection, input: ImageInput, crop: CropBox | undefined) => Promise<Float32Array>;
  /** Largest upload or fetched image, in bytes. */
  maxBytes: number;
  allowLoopbackUrls?: boolean;
  resolveHost?: HostResolver;
  /** Looks for collections made or deleted since the start (see ServerOptions.discover). */
  discover?: (name?: string) => Promise<void>;
  log: (line: string) => void;
}

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

/** Links to an image and its thumbnail: the content hash is in the URL, so a removed id never shows another picture from a cache. */
export function imageLinks(name: string, record: { id: number; sha256: string }) {
  const base = `/api/collections/${encodeURIComponent(name)}`;
  const version = record.sha256.slice(0, 16);
  return {
    imageUrl: `${base}/images/${record.id}?v=${version}`,
    thumbnailUrl: `${base}/thumbnails/${record.id}?v=${version}`,
  };
}

/** The image a request names by id, or NOT_FOUND. */
export async function requireImage(col: ImageCollection, idText: string | undefined): Promise<ImageRecord> {
  const id = imageIdOf(idText);
  const record = id === undefined ? undefined : await col.get(id);
  if (!record) throw new RequestError('NOT_FOUND', `No image ${idText?.slice(0, 40)} in ${col.name}`);
  return record;
}

/** Cache headers by content: immutable under the URL that names its hash, revalidated by ETag otherwise. */
function cacheByContent(c: Context, record: ImageRecord, variant: string): boolean {
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
}

/**
 * The read routes of the served collections: the list, random pages (examples and gallery), images,
 * thumbnails and search.
 */
export function collectionsRouter(options: CollectionsRouterOptions): Hono {
  const { registry, collection, log, maxBytes } = options;
  const app = new Hono();

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
            : { name: entry.name, state: entry.state, reason: withoutServerPaths(entry.reason) },
        );
        continue;
      }
      const col = entry.collection;
      col.refresh().catch(() => undefined);
      const status = await col.status();
      const work = await col.pendingWork();
      const size = await col.count();
      list.push({
        name: col.name,
        state: 'ready',
        // A ris index or retrain started and not finished: `interrupted` (resumable) or `running`.
        ...(work
          ? {
              work: {
                kind: work.kind,
                state: stillRunning(work) ? 'running' : 'interrupted',
                message: withoutServerPaths(describePendingWork(work, size)),
                ...(work.found === undefined ? {} : { found: work.found }),
              },
            }
          : {}),
        model: withoutServerPaths(col.manifest.model), // a model file by its name
        modelId: col.manifest.modelId,
        // Its model has a text tower (CLIP): it can be searched by words.
        searchByText: modelHasTextTower(col.manifest.model),
        // It follows a folder of the user's (ris rescan, a watching server), not only what is sent to it.
        followsFolder: isLibraryCollection(col) && col.followsFolder,
        size,
        labels: await col.labels(),
        // The page's relevance slider follows the model's score scale (words score lower than pictures).
        similarity: similarityScale(col.manifest.model),
        ...(modelHasTextTower(col.manifest.model) && {
          textSimilarity: textSimilarityScale(col.manifest.model),
        }),
        // What searches use now: it follows the database (generation) as other processes change it.
        index: {
          kind: status.kind,
          indexed: status.indexed,
          generation: status.generation,
          ...(status.outdated ? { outdated: status.outdated } : {}),
        },
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
        ...imageLinks(col.name, record),
      })),
    });
  };
  app.get('/api/collections/:name/examples', randomPage);
  app.get('/api/collections/:name/gallery', randomPage);

  app.get('/api/collections/:name/images/:id', async (c) => {
    const col = collection(c);
    const record = await requireImage(col, c.req.param('id'));
    if (cacheByContent(c, record, 'image')) return c.body(null, 304);
    const bytes = await col.readImage(record);
    c.header('Content-Type', MIME[extname(record.path).toLowerCase()] ?? 'application/octet-stream');
    c.header('Content-Disposition', contentDisposition(record.path.split('/').pop()!, { type: 'inline' }));
    return c.body(new Uint8Array(bytes));
  });

  app.get('/api/collections/:name/thumbnails/:id', async (c) => {
    const col = collection(c);
    const record = await requireImage(col, c.req.param('id'));
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
      const {
        terms,
        texts,
        options: parsed,
      } = await readQueryRequest(c, col, {
        maxBytes,
        allowLoopbackUrls: options.allowLoopbackUrls,
        resolveHost: options.resolveHost,
      });
      const search = {
        k: parsed.k,
        nprobes: parsed.nprobes,
        efSearch: parsed.efSearch,
        minSimilarity: parsed.minSimilarity,
      };
      const only =
        terms.length === 1 && 'image' in terms[0]! && terms[0].weight === undefined ? terms[0] : undefined;
      // One image alone shares a forward pass with the searches that arrive with it; words go through searchQuery.
      const { hits, truncatedTexts } = only
        ? {
            hits: await col.searchVector(await options.embed(col, only.image, only.crop), search),
            truncatedTexts: [],
          }
        : await searchQuery(col, terms, search);
      return c.json({
        collection: col.name,
        timeMs: performance.now() - started,
        // Texts longer than the model reads (77 tokens) were cut: the page says so.
        truncatedTexts: truncatedTexts.map((i) => texts[i]),
        results: hits.map((hit, i) => ({
          rank: i + 1,
          id: hit.id,
          labels: hit.labels,
          distance: hit.distance,
          similarity: hit.similarity,
          width: hit.width,
          height: hit.height,
          ...imageLinks(col.name, hit),
        })),
      });
    },
  );

  return app;
}
