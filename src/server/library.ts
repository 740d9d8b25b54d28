import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { type Context, Hono } from 'hono';
import { z } from 'zod';
import {
  addUploads,
  createCollection,
  deleteCollection,
  removeImages,
  rescan,
} from '../collection/library.ts';
import { INDEX_KIND_SETTINGS, type IndexSettingsInput } from '../collection/manifest.ts';
import type { CollectionStore, ImageCollection } from '../collection/store.ts';
import type { CollectionOptions } from '../collection/types.ts';
import { DEFAULT_MODEL, MODEL_REGISTRY, type SimilarityScale, similarityScale } from '../embed/config.ts';
import { ArgumentError, CollectionError, RequestError } from '../errors.ts';
import type { EventHub } from './events.ts';
import { withoutServerPaths } from './public-text.ts';
import { receiveUploads, type UploadLimits } from './receive-uploads.ts';
import type { CollectionRegistry } from './registry.ts';
import { imageIdOf, jsonBody } from './request-body.ts';

export interface LibraryRouterOptions {
  registry: CollectionRegistry;
  /** Where new collections are made and deleted ones removed; without one the served set is fixed. */
  store?: CollectionStore;
  /** How collections made here are opened (as the server opens the others). */
  collectionOptions?: CollectionOptions;
  /** The collection a request names (caught up with other processes). */
  collection: (c: Context) => ImageCollection;
  hub: EventHub;
  limits: UploadLimits;
  log: (line: string) => void;
}

const createBody = z.strictObject({
  name: z.string().max(64),
  model: z.string().max(100).optional(),
  index: z.enum(INDEX_KIND_SETTINGS).optional(),
  /** Bytes the index may hold in memory (see IndexSettings.memoryBudget; 'auto' only). */
  memoryBudget: z
    .number()
    .int()
    .min(1)
    .max(2 ** 50)
    .optional(),
});
const BATCH = /^[A-Za-z0-9_-]{1,40}$/;
/** Ids one removal request takes at most (well inside the JSON body limit); the page sends more in turns. */
export const MAX_REMOVE_IDS = 5_000;
const removeBody = z.strictObject({
  ids: z
    .array(
      z
        .number()
        .int()
        .min(0)
        .max(2 ** 32),
    )
    .min(1)
    .max(MAX_REMOVE_IDS),
});

/** A create request's index settings: the kind, and a memory budget that only 'auto' can honour. */
function indexSettingsOf(body: z.output<typeof createBody>): IndexSettingsInput | undefined {
  if (body.memoryBudget !== undefined && (body.index ?? 'auto') !== 'auto')
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `memoryBudget chooses the index kind itself; leave out index "${body.index}", or send index "auto"`,
    );
  if (body.index === undefined && body.memoryBudget === undefined) return undefined;
  return { kind: body.index, memoryBudget: body.memoryBudget };
}

/**
 * The write routes: make and delete collections, send images (files or URLs), remove images, rescan a
 * collection's folder. The app's access guard has checked the write token and the origin before any of
 * these reads the request; every change goes through the library service (src/collection/library.ts),
 * as the CLI's do, and is told to every open page through the event hub.
 * - POST   /api/collections                     JSON { name, model?, index?, memoryBudget? } → 201
 * - DELETE /api/collections/:name               → 204
 * - POST   /api/collections/:name/images        multipart "image" fields (+ "label"), or JSON { urls, label? }
 * - DELETE /api/collections/:name/images/:id    → 204
 * - POST   /api/collections/:name/images/remove JSON { ids } → { removed, notFound } (many at once: the
 *                                                duplicates view's "remove the others")
 * - POST   /api/collections/:name/rescan        → what changed in its folder
 */
export function libraryRouter(options: LibraryRouterOptions): Hono {
  const { registry, hub, log } = options;
  const app = new Hono();
  const requireStore = (): CollectionStore => {
    if (options.store) return options.store;
    throw new RequestError(
      'RUN_FROM_CLI',
      'This server serves a fixed set of collections; make or delete collections with ris collections',
    );
  };

  app.post('/api/collections', async (c) => {
    const store = requireStore();
    const body = createBody.parse(await jsonBody(c));
    // The built-in models, and model files the served collections already use: a request never
    // names a file of this machine that an administrator did not choose.
    const models = modelChoices(registry);
    const chosen = body.model === undefined ? undefined : models.find((m) => m.name === body.model);
    if (body.model !== undefined && !chosen)
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Unknown model "${body.model.slice(0, 100)}"; choose one of ${models.map((m) => m.label).join(', ')} (other model files: ris index --model FILE)`,
      );
    if (registry.list().some((e) => e.name === body.name))
      throw new CollectionError(
        'COLLECTION_EXISTS',
        `Collection "${body.name}" already exists; add images to it, or choose another name`,
      );
    const collection = await createCollection(
      store,
      body.name,
      { model: chosen?.model, index: indexSettingsOf(body) },
      { ...options.collectionOptions, persistIndex: 'builds' },
    );
    registry.set({ name: collection.name, state: 'ready', collection });
    hub.publish({ type: 'collections' });
    log(`created collection ${collection.name} (${collection.manifest.model})`);
    return c.json(
      {
        name: collection.name,
        model: withoutServerPaths(collection.manifest.model), // a model file by its name
        modelId: collection.manifest.modelId,
        size: 0,
      },
      201,
    );
  });

  app.get('/api/models', (c) => c.json(modelChoices(registry).map(({ model: _path, ...choice }) => choice)));

  app.delete('/api/collections/:name', async (c) => {
    const store = requireStore();
    const name = c.req.param('name');
    const entry = registry.list().find((e) => e.name === name);
    if (!entry) registry.require(name); // COLLECTION_NOT_FOUND, with the names served
    if (entry?.state === 'preparing')
      throw new CollectionError(
        'COLLECTION_PREPARING',
        `Collection "${name}" is being prepared; delete it once it is ready`,
      );
    registry.delete(name);
    if (entry?.state === 'ready') await entry.collection.close();
    await deleteCollection(store, name);
    hub.publish({ type: 'collections' });
    log(`deleted collection ${name}`);
    return c.body(null, 204);
  });

  app.post('/api/collections/:name/images', async (c) => {
    const col = options.collection(c);
    const batch = c.req.query('batch');
    const id = batch !== undefined && BATCH.test(batch) ? batch : randomBytes(6).toString('hex');
    // A collection deleted while its images arrive: the request says so, whatever step it was at.
    const stillServed = () => registry.list().some((e) => e.state === 'ready' && e.collection === col);
    const deleted = () =>
      new CollectionError(
        'COLLECTION_NOT_FOUND',
        `Collection "${col.name}" was deleted while these images were being added`,
      );
    const received = await receiveUploads(c, col.dir, options.limits).catch((error: unknown) => {
      throw stillServed() ? error : deleted();
    });
    try {
      const total = received.uploads.length + received.failed.length;
      const report = await addUploads(col, received.uploads, {
        signal: c.req.raw.signal,
        onProgress: (event) => {
          if (event.type === 'upload')
            hub.publish({
              type: 'progress',
              collection: col.name,
              operation: 'upload',
              id,
              done: event.done + received.failed.length,
              total,
            });
        },
      });
      if (!stillServed()) throw deleted();
      const byIndex = <T extends { index: number }>(list: T[]) => list.sort((a, b) => a.index - b.index);
      return c.json({
        batch: id,
        added: report.added,
        skipped: report.skipped,
        failed: byIndex([...received.failed, ...report.failed]),
      });
    } catch (error) {
      throw stillServed() ? error : deleted();
    } finally {
      await Promise.all(received.uploads.map((u) => rm(u.file, { force: true })));
    }
  });

  app.delete('/api/collections/:name/images/:id', async (c) => {
    const col = options.collection(c);
    const id = imageIdOf(c.req.param('id'));
    if (id === undefined || !(await col.get(id)))
      throw new RequestError('NOT_FOUND', `No image ${c.req.param('id').slice(0, 40)} in ${col.name}`);
    const { removed } = await removeImages(col, [id]);
    if (removed === 0) throw new RequestError('NOT_FOUND', `No image ${id} in ${col.name}`);
    return c.body(null, 204);
  });

  // Removes from the collection only: the user's files stay where they are (as with DELETE …/images/:id).
  app.post('/api/collections/:name/images/remove', async (c) => {
    const col = options.collection(c);
    const { ids } = removeBody.parse(await jsonBody(c));
    const report = await removeImages(col, [...new Set(ids)]);
    return c.json({ removed: report.removed, notFound: report.notFound });
  });

  app.post('/api/collections/:name/rescan', async (c) => {
    const col = options.collection(c);
    const id = randomBytes(6).toString('hex');
    let found = 0;
    const report = await rescan(col, {
      signal: c.req.raw.signal,
      onProgress: (event) => {
        if (event.type === 'scan') found = event.images;
        if (event.type === 'embed')
          hub.publish({
            type: 'progress',
            collection: col.name,
            operation: 'rescan',
            id,
            done: event.done,
            total: event.total ?? found,
          });
      },
    });
    return c.json({
      added: report.added,
      reembedded: report.reembedded,
      removed: report.removed,
      moved: report.moved,
      excluded: report.excluded,
      unchanged: report.unchanged,
      // Named as in the collection's folder: an answer never shows where the server keeps things.
      failed: report.failures.map((f) => {
        const path = relativeName(f.path, col);
        return { path, code: f.error.code, message: f.error.message.split(f.path).join(path) };
      }),
    });
  });

  return app;
}

/** A model a collection can be made with from the page. */
export interface ModelChoice {
  /** What to send as `model`: a built-in model's name, or the id of a model file a collection uses. */
  name: string;
  /** The model as collections are made with it (a model file's path stays on the server). */
  model: string;
  /** How to show it: the registry name, or a model file's name (never its folder). */
  label: string;
  default: boolean;
  similarity: SimilarityScale;
}

/** The built-in models, then the model files the served collections use. */
export function modelChoices(registry: CollectionRegistry): ModelChoice[] {
  const choices: ModelChoice[] = Object.keys(MODEL_REGISTRY).map((name) => ({
    name,
    model: name,
    label: name,
    default: name === DEFAULT_MODEL,
    similarity: similarityScale(name),
  }));
  for (const col of registry.ready()) {
    const { model, modelId } = col.manifest;
    if (!choices.some((c) => c.model === model))
      choices.push({
        name: modelId,
        model,
        label: basename(model),
        default: false,
        similarity: similarityScale(model),
      });
  }
  return choices;
}

function relativeName(path: string, col: ImageCollection): string {
  const root = col.manifest.root.endsWith('/') ? col.manifest.root : `${col.manifest.root}/`;
  return path.startsWith(root) ? path.slice(root.length) : path;
}
