// The Explore endpoints (src/server/explore.ts) through the app, without a network: each way of sending
// the query, the answers' shapes and caps, the errors, and the builds on demand with their progress (the
// HNSW graph, and the IVF-Flat of the IVF views for a collection whose own index is not IVF).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { indexCollection } from '../src/collection/build.ts';
import type { ImageCollection } from '../src/collection/store.ts';
import type { RisError } from '../src/errors.ts';
import type {
  ExploreOverview,
  HnswBuilding,
  HnswStatus,
  HnswTrace,
  IvfBuilding,
  IvfStatus,
  IvfTrace,
  PartitionPage,
  ProjectionTrace,
} from '../src/explore/types.ts';
import { createApp } from '../src/server/app.ts';
import { exploreRouter } from '../src/server/explore.ts';
import { HTTP_STATUS } from '../src/server/http-errors.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback } from './helpers.ts';

let dir: string;
let pics: ImageCollection;
let small: ImageCollection;
let graph: ImageCollection;
let rabitq: ImageCollection;
let app: Hono;
let images: Server;
let imageBase: string;
let sample: Buffer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-explore-server-'));
  const home = join(dir, 'home');
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  await writeClassFolders(join(dir, 'pics'), 4, 70, 48, 8, 'pic');
  await writeClassFolders(join(dir, 'small'), 3, 5, 48, 3, 'small');
  ({ collection: pics } = await indexCollection('pics', join(dir, 'pics'), {
    model,
    home,
    index: { kind: 'ivf-pq', numPartitions: 16 },
  }));
  ({ collection: small } = await indexCollection('small', join(dir, 'small'), { model, home }));
  // The same 280 images with an HNSW index: no partitions of its own.
  ({ collection: graph } = await indexCollection('graph', join(dir, 'pics'), {
    model,
    home,
    index: { kind: 'hnsw' },
  }));
  // And with IVF-RaBitQ: partitions of its own, estimates from one-bit codes.
  ({ collection: rabitq } = await indexCollection('rabitq', join(dir, 'pics'), {
    model,
    home,
    index: { kind: 'ivf-rabitq' },
  }));
  sample = await readFile(join(dir, 'pics', 'pic2', 'img010.jpg'));
  app = createApp({
    collections: [pics, small, graph, rabitq],
    allowLoopbackUrls: true,
    log: () => undefined,
  });
  images = createServer((req, res) => {
    if (req.url === '/query.jpg') return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(sample);
    res.writeHead(404).end();
  });
  imageBase = await listenOnLoopback(images);
});
after(async () => {
  images.close();
  await pics.close();
  await small.close();
  await graph.close();
  await rabitq.close();
  await rm(dir, { recursive: true, force: true });
});

const json = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});
const upload = (bytes: Uint8Array, fields: Record<string, string> = {}) => {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(bytes)]), 'query.jpg');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return { method: 'POST', body: form };
};
async function ok<T>(response: Response, status = 200): Promise<T> {
  assert.equal(response.status, status, await response.clone().text());
  return (await response.json()) as T;
}
async function expectError(response: Response, status: number, code: string, message?: RegExp) {
  assert.equal(response.status, status);
  const body = (await response.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, code);
  if (message) assert.match(body.error.message, message);
}
const request = (path: string, init?: RequestInit) => app.request(`/api/collections/${path}`, init);

/** The id of the sample image in 'pics' (or another collection of the same images). */
async function sampleId(col: ImageCollection = pics): Promise<number> {
  const { ids, paths } = await col.storedVectors();
  return ids[paths.findIndex((p) => p.endsWith('pic2/img010.jpg'))]!;
}

/** Polls GET …/explore/ivf until the IVF views of `name` are no longer building; their state then. */
async function ivfReady(
  name: string,
  call: (path: string, init?: RequestInit) => Response | Promise<Response> = request,
): Promise<IvfStatus> {
  let status = await ok<IvfStatus>(await call(`${name}/explore/ivf`));
  for (let i = 0; status.state === 'building'; i++) {
    assert.ok(i < 1000, 'the IVF-Flat is built in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
    status = await ok<IvfStatus>(await call(`${name}/explore/ivf`));
  }
  return status;
}

describe('GET …/explore', () => {
  it('says what each collection can show', async () => {
    const overview = await ok<ExploreOverview>(await request('pics/explore'));
    assert.equal(overview.size, 280);
    assert.equal(overview.indexKind, 'ivf-pq');
    assert.deepEqual(overview.ivf, {
      state: 'ready',
      source: 'collection',
      kind: 'ivf-pq',
      size: 280,
      numPartitions: 16,
      defaultNprobes: 16,
    });
    assert.equal(overview.ivfNote, null);
    // Without an IVF index of its own: an IVF-Flat of about √n partitions, built once asked for.
    const flat = await ok<ExploreOverview>(await request('small/explore'));
    assert.equal(flat.indexKind, 'flat');
    assert.deepEqual(flat.ivf, { state: 'idle', numPartitions: 4, defaultNprobes: 4 });
    assert.match(
      flat.ivfNote!,
      /^small searches exactly \(a Flat index over its 15 images\), which has no partitions: the IVF views show an IVF-Flat of 4 partitions built for this view/,
    );
    const hnsw = await ok<ExploreOverview>(await request('graph/explore'));
    assert.equal(hnsw.indexKind, 'hnsw');
    assert.deepEqual(hnsw.ivf, { state: 'idle', numPartitions: 17, defaultNprobes: 16 });
    assert.match(
      hnsw.ivfNote!,
      /^graph searches with an HNSW index, which has no partitions: the IVF views show an IVF-Flat of 17 partitions built for this view/,
    );
  });
});

describe('POST …/explore/ivf', () => {
  it('traces a query sent by id, by upload (with a crop) or by URL alike', async () => {
    const id = await sampleId();
    const byId = await ok<IvfTrace>(await request('pics/explore/ivf', json({ id, k: 5, nprobes: 4 })));
    const byUpload = await ok<IvfTrace>(
      await request('pics/explore/ivf', upload(sample, { k: '5', nprobes: '4' })),
    );
    const byUrl = await ok<IvfTrace>(
      await request('pics/explore/ivf', json({ url: `${imageBase}/query.jpg`, k: 5, nprobes: 4 })),
    );
    for (const trace of [byId, byUpload, byUrl]) {
      assert.equal(trace.results[0]!.id, id, 'the image itself comes first');
      assert.deepEqual(trace.coarse.probes, byId.coarse.probes);
      assert.equal(trace.coarse.probes.length, 4);
      assert.equal(
        trace.fine.total,
        trace.coarse.probes.reduce((s, p) => s + p.size, 0),
      );
      assert.equal(trace.kind, 'ivf-pq');
      assert.equal(trace.source, 'collection');
      assert.equal(trace.fineDistances, 'estimated');
    }
    const search = await ok<{ results: { id: number }[] }>(
      await request('pics/search', json({ id, k: 5, nprobes: 4 })),
    );
    assert.equal(byId.results[0]!.id, search.results[0]!.id);
    assert.match(
      byId.results[0]!.thumbnailUrl,
      new RegExp(`^/api/collections/pics/thumbnails/${id}\\?v=[0-9a-f]{16}$`),
    );

    const cropped = await ok<IvfTrace>(
      await request('pics/explore/ivf', upload(sample, { k: '3', crop: '0,0,24,24', nprobes: '16' })),
    );
    assert.equal(cropped.results.length, 3);
    assert.equal(cropped.coarse.probes.length, 16);
    // The crop is part of the query (the server keeps query vectors by image and crop).
    assert.notDeepEqual(
      cropped.coarse.distances,
      byUpload.coarse.distances,
      'the crop is searched, not the whole',
    );
  });

  it('refuses bad options and unknown collections, saying what to do', async () => {
    const id = await sampleId();
    await expectError(
      await request('pics/explore/ivf', json({ id, nprobes: 17 })),
      400,
      'OUT_OF_RANGE',
      /nprobes 17 is more than the 16 partitions .* use 1 to 16/,
    );
    await expectError(
      await request('pics/explore/ivf', json({ id, nprobes: 0 })),
      400,
      'INVALID_ARGUMENT',
      /nprobes/,
    );
    await expectError(await request('pics/explore/ivf', json({ id, k: 500 })), 400, 'INVALID_ARGUMENT', /k/);
    await expectError(await request('pics/explore/ivf', json({})), 400, 'INVALID_ARGUMENT', /"url" or "id"/);
    await expectError(await request('pics/explore/ivf', json({ id: 99_999 })), 404, 'NOT_FOUND');
    await expectError(await request('nosuch/explore/ivf', json({ id })), 404, 'COLLECTION_NOT_FOUND');
    await expectError(await request('nosuch/explore'), 404, 'COLLECTION_NOT_FOUND');
  });
});

describe('GET …/explore/partitions/:partition', () => {
  it('pages through a partition without repeats, and refuses one that does not exist', async () => {
    const id = await sampleId();
    const trace = await ok<IvfTrace>(await request('pics/explore/ivf', json({ id, nprobes: 1 })));
    const partition = trace.coarse.probes[0]!.partition;
    const seen = new Set<number>();
    for (let page = 0; ; page++) {
      const answer = await ok<PartitionPage>(
        await request(`pics/explore/partitions/${partition}?page=${page}&count=7`),
      );
      assert.equal(answer.size, trace.coarse.probes[0]!.size);
      for (const image of answer.images) {
        assert.ok(!seen.has(image.id));
        seen.add(image.id);
      }
      if (!answer.hasMore) break;
    }
    assert.equal(seen.size, trace.coarse.probes[0]!.size);
    assert.ok(seen.has(id), 'the query is in the nearest partition');
    await expectError(await request('pics/explore/partitions/16'), 400, 'OUT_OF_RANGE', /partitions 0 to 15/);
    for (const odd of ['0x1', '1e1', '-0', '1.0'])
      await expectError(await request(`pics/explore/partitions/${odd}`), 400, 'OUT_OF_RANGE', /No partition/);
    await expectError(await request('pics/explore/partitions/2?count=61'), 400, 'INVALID_ARGUMENT');
  });
});

describe('an IVF-RaBitQ collection in the IVF views', () => {
  it('shows its own partitions: the trace (estimated distances, its search’s results), a partition, the projection', async () => {
    const id = await sampleId(rabitq);
    const overview = await ok<ExploreOverview>(await request('rabitq/explore'));
    assert.equal(overview.indexKind, 'ivf-rabitq');
    assert.equal(overview.ivfNote, null, 'no IVF-Flat built for the view: nothing to explain');
    assert.ok(overview.ivf.state === 'ready' && overview.ivf.source === 'collection');
    assert.equal(overview.ivf.kind, 'ivf-rabitq');
    const trace = await ok<IvfTrace>(await request('rabitq/explore/ivf', json({ id, k: 5 })));
    assert.equal(trace.kind, 'ivf-rabitq');
    assert.equal(trace.source, 'collection');
    assert.equal(trace.fineDistances, 'estimated');
    assert.equal(trace.coarse.probes.length, overview.ivf.defaultNprobes);
    assert.equal(
      trace.fine.total,
      trace.coarse.probes.reduce((s, p) => s + p.size, 0),
    );
    // Probed nearest first, by the distances the map shows (chosen by i16 products: near ties may
    // trade places at the last probe).
    const probed = trace.coarse.probes.map((p) => p.distance);
    assert.deepEqual(
      probed,
      [...probed].sort((a, b) => a - b),
    );
    const others = trace.coarse.distances.filter(
      (_, l) => !trace.coarse.probes.some((p) => p.partition === l),
    );
    assert.ok(probed.at(-1)! <= Math.min(...others) + 2e-3, `${probed.at(-1)} ${Math.min(...others)}`);
    const search = await ok<{ results: { id: number }[] }>(
      await request('rabitq/search', json({ id, k: 5 })),
    );
    assert.deepEqual(
      trace.results.map((r) => r.id),
      search.results.map((r) => r.id),
    );
    assert.equal(trace.results[0]!.id, id);
    const nearest = trace.coarse.probes[0]!;
    const page = await ok<PartitionPage>(
      await request(`rabitq/explore/partitions/${nearest.partition}?count=60`),
    );
    assert.equal(page.size, nearest.size);
    const projection = await ok<ProjectionTrace>(
      await request('rabitq/explore/projection', json({ id, k: 4, nprobes: 3 })),
    );
    assert.equal(projection.mode, 'partitions');
    assert.equal(projection.kind, 'ivf-rabitq');
    assert.equal(projection.probes.length, 3);
  });
});

describe('POST …/explore/projection', () => {
  it('projects the probed partitions of the collection’s own IVF index', async () => {
    const id = await sampleId();
    const trace = await ok<ProjectionTrace>(
      await request('pics/explore/projection', json({ id, k: 4, nprobes: 3 })),
    );
    assert.equal(trace.mode, 'partitions');
    assert.equal(trace.source, 'collection');
    assert.equal(trace.kind, 'ivf-pq');
    assert.equal(trace.probes.length, 3);
    assert.equal(trace.shown + trace.omitted, trace.total);
    assert.equal(trace.points.x.length, trace.shown);
    assert.ok(trace.results.every((r) => trace.points.ids.includes(r.id)));
    assert.ok(trace.points.partitions.every((p) => trace.probes.includes(p)));
  });
});

describe('a projection is laid out off the event loop', () => {
  it('the server answers other requests while UMAP lays out the points, its event loop mostly idle', async () => {
    const { ids } = await pics.storedVectors();
    const project = (id: number) => request('pics/explore/projection', json({ id, k: 4, nprobes: 16 }));
    // A first projection loads what every one needs (the vectors, the layout's thread); the one measured
    // has another query, hence a layout of its own (not the cached one), of all 280 images.
    await ok<ProjectionTrace>(await project(ids[0]!));
    const before = performance.eventLoopUtilization();
    let computing = true;
    const projection = Promise.resolve(project(ids[137]!)).finally(() => {
      computing = false;
    });
    let answered = 0;
    while (computing) {
      const listed = await app.request('/api/collections');
      assert.equal(listed.status, 200);
      if (computing) answered++;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const trace = await ok<ProjectionTrace>(await projection);
    const busy = performance.eventLoopUtilization(before);
    assert.equal(trace.shown, 280);
    assert.equal(trace.layout.method, 'umap');
    assert.ok(answered > 0, 'another request was answered while the projection was computed');
    // Laid out on this thread, the event loop was busy about 70% of the time (about 10% off it).
    assert.ok(
      busy.utilization < 0.5,
      `the event loop was busy ${Math.round(busy.utilization * 100)}% of the ${Math.round(busy.idle + busy.active)} ms`,
    );
  });
});

describe('the IVF views of a collection without an IVF index', () => {
  it('answer "building, N%" until the IVF-Flat is built, then trace it; GET …/explore says so', async () => {
    const building = await ok<IvfBuilding>(
      await request('small/explore/ivf', upload(sample, { k: '3' })),
      202,
    );
    assert.equal(building.state, 'building');
    assert.equal(building.images, 15);
    assert.equal(building.numPartitions, 4);
    assert.match(building.message, /^Building an IVF-Flat of 4 partitions for small \(15 images\): \d+%$/);
    const meanwhile = await ok<IvfStatus>(await request('small/explore/ivf'));
    assert.ok(['building', 'ready'].includes(meanwhile.state), `the build started (${meanwhile.state})`);
    assert.deepEqual(await ivfReady('small'), {
      state: 'ready',
      source: 'explore',
      kind: 'ivf-flat',
      size: 15,
      numPartitions: 4,
      defaultNprobes: 4,
    });
    const overview = await ok<ExploreOverview>(await request('small/explore'));
    assert.equal(overview.ivf.state, 'ready');
    assert.equal((overview.ivf as { source: string }).source, 'explore');
    assert.match(overview.ivfNote!, /IVF-Flat of 4 partitions built for this view/);

    const trace = await ok<IvfTrace>(
      await request('small/explore/ivf', upload(sample, { k: '3', nprobes: '2' })),
    );
    assert.equal(trace.state, 'ready');
    assert.equal(trace.source, 'explore');
    assert.equal(trace.kind, 'ivf-flat');
    assert.equal(trace.fineDistances, 'exact');
    assert.equal(trace.coarse.numPartitions, 4);
    assert.equal(trace.coarse.probes.length, 2);
    assert.equal(
      trace.coarse.sizes.reduce((s, v) => s + v, 0),
      15,
      'every image in one partition',
    );
    assert.equal(
      trace.fine.total,
      trace.coarse.probes.reduce((s, p) => s + p.size, 0),
    );
    assert.equal(trace.results.length, 3);
    await expectError(
      await request('small/explore/ivf', json({ id: 1, nprobes: 5 })),
      400,
      'OUT_OF_RANGE',
      /nprobes 5 is more than the 4 partitions/,
    );
    // Every partition holds its share of the collection's images.
    const seen = new Set<number>();
    for (let partition = 0; partition < 4; partition++) {
      const page = await ok<PartitionPage>(await request(`small/explore/partitions/${partition}?count=60`));
      assert.equal(page.size, trace.coarse.sizes[partition]);
      for (const image of page.images) seen.add(image.id);
    }
    assert.equal(seen.size, 15);
    await expectError(
      await request('small/explore/partitions/4'),
      400,
      'OUT_OF_RANGE',
      /the IVF-Flat built for small's view has partitions 0 to 3/,
    );
    // The projection draws the probed partitions of the same IVF-Flat.
    const projection = await ok<ProjectionTrace>(
      await request('small/explore/projection', upload(sample, { k: '3', nprobes: '4' })),
    );
    assert.equal(projection.mode, 'partitions');
    assert.equal(projection.source, 'explore');
    assert.equal(projection.kind, 'ivf-flat');
    assert.equal(projection.note, null);
    assert.equal(projection.total, 15, 'all 4 partitions probed: every image');
    assert.equal(projection.results.length, 3);
    assert.ok(projection.points.partitions.every((p) => p >= 0 && p < 4));
  });

  it('trace an HNSW collection’s images in an IVF-Flat built for the view; its partition pages wait for it too', async () => {
    const id = await sampleId(graph);
    const first = await ok<IvfBuilding>(await request('graph/explore/partitions/0'), 202);
    assert.match(first.message, /^Building an IVF-Flat of 17 partitions for graph \(280 images\)/);
    assert.equal((await ivfReady('graph')).state, 'ready');
    const trace = await ok<IvfTrace>(await request('graph/explore/ivf', json({ id, k: 5, nprobes: 3 })));
    assert.equal(trace.source, 'explore');
    assert.equal(trace.kind, 'ivf-flat');
    assert.equal(trace.coarse.numPartitions, 17);
    assert.equal(trace.coarse.x.length, 17);
    assert.equal(trace.results[0]!.id, id, 'the image itself comes first');
    assert.equal(trace.results[0]!.partition, trace.coarse.probes[0]!.partition);
    assert.equal(
      trace.coarse.sizes.reduce((s, v) => s + v, 0),
      280,
    );
    const page = await ok<PartitionPage>(
      await request(`graph/explore/partitions/${trace.coarse.probes[0]!.partition}?count=60`),
    );
    assert.equal(page.size, trace.coarse.probes[0]!.size);
    // The HNSW view draws the collection's own graph, untouched by the IVF views.
    await ok(await request('graph/explore/hnsw', json({ id })), 202);
    let status = await ok<HnswStatus>(await request('graph/explore/hnsw'));
    for (let i = 0; status.state === 'building' && i < 500; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      status = await ok<HnswStatus>(await request('graph/explore/hnsw'));
    }
    assert.deepEqual(status, { state: 'ready', source: 'collection', size: 280 });
  });

  it('build the IVF-Flat again once the collection changed', async () => {
    assert.equal((await ivfReady('small')).state, 'ready');
    await writeClassFolders(join(dir, 'fresh'), 1, 2, 48, 77, 'fresh');
    await small.addImages(
      ['img000', 'img001'].map((name) => ({ path: join(dir, 'fresh', 'fresh0', `${name}.jpg`) })),
    );
    assert.deepEqual(await ok<IvfStatus>(await request('small/explore/ivf')), {
      state: 'idle',
      numPartitions: 4,
      defaultNprobes: 4,
    });
    await ok<IvfBuilding>(await request('small/explore/ivf', upload(sample, { k: '3' })), 202);
    const status = await ivfReady('small');
    assert.equal(status.state, 'ready');
    assert.equal((status as { size: number }).size, 17);
    const trace = await ok<IvfTrace>(await request('small/explore/ivf', upload(sample, { k: '3' })));
    assert.equal(
      trace.coarse.sizes.reduce((s, v) => s + v, 0),
      17,
    );
  });

  it('say why there are none past the cap, and the projection shows the collection instead', async () => {
    const router = new Hono();
    router.route(
      '/',
      exploreRouter({
        collection: () => small,
        embed: async () => (await small.storedVectors()).vectors.slice(0, small.manifest.dimension),
        maxBytes: 1_000_000,
        ivfMaxImages: 10,
        log: () => undefined,
      }),
    );
    // Errors as the app answers them.
    router.onError((error, c) => {
      const { code, message } = error as RisError;
      return c.json({ error: { code, message } }, HTTP_STATUS[code] as ContentfulStatusCode);
    });
    const call = (path: string, init?: RequestInit) => router.request(`/api/collections/${path}`, init);
    const reason =
      /small searches exactly \(a Flat index over its 17 images\): it has no partitions, and the IVF views build an IVF-Flat for this view only for collections under 10 images, so there is no coarse or fine step to show. The Projection view shows a sample of the collection/;
    const status = await ok<IvfStatus>(await call('small/explore/ivf'));
    assert.equal(status.state, 'unavailable');
    assert.match((status as { reason: string }).reason, reason);
    const overview = await ok<ExploreOverview>(await call('small/explore'));
    assert.equal(overview.ivf.state, 'unavailable');
    assert.match(overview.ivfNote!, reason);
    await expectError(await call('small/explore/ivf', json({ id: 1 })), 409, 'NO_PARTITIONS', reason);
    await expectError(await call('small/explore/partitions/0'), 409, 'NO_PARTITIONS', reason);
    const flat = await ok<ProjectionTrace>(
      await call('small/explore/projection', upload(sample, { k: '3' })),
    );
    assert.equal(flat.mode, 'collection');
    assert.equal(flat.source, null);
    assert.match(flat.note!, reason);
    assert.equal(flat.total, 17);
    assert.equal(flat.results.length, 3);
    assert.ok(flat.points.partitions.every((p) => p === -1));
  });
});

describe('a collection whose index lives elsewhere (PostgreSQL)', () => {
  it('offers the IVF views (an IVF-Flat built from its stored vectors) and the HNSW view', async () => {
    // The local collection as a PostgreSQL one looks to the server: no in-memory index.
    const elsewhere = new Proxy(pics, {
      get: (target, key) =>
        key === 'searchIndex'
          ? () => undefined
          : (Reflect.get(target, key, target).bind?.(target) ?? Reflect.get(target, key, target)),
    }) as ImageCollection;
    const remote = createApp({ collections: [elsewhere], log: () => undefined });
    const call = (path: string, init?: RequestInit) => remote.request(`/api/collections/pics/${path}`, init);
    const id = await sampleId();
    const overview = await ok<ExploreOverview>(await call('explore'));
    assert.deepEqual(overview.ivf, { state: 'idle', numPartitions: 17, defaultNprobes: 16 });
    assert.match(
      overview.ivfNote!,
      /^pics keeps its index outside this server \(ivf-pq\): the IVF views show an IVF-Flat of 17 partitions built for this view/,
    );
    // The projection waits for the partitions too.
    const building = await ok<IvfBuilding>(await call('explore/projection', json({ id, k: 3 })), 202);
    assert.match(building.message, /^Building an IVF-Flat of 17 partitions for pics \(280 images\)/);
    assert.equal(
      (await ivfReady('pics', (path, init) => remote.request(`/api/collections/${path}`, init))).state,
      'ready',
    );
    const ivf = await ok<IvfTrace>(await call('explore/ivf', json({ id, k: 3 })));
    assert.equal(ivf.source, 'explore');
    assert.equal(ivf.results[0]!.id, id);
    const projection = await ok<ProjectionTrace>(await call('explore/projection', json({ id, k: 3 })));
    assert.equal(projection.mode, 'partitions');
    assert.equal(projection.source, 'explore');
    assert.equal(projection.results[0]!.id, id);
    assert.equal(projection.shown, Math.min(projection.total, 1499));
    await ok<HnswBuilding>(await call('explore/hnsw', json({ id })), 202);
    let status = await ok<HnswStatus>(await call('explore/hnsw'));
    for (let i = 0; status.state === 'building' && i < 500; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      status = await ok<HnswStatus>(await call('explore/hnsw'));
    }
    assert.equal(status.state, 'ready');
    const trace = await ok<HnswTrace>(await call('explore/hnsw', json({ id, k: 3 })));
    assert.equal(trace.results[0]!.id, id);
  });
});

describe('POST …/explore/hnsw', () => {
  it('answers "building, N%" until the graph is built, then the levels and the path; a change builds it again', async () => {
    const id = await sampleId();
    assert.deepEqual(await ok<HnswStatus>(await request('pics/explore/hnsw')), { state: 'idle' });
    const building = await ok<HnswBuilding>(await request('pics/explore/hnsw', json({ id })), 202);
    assert.equal(building.state, 'building');
    assert.equal(building.images, 280);
    assert.match(building.message, /^Building the HNSW graph of pics \(280 images\): \d+%$/);
    let status = await ok<HnswStatus>(await request('pics/explore/hnsw'));
    for (let i = 0; status.state === 'building' && i < 500; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      status = await ok<HnswStatus>(await request('pics/explore/hnsw'));
    }
    assert.deepEqual(status, { state: 'ready', source: 'explore', size: 280 });

    const trace = await ok<HnswTrace>(await request('pics/explore/hnsw', json({ id, k: 5, efSearch: 32 })));
    assert.equal(trace.source, 'explore');
    assert.equal(trace.efSearch, 32);
    assert.equal(trace.graph.size, 280);
    assert.equal(trace.trace.length, trace.graph.levels.length, 'the path passes every level');
    assert.equal(trace.trace.at(-1)!.level, 0);
    assert.equal(trace.results[0]!.id, id);
    assert.equal(trace.trace.at(-1)!.best.id, trace.results[0]!.id, 'the path ends at the first result');
    const byUpload = await ok<HnswTrace>(
      await request('pics/explore/hnsw', upload(sample, { k: '5', efSearch: '32' })),
    );
    assert.deepEqual(
      byUpload.results.map((r) => r.id),
      trace.results.map((r) => r.id),
    );
    await expectError(
      await request('pics/explore/hnsw', json({ id, efSearch: 5000 })),
      400,
      'INVALID_ARGUMENT',
      /efSearch/,
    );

    // The collection changes: the graph is built again (from the new generation) before it answers.
    await writeClassFolders(join(dir, 'more'), 1, 3, 48, 99, 'more');
    await pics.addImages(
      ['img000', 'img001', 'img002'].map((name) => ({ path: join(dir, 'more', 'more0', `${name}.jpg`) })),
    );
    assert.deepEqual(await ok<HnswStatus>(await request('pics/explore/hnsw')), { state: 'idle' });
    await ok<HnswBuilding>(await request('pics/explore/hnsw', json({ id })), 202);
    for (let i = 0; status.state !== 'ready' || status.size !== 283; i++) {
      assert.ok(i < 500, 'the graph is built again');
      await new Promise((resolve) => setTimeout(resolve, 10));
      status = await ok<HnswStatus>(await request('pics/explore/hnsw'));
    }
  });

  it('says why a collection too large for a graph built on demand has none', async () => {
    const router = new Hono();
    router.route(
      '/',
      exploreRouter({
        collection: () => small,
        embed: async () => new Float32Array(small.manifest.dimension),
        maxBytes: 1_000_000,
        hnswMaxImages: 10,
        log: () => undefined,
      }),
    );
    const status = await ok<HnswStatus>(await router.request('/api/collections/small/explore/hnsw'));
    assert.equal(status.state, 'unavailable');
    assert.match(
      (status as { reason: string }).reason,
      /small has \d+ images: the HNSW view builds a graph only for collections under 10/,
    );
  });

  it('answers HNSW_UNAVAILABLE to a trace that cannot be drawn', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'ris-explore-empty-'));
    try {
      const model = await writeTinyModel(
        empty,
        'tiny',
        'float',
        tinyConfig({ tensor: 'features', pooling: 'none' }),
      );
      await writeClassFolders(join(empty, 'none'), 1, 1, 48, 1, 'none');
      const { collection } = await indexCollection('gone', join(empty, 'none'), {
        model,
        home: join(empty, 'home'),
      });
      const bytes = await readFile(join(empty, 'none', 'none0', 'img000.jpg'));
      await collection.removeImages([0, 1]);
      const emptyApp = createApp({ collections: [collection], log: () => undefined });
      await expectError(
        await emptyApp.request('/api/collections/gone/explore/hnsw', upload(bytes)),
        409,
        'HNSW_UNAVAILABLE',
        /gone has no images yet/,
      );
      await expectError(
        await emptyApp.request('/api/collections/gone/explore/ivf', upload(bytes)),
        409,
        'NO_PARTITIONS',
        /gone has no images yet, hence no partitions to show/,
      );
      await collection.close();
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
