import { createHash } from 'node:crypto';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { DEFAULT_EF_SEARCH } from '../ann/hnsw.ts';
import { IvfFlatIndex } from '../ann/ivf-flat.ts';
import { IvfPqIndex } from '../ann/ivf-pq.ts';
import type { Assigner } from '../ann/kmeans.ts';
import type { ImageCollection } from '../collection/store.ts';
import type { ImageRecord } from '../collection/types.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { ArgumentError, RequestError } from '../errors.ts';
import { hnswTrace } from '../explore/hnsw.ts';
import { HnswViews } from '../explore/hnsw-views.ts';
import {
  candidatesToSend,
  coarseLayout,
  defaultProbesOf,
  type IvfIndex,
  ivfTrace,
  partitionPageIds,
  results,
} from '../explore/ivf.ts';
import {
  IVF_VIEW_MIN_POINTS_PER_PARTITION,
  IVF_VIEW_PARTITIONS,
  type IvfView,
  IvfViews,
} from '../explore/ivf-views.ts';
import { projectionTrace } from '../explore/projection.ts';
import { VectorSnapshots } from '../explore/snapshots.ts';
import {
  EXPLORE_CAPS,
  type ExploreImage,
  type ExploreOverview,
  type ExploreResult,
  type HnswBuilding,
  type IvfBuilding,
  type IvfStatus,
  type PartitionPage,
} from '../explore/types.ts';
import { layoutOffThread } from '../node/layout-thread.ts';
import { type HostResolver, tooLarge } from './fetch-image.ts';
import { readSearchRequest } from './search-request.ts';

export interface ExploreRouterOptions {
  /** The served collection of a name, or the error that says why there is none (a registry's `require`). */
  collection: (name: string) => ImageCollection;
  /** A query image as the collection's model sees it (the server's batched embedding). */
  embed: (col: ImageCollection, input: ImageInput, crop: CropBox | undefined) => Promise<Float32Array>;
  /** As for search: the largest upload, and URL fetching's test switches. */
  maxBytes: number;
  allowLoopbackUrls?: boolean;
  resolveHost?: HostResolver;
  /** Collections from this size on get no HNSW graph built for the view. Default 50,000. */
  hnswMaxImages?: number;
  /** Collections from this size on get no IVF-Flat built for the IVF views (unless their own index is IVF). Default 50,000. */
  ivfMaxImages?: number;
  /** Runs the k-means of the IVF views' IVF-Flat; default: this thread, in slices with pauses (see IvfViews). */
  ivfAssigner?: Assigner;
  log?: (line: string) => void;
}

/** IVF-PQ candidates re-ranked exactly per result, as the collection's own search does (Collection.searchVector). */
const REFINE_FACTOR = 8;
/** Query vectors kept, so changing nprobes, k or the view does not embed the image again. */
const QUERY_CACHE_SIZE = 32;
/** Projections kept: UMAP takes seconds, and switching views comes back to the same one. */
const PROJECTION_CACHE_SIZE = 8;

const exploreOptions = {
  efSearch: z.coerce.number().int().min(1).max(1024).optional(),
};
const partitionQuery = z.object({
  page: z.coerce.number().int().min(0).default(0),
  count: z.coerce.number().int().min(1).max(EXPLORE_CAPS.galleryPage).default(6),
});

/** A small map that forgets its oldest entry past `size`. */
class Recent<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly size: number) {}
  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }
  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.size) this.map.delete(this.map.keys().next().value!);
  }
  delete(key: string): void {
    this.map.delete(key);
  }
}

/** The collection's own index, in words: what it searches with. */
function ownIndexText(col: ImageCollection, kind: string, size: number): string {
  if (kind === 'flat')
    return `${col.name} searches exactly (a Flat index over its ${size.toLocaleString('en')} images), which has no partitions`;
  if (kind === 'hnsw') return `${col.name} searches with an HNSW index, which has no partitions`;
  return `${col.name} keeps its index outside this server (${kind})`;
}

/**
 * What the IVF views show of a collection, when it is not the collection's own index: the IVF-Flat built
 * for the view, or why there is none. Null when they show the collection's own IVF index.
 */
function ivfNoteOf(col: ImageCollection, kind: string, size: number, status: IvfStatus): string | null {
  if (status.state === 'unavailable' || status.state === 'failed') return status.reason;
  if (status.state === 'ready' && status.source === 'collection') return null;
  const like =
    status.numPartitions === IVF_VIEW_PARTITIONS
      ? 'as the reference notebook’s IVF100,Flat'
      : `the reference notebook’s IVF100,Flat, with about √n partitions under ${(IVF_VIEW_PARTITIONS * IVF_VIEW_MIN_POINTS_PER_PARTITION).toLocaleString('en')} images`;
  return (
    `${ownIndexText(col, kind, size)}: the IVF views show an IVF-Flat of ${status.numPartitions} partitions ` +
    `built for this view from its stored vectors (${like}), so their results can differ from those of its own search`
  );
}

/** The answer (202) while the IVF-Flat of the view is built. */
function ivfBuilding(col: ImageCollection, status: IvfStatus): IvfBuilding {
  const { percent, images, numPartitions } =
    status.state === 'building' ? status : { percent: 0, images: 0, numPartitions: 0 };
  return {
    state: 'building',
    percent,
    images,
    numPartitions,
    message: `Building an IVF-Flat of ${numPartitions} partitions for ${col.name} (${images.toLocaleString('en')} images): ${percent}%`,
  };
}

/**
 * The Explore API: how the index of a served collection finds a query's neighbours, for the page's
 * Explore tab. Traces take the same inputs as search (an upload, a URL or an id; k, nprobes, crop) and
 * answer bounded JSON whatever the collection's size: capped and sampled points, thumbnails by URL.
 * The IVF views draw the collection's own IVF index, or else an IVF-Flat built for them on demand (under
 * 50,000 images), as the HNSW view does with its graph: until it is built, their endpoints answer 202
 * "building, N%".
 * - GET  …/explore                          what can be shown (index, the IVF views' and the HNSW graph's state)
 * - GET  …/explore/ivf                      the state of the IVF views' partitions (building, N%)
 * - POST …/explore/ivf                      the coarse step (partition map, probes) and the fine step (candidates)
 * - GET  …/explore/partitions/:partition    a page of a partition's images (?page, ?count)
 * - POST …/explore/projection               UMAP of the probed partitions' members (or, for a collection
 *                                           without IVF views, of the collection) with the query
 * POST …/explore/ivf, GET …/partitions/:partition and POST …/projection start the IVF-Flat's build when
 * there is none of the collection as it is now, and answer 202 (IvfBuilding) until it is ready.
 * - GET  …/explore/hnsw                     the state of the HNSW graph (building, N%)
 * - POST …/explore/hnsw                     the graph's levels and the query's path (202 "building" until ready)
 */
export function exploreRouter(options: ExploreRouterOptions): Hono {
  const log = options.log ?? ((line: string) => console.error(line));
  const snapshots = new VectorSnapshots();
  const hnswViews = new HnswViews({ snapshots, maxImages: options.hnswMaxImages, log });
  const ivfViews = new IvfViews({
    snapshots,
    maxImages: options.ivfMaxImages,
    assigner: options.ivfAssigner,
    log,
  });
  const queries = new Recent<Promise<Float32Array>>(QUERY_CACHE_SIZE);
  const projections = new Recent<Promise<Awaited<ReturnType<typeof projectionTrace>>>>(PROJECTION_CACHE_SIZE);
  const app = new Hono();
  const limits = {
    maxBytes: options.maxBytes,
    allowLoopbackUrls: options.allowLoopbackUrls,
    resolveHost: options.resolveHost,
  };
  const uploads = bodyLimit({
    maxSize: options.maxBytes + 64 * 1024,
    onError: () => Promise.reject(tooLarge(options.maxBytes)),
  });

  /** The collection a request names, caught up in the background with what other processes changed. */
  const collection = (c: Context): ImageCollection => {
    const col = options.collection(c.req.param('name')!);
    col.refresh().catch((error: unknown) => log(`updating ${col.name} failed: ${(error as Error).message}`));
    return col;
  };
  const base = (col: ImageCollection) => `/api/collections/${encodeURIComponent(col.name)}`;
  const imageOf = (col: ImageCollection, record: ImageRecord): ExploreImage => {
    const version = record.sha256.slice(0, 16);
    return {
      id: record.id,
      labels: record.labels,
      width: record.width,
      height: record.height,
      imageUrl: `${base(col)}/images/${record.id}?v=${version}`,
      thumbnailUrl: `${base(col)}/thumbnails/${record.id}?v=${version}`,
    };
  };
  const recordsOf = async (col: ImageCollection, ids: Iterable<number>) => {
    const found = new Map<number, ImageRecord>();
    for (const id of new Set(ids)) {
      const record = await col.get(id);
      if (record) found.set(id, record);
    }
    return found;
  };

  /**
   * The query's vector, and a key naming it (the image's hash and crop): the same image asked again (another
   * view, other options) is not embedded again.
   */
  const queryVector = async (
    col: ImageCollection,
    input: ImageInput,
    crop: CropBox | undefined,
  ): Promise<{ vector: Float32Array; key: string | undefined }> => {
    if (!Buffer.isBuffer(input)) return { vector: await options.embed(col, input, crop), key: undefined };
    const hash = createHash('sha256').update(input).digest('hex');
    const key = `${col.name}|${col.manifest.modelId}|${hash}|${JSON.stringify(crop ?? null)}`;
    let vector = queries.get(key);
    if (!vector) {
      vector = options.embed(col, input, crop);
      queries.set(key, vector);
      vector.catch(() => queries.delete(key));
    }
    return { vector: await vector, key };
  };
  const readQuery = (c: Context, col: ImageCollection) => readSearchRequest(c, col, limits, exploreOptions);

  /**
   * The IVF view of `col` (its own IVF index, or the IVF-Flat built for the view, whose build this
   * starts), or the 202 answer while it is built; NO_PARTITIONS when there can be none.
   */
  const requireIvf = async (col: ImageCollection): Promise<IvfView | IvfBuilding> => {
    const { status, view } = await ivfViews.status(col, true);
    if (status.state === 'unavailable' || status.state === 'failed')
      throw new RequestError('NO_PARTITIONS', status.reason);
    return view ?? ivfBuilding(col, status);
  };
  const checkNprobes = (nprobes: number | undefined, index: IvfIndex) => {
    const { numPartitions } = index;
    if (nprobes !== undefined && nprobes > numPartitions)
      throw new ArgumentError(
        'OUT_OF_RANGE',
        `nprobes ${nprobes} is more than the ${numPartitions} partitions of this index; use 1 to ${numPartitions}`,
      );
    return nprobes ?? defaultProbesOf(index);
  };
  // As the collection searches: IVF-PQ re-ranks k × REFINE_FACTOR estimates exactly, IVF-RaBitQ every
  // candidate its bounds cannot rule out (no factor).
  const refineFactor = (index: IvfIndex) =>
    index instanceof IvfPqIndex ? (index.refineStorage !== 'none' ? REFINE_FACTOR : 0) : undefined;

  app.get('/api/collections/:name/explore', async (c) => {
    const col = collection(c);
    const own = col.searchIndex();
    const size = await col.count();
    const kind = own?.index.kind ?? (await col.status()).kind;
    const ivf = (await ivfViews.status(col, false)).status;
    const overview: ExploreOverview = {
      collection: col.name,
      size,
      indexKind: kind,
      ivf,
      ivfNote: ivfNoteOf(col, kind, size, ivf),
      hnsw: (await hnswViews.status(col, false)).status,
      defaults: { k: 5, efSearch: DEFAULT_EF_SEARCH },
      caps: EXPLORE_CAPS,
    };
    return c.json(overview);
  });

  app.get('/api/collections/:name/explore/ivf', async (c) => {
    const col = collection(c);
    return c.json((await ivfViews.status(col, false)).status);
  });

  app.post('/api/collections/:name/explore/ivf', uploads, async (c) => {
    const col = collection(c);
    const started = performance.now();
    const { input, options: parsed } = await readQuery(c, col);
    const view = await requireIvf(col);
    if (!('index' in view)) return c.json(view, 202);
    const { index, query, source } = view;
    const { vector } = await queryVector(col, input, parsed.crop);
    const nprobes = checkNprobes(parsed.nprobes, index);
    const explanation = index.explainSearch(query(vector), parsed.k, {
      nprobes,
      refineFactor: refineFactor(index),
    });
    const layout = await coarseLayout(index, layoutOffThread);
    const shown = candidatesToSend(explanation.fine);
    const records = await recordsOf(col, [
      ...Array.from(shown, (i) => explanation.fine.ids[i]!),
      ...explanation.fine.results.ids,
    ]);
    const trace = ivfTrace({
      collection: col.name,
      source,
      kind: index.kind,
      size: index.size,
      k: parsed.k,
      nprobes,
      timeMs: 0,
      thumbnailBase: `${base(col)}/thumbnails/`,
      fineDistances: index instanceof IvfFlatIndex ? 'exact' : 'estimated',
      explanation,
      sizes: index.partitionSizes(),
      layout,
      shown,
      labelsOf: (id) => records.get(id)?.labels,
      imageOf: (id) => {
        const record = records.get(id);
        return record && imageOf(col, record);
      },
    });
    trace.timeMs = performance.now() - started;
    return c.json(trace);
  });

  app.get('/api/collections/:name/explore/partitions/:partition', async (c) => {
    const col = collection(c);
    const view = await requireIvf(col);
    if (!('index' in view)) return c.json(view, 202);
    const { index } = view;
    // Decimal digits only: Number() would take 0x1, 1e1 or ' 1 ' too.
    const text = c.req.param('partition')!;
    const partition = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isInteger(partition) || partition < 0 || partition >= index.numPartitions)
      throw new ArgumentError(
        'OUT_OF_RANGE',
        `No partition ${c.req.param('partition')}: ${view.source === 'collection' ? `${col.name}'s index` : `the IVF-Flat built for ${col.name}'s view`} has partitions 0 to ${index.numPartitions - 1}`,
      );
    const { page, count } = partitionQuery.parse(c.req.query());
    const members = index.partitionIds(partition);
    const { ids, hasMore } = partitionPageIds(members, page, count);
    const records = await recordsOf(col, ids);
    const answer: PartitionPage = {
      collection: col.name,
      partition,
      size: members.length,
      page,
      count,
      hasMore,
      images: [...records.values()].map((record) => imageOf(col, record)),
    };
    return c.json(answer);
  });

  app.post('/api/collections/:name/explore/projection', uploads, async (c) => {
    const col = collection(c);
    const started = performance.now();
    const { input, options: parsed } = await readQuery(c, col);
    const { status, view } = await ivfViews.status(col, true);
    if (status.state === 'building' || status.state === 'idle') return c.json(ivfBuilding(col, status), 202);
    const { vector, key } = await queryVector(col, input, parsed.crop);
    const own = col.searchIndex();
    const ivf = view?.index;
    const toIndexSpace = view ? view.query : own ? (v: Float32Array) => own.query(v) : (v: Float32Array) => v;
    let found: { ids: Uint32Array; distances: Float32Array };
    let members: { ids: Uint32Array; partitions: Uint32Array | null; probes: number[] };
    let nprobes: number | null = null;
    let note: string | null = null;
    const snapshot = await snapshots.get(col);
    if (ivf) {
      const probes = checkNprobes(parsed.nprobes, ivf);
      nprobes = probes;
      const explanation = ivf.explainSearch(toIndexSpace(vector), parsed.k, {
        nprobes: probes,
        refineFactor: refineFactor(ivf),
      });
      found = explanation.fine.results;
      members = {
        ids: explanation.fine.ids,
        partitions: explanation.fine.partitions,
        probes: Array.from(explanation.coarse.probed),
      };
    } else {
      // No IVF view can exist (too many images, or none): the collection around the query instead.
      note = status.state === 'unavailable' || status.state === 'failed' ? status.reason : null;
      const hits = await col.searchVector(vector, { k: parsed.k });
      found = {
        ids: Uint32Array.from(hits, (h) => h.id),
        distances: Float32Array.from(hits, (h) => h.distance),
      };
      members = { ids: snapshot.ids, partitions: null, probes: [] };
    }
    const records = await recordsOf(col, found.ids);
    const partitionOf = new Map<number, number>();
    if (members.partitions)
      for (const id of found.ids) {
        const at = members.ids.indexOf(id);
        if (at >= 0) partitionOf.set(id, members.partitions[at]!);
      }
    const shownResults: ExploreResult[] = results(
      found,
      (id) => {
        const record = records.get(id);
        return record && imageOf(col, record);
      },
      (id) => partitionOf.get(id),
    );
    // The layout depends on the query, the points and the collection's state, not on k beyond the results.
    const cacheKey =
      key && `${key}|${snapshot.generation}|${members.probes.join(',')}|${found.ids.join(',')}`;
    let projection = cacheKey ? projections.get(cacheKey) : undefined;
    if (!projection) {
      projection = projectionTrace({
        collection: col.name,
        mode: ivf ? 'partitions' : 'collection',
        source: view?.source ?? null,
        kind: view?.index.kind ?? null,
        note,
        k: parsed.k,
        nprobes,
        thumbnailBase: `${base(col)}/thumbnails/`,
        snapshot,
        memberIds: members.ids,
        memberPartitions: members.partitions,
        probes: members.probes,
        query: vector,
        toIndexSpace,
        results: shownResults,
        layout: layoutOffThread,
      });
      if (cacheKey) {
        projections.set(cacheKey, projection);
        projection.catch(() => projections.delete(cacheKey));
      }
    }
    return c.json({ ...(await projection), timeMs: performance.now() - started });
  });

  app.get('/api/collections/:name/explore/hnsw', async (c) => {
    const col = collection(c);
    return c.json((await hnswViews.status(col, false)).status);
  });

  app.post('/api/collections/:name/explore/hnsw', uploads, async (c) => {
    const col = collection(c);
    const started = performance.now();
    const { input, options: parsed } = await readQuery(c, col);
    const { status, view } = await hnswViews.status(col, true);
    if (status.state === 'unavailable' || status.state === 'failed')
      throw new RequestError('HNSW_UNAVAILABLE', status.reason);
    if (!view) {
      const { percent, images } = status.state === 'building' ? status : { percent: 0, images: 0 };
      const building: HnswBuilding = {
        state: 'building',
        percent,
        images,
        message: `Building the HNSW graph of ${col.name} (${images.toLocaleString('en')} images): ${percent}%`,
      };
      return c.json(building, 202);
    }
    const { vector } = await queryVector(col, input, parsed.crop);
    const query = view.query(vector);
    const explanation = view.index.explainSearch(query, parsed.k, {
      efSearch: parsed.efSearch ?? DEFAULT_EF_SEARCH,
    });
    const records = await recordsOf(col, explanation.results.ids);
    const trace = hnswTrace({
      collection: col.name,
      source: view.source,
      k: parsed.k,
      timeMs: 0,
      thumbnailBase: `${base(col)}/thumbnails/`,
      m: view.index.m,
      efConstruction: view.index.efConstruction,
      size: view.index.size,
      graph: view.graph(),
      explanation,
      placeOf: (id) => {
        const row = view.rowOf.get(id);
        return row === undefined
          ? undefined
          : { x: view.plane.points[row * 2]!, y: view.plane.points[row * 2 + 1]! };
      },
      query: view.plane.place(query),
      labelsOf: (id) => {
        const row = view.rowOf.get(id);
        return row === undefined ? undefined : view.labels[row];
      },
      imageOf: (id) => {
        const record = records.get(id);
        return record && imageOf(col, record);
      },
    });
    trace.timeMs = performance.now() - started;
    return c.json(trace);
  });

  return app;
}
