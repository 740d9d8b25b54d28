// The Explore computations without HTTP (src/explore): layouts, samples, caps, and the traces' payloads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HnswIndex } from '../src/ann/hnsw.ts';
import { IvfFlatIndex } from '../src/ann/ivf-flat.ts';
import { IvfPqIndex } from '../src/ann/ivf-pq.ts';
import { kmeans, localAssigner } from '../src/ann/kmeans.ts';
import { Random } from '../src/ann/random.ts';
import type { ImageCollection } from '../src/collection/store.ts';
import { hnswGraphView, hnswTrace, hnswTraceView, idsNamed } from '../src/explore/hnsw.ts';
import { HnswViews } from '../src/explore/hnsw-views.ts';
import {
  candidatesToSend,
  coarseLayout,
  ivfTrace,
  labelTable,
  partitionPageIds,
  queryPlace,
} from '../src/explore/ivf.ts';
import {
  IVF_VIEW_PARTITIONS,
  IvfViews,
  ivfViewPartitions,
  slicedAssigner,
} from '../src/explore/ivf-views.ts';
import { layoutVectors, pcaAxes, rankSpread, UMAP_MIN_POINTS } from '../src/explore/layout.ts';
import { projectionTrace } from '../src/explore/projection.ts';
import { sampleIndices, sampleKeeping } from '../src/explore/sample.ts';
import type { VectorSnapshot } from '../src/explore/snapshots.ts';
import { VectorSnapshots } from '../src/explore/snapshots.ts';
import { EXPLORE_CAPS, type ExploreImage } from '../src/explore/types.ts';
import { clustered } from './helpers.ts';

const image = (id: number): ExploreImage => ({
  id,
  labels: [`class${id % 7}`],
  width: 64,
  height: 64,
  imageUrl: `/api/collections/c/images/${id}?v=0123456789abcdef`,
  thumbnailUrl: `/api/collections/c/thumbnails/${id}?v=0123456789abcdef`,
});
const labelsOf = (id: number) => [`class${id % 7}`];
const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
const inUnitSquare = (points: ArrayLike<number>) => Array.from(points).every((v) => v >= 0 && v <= 1);

async function ivfIndex(n: number, d: number, partitions: number, trainOn = n) {
  const data = clustered(n, d, Math.max(2, Math.round(partitions / 2)), 11);
  const index = new IvfFlatIndex({
    dimension: d,
    numPartitions: partitions,
    distanceType: 'cosine',
    seed: 1,
  });
  await index.train(data.subarray(0, trainOn * d));
  index.add(data);
  return { index, data };
}

describe('layouts', () => {
  it('are the same for the same seed, differ for another, and fit the unit square', async () => {
    const data = clustered(120, 24, 6, 3);
    const a = await layoutVectors(data, 120, 24, 1);
    const b = await layoutVectors(data, 120, 24, 1);
    const c = await layoutVectors(data, 120, 24, 2);
    assert.equal(a.method, 'umap');
    assert.deepEqual(a.points, b.points, 'same seed, same layout');
    assert.notDeepEqual(a.points, c.points, 'another seed, another layout');
    assert.ok(inUnitSquare(a.points));
    const few = await layoutVectors(data, UMAP_MIN_POINTS - 1, 24, 1);
    assert.equal(few.method, 'pca', 'too few points for UMAP neighbourhoods');
    assert.deepEqual(few.points, (await layoutVectors(data, UMAP_MIN_POINTS - 1, 24, 1)).points);
    assert.equal((await layoutVectors(new Float32Array(0), 0, 24, 1)).points.length, 0);
  });

  it('keep neighbours together: most points are nearest a point of their own cluster', async () => {
    // 4 far-apart clusters of 40 points in 32 dimensions.
    const random = new Random(5);
    const d = 32;
    const data = new Float32Array(160 * d);
    for (let i = 0; i < 160; i++)
      for (let j = 0; j < d; j++) data[i * d + j] = (j % 4 === i % 4 ? 4 : 0) + random.gaussian() * 0.3;
    const { points } = await layoutVectors(data, 160, d, 1);
    let same = 0;
    for (let i = 0; i < 160; i++) {
      let best = -1;
      let bestDistance = Number.POSITIVE_INFINITY;
      for (let j = 0; j < 160; j++) {
        if (j === i) continue;
        const dist = (points[i * 2]! - points[j * 2]!) ** 2 + (points[i * 2 + 1]! - points[j * 2 + 1]!) ** 2;
        if (dist < bestDistance) [best, bestDistance] = [j, dist];
      }
      if (best % 4 === i % 4) same++;
    }
    assert.ok(same >= 150, `${same} of 160 points next to their own cluster`);
  });

  it('PCA finds the direction of most variance, with a fixed sign', () => {
    const random = new Random(9);
    const d = 40;
    const n = 500;
    const direction = Float32Array.from({ length: d }, () => random.gaussian());
    const norm = Math.hypot(...direction);
    const data = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      const t = random.gaussian() * 10;
      for (let j = 0; j < d; j++) data[i * d + j] = (t * direction[j]!) / norm + random.gaussian() * 0.5;
    }
    const first = pcaAxes(data, n, d, 2, 1);
    const again = pcaAxes(data, n, d, 2, 1);
    assert.deepEqual(first.axes, again.axes);
    let cos = 0;
    for (let j = 0; j < d; j++) cos += (first.axes[j]! * direction[j]!) / norm;
    assert.ok(Math.abs(cos) > 0.99, `first axis along the stretched direction (cos ${cos})`);
  });

  it('rankSpread keeps each axis in order and places a new point among the others', () => {
    const points = Float32Array.of(0.1, 0.5, 0.11, 0.52, 0.12, 0.9, 0.9, 0.1);
    const { points: spread, place } = rankSpread(points, 0.6);
    const order = (axis: number, p: Float32Array) =>
      [0, 1, 2, 3].sort((a, b) => p[a * 2 + axis]! - p[b * 2 + axis]!);
    assert.deepEqual(order(0, spread), order(0, points));
    assert.deepEqual(order(1, spread), order(1, points));
    assert.ok(spread[2]! - spread[0]! > points[2]! - points[0]!, 'a clump opens up');
    const q = place(0.115, 0.7);
    assert.ok(q.x > spread[2]! && q.x < spread[4]!, 'the query lands between its neighbours');
    assert.ok(inUnitSquare(spread));
  });
});

describe('samples', () => {
  it('respect the cap, keep what must be kept, and are the same for a seed', () => {
    assert.deepEqual(sampleIndices(5, 10, 1), Uint32Array.of(0, 1, 2, 3, 4));
    const a = sampleKeeping(10_000, 300, (i) => i % 1000 === 7, 1);
    assert.equal(a.length, 300);
    for (let i = 7; i < 10_000; i += 1000) assert.ok(a.includes(i), `${i} kept`);
    assert.deepEqual(
      a,
      sampleKeeping(10_000, 300, (i) => i % 1000 === 7, 1),
    );
    assert.ok(
      a.every((v, i) => i === 0 || v > a[i - 1]!),
      'ascending, no repeats',
    );
  });

  it('page through a partition without repeats', () => {
    const members = Uint32Array.from({ length: 50 }, (_, i) => 1000 + i);
    const seen = new Set<number>();
    for (let page = 0; ; page++) {
      const { ids, hasMore } = partitionPageIds(members, page, 12);
      for (const id of ids) {
        assert.ok(!seen.has(id));
        seen.add(id);
      }
      if (!hasMore) break;
    }
    assert.equal(seen.size, 50);
  });
});

describe('the IVF trace', () => {
  it('probes in distance order, sends every candidate of the probed partitions below the cap, and the results', async () => {
    const { index, data } = await ivfIndex(3000, 16, 20);
    const query = data.subarray(5 * 16, 6 * 16);
    const explanation = index.explainSearch(query, 5, { nprobes: 5 });
    const layout = await coarseLayout(index);
    assert.equal(await coarseLayout(index), layout, 'one map per index');
    const sizes = index.partitionSizes();
    const shown = candidatesToSend(explanation.fine);
    const trace = ivfTrace({
      collection: 'c',
      source: 'collection',
      kind: index.kind,
      size: index.size,
      k: 5,
      nprobes: 5,
      timeMs: 1,
      thumbnailBase: '/t/',
      fineDistances: 'exact',
      explanation,
      sizes,
      layout,
      shown,
      labelsOf,
      imageOf: image,
    });
    const { coarse, fine } = trace;
    assert.equal(coarse.x.length, 20);
    assert.ok(inUnitSquare(coarse.x) && inUnitSquare(coarse.y));
    const nearest = [...sizes.keys()].sort((a, b) => coarse.distances[a]! - coarse.distances[b]!).slice(0, 5);
    assert.deepEqual(
      coarse.probes.map((p) => p.partition),
      nearest,
      'the 5 nearest partitions, nearest first',
    );
    coarse.probes.forEach((p, i) => {
      assert.equal(p.size, sizes[p.partition]);
      if (i > 0) assert.ok(p.distance >= coarse.probes[i - 1]!.distance);
    });
    const probedSizes = coarse.probes.reduce((s, p) => s + p.size, 0);
    assert.equal(fine.total, probedSizes, 'candidates = the probed partitions’ sizes');
    assert.equal(fine.shown, probedSizes, 'all of them below the cap');
    assert.equal(fine.omitted, 0);
    assert.ok(fine.partitions.every((p) => nearest.includes(p)));
    assert.deepEqual(
      trace.results.map((r) => r.id),
      Array.from(index.search(query, 5, { nprobes: 5 }).ids),
      'the results are search’s',
    );
    assert.equal(trace.results[0]!.id, 5);
    assert.equal(trace.results[0]!.partition, coarse.probes[0]!.partition);
    // The query sits in the nearest partition's cell.
    const place = queryPlace(layout.points, explanation.coarse.distances, explanation.coarse.probed);
    let closest = 0;
    for (let l = 1; l < 20; l++)
      if (
        (layout.points[l * 2]! - place.x) ** 2 + (layout.points[l * 2 + 1]! - place.y) ** 2 <
        (layout.points[closest * 2]! - place.x) ** 2 + (layout.points[closest * 2 + 1]! - place.y) ** 2
      )
        closest = l;
    assert.equal(closest, coarse.probes[0]!.partition);
    // Labels as a table: each text once.
    assert.equal(fine.labels.of.length, fine.ids.length);
    assert.equal(new Set(fine.labels.names).size, fine.labels.names.length);
    assert.equal(fine.labels.names[fine.labels.of[0]!], labelsOf(fine.ids[0]!).join(', '));
  });

  it('samples past the cap, keeping the results, and says how many were left out', async () => {
    const { index, data } = await ivfIndex(3000, 16, 20);
    const explanation = index.explainSearch(data.subarray(0, 16), 10, { nprobes: 12 });
    const shown = candidatesToSend(explanation.fine, 100);
    assert.equal(shown.length, 100);
    const ids = new Set(Array.from(shown, (i) => explanation.fine.ids[i]!));
    for (const id of explanation.fine.results.ids) assert.ok(ids.has(id), `result ${id} is sent`);
  });

  it('stays small for a 100,000-image index', async () => {
    const { index, data } = await ivfIndex(100_000, 8, 316, 20_000);
    const explanation = index.explainSearch(data.subarray(0, 8), 50, { nprobes: 64 });
    assert.ok(explanation.fine.ids.length > 5 * EXPLORE_CAPS.candidates, 'far more candidates than the cap');
    const trace = ivfTrace({
      collection: 'c',
      source: 'collection',
      kind: index.kind,
      size: index.size,
      k: 50,
      nprobes: 64,
      timeMs: 1,
      thumbnailBase: '/t/',
      fineDistances: 'exact',
      explanation,
      sizes: index.partitionSizes(),
      layout: await coarseLayout(index),
      shown: candidatesToSend(explanation.fine),
      labelsOf,
      imageOf: image,
    });
    assert.equal(trace.fine.shown, EXPLORE_CAPS.candidates);
    assert.equal(trace.fine.omitted, explanation.fine.ids.length - EXPLORE_CAPS.candidates);
    const size = bytes(trace);
    assert.ok(size < 120_000, `${size} bytes`);
  });
});

describe('the HNSW trace', () => {
  const d = 16;
  const data = clustered(4000, d, 12, 21);
  const index = new HnswIndex({ dimension: d, distanceType: 'cosine', m: 8, efConstruction: 60, seed: 1 });
  index.add(data);

  it('samples each level within the caps and counts it whole', () => {
    const levels = index.levels();
    const view = hnswGraphView(levels, 100, 150);
    assert.deepEqual(
      view.map((l) => l.level),
      levels.map((l) => l.level).reverse(),
      'top level first',
    );
    for (const level of view) {
      const whole = levels.find((l) => l.level === level.level)!;
      assert.equal(level.nodes, whole.ids.length);
      assert.equal(level.links, whole.links.length);
      assert.ok(level.sample.nodes.length <= 100);
      assert.ok(level.sample.edges.length <= 2 * 150);
      assert.equal(level.sample.nodes.length, Math.min(100, whole.ids.length));
    }
    assert.deepEqual(hnswGraphView(levels, 100, 150), view, 'the same sample every time');
  });

  it('ends at the results, names a place for every node it mentions, and keeps the steps that moved the search', () => {
    const query = data.subarray(17 * d, 18 * d);
    const explanation = index.explainSearch(query, 5, { efSearch: 32 });
    const graph = hnswGraphView(index.levels());
    const places = new Map<number, { x: number; y: number }>();
    const random = new Random(1);
    for (const id of index.ids()) places.set(id, { x: random.next(), y: random.next() });
    const trace = hnswTrace({
      collection: 'c',
      source: 'explore',
      k: 5,
      timeMs: 1,
      thumbnailBase: '/t/',
      m: 8,
      efConstruction: 60,
      size: index.size,
      graph,
      explanation,
      placeOf: (id) => places.get(id),
      query: { x: 0.5, y: 0.5 },
      labelsOf,
      imageOf: image,
    });
    const last = trace.trace.at(-1)!;
    assert.equal(last.level, 0, 'the trace ends on level 0');
    assert.deepEqual(
      trace.results.map((r) => r.id),
      Array.from(index.search(query, 5, { efSearch: 32 }).ids),
    );
    assert.equal(trace.results[0]!.id, 17);
    assert.equal(last.best.id, trace.results[0]!.id, 'level 0 ends at the first result');
    for (let l = 0; l + 1 < trace.trace.length; l++)
      assert.equal(
        trace.trace[l + 1]!.entry.id,
        trace.trace[l]!.best.id,
        'each level starts where the one above ended',
      );
    const named = new Set(trace.positions.ids);
    for (const id of idsNamed(trace.graph.levels, trace.trace, explanation.results.ids))
      assert.ok(named.has(id));

    const capped = hnswTraceView(explanation, 3, 10);
    const whole = explanation.levels.at(-1)!;
    const level0 = capped.at(-1)!;
    assert.equal(level0.visited.ids.length, Math.min(3, whole.visited.ids.length));
    assert.equal(level0.visited.total, whole.visited.ids.length);
    assert.equal(level0.links.total, whole.links.from.length);
    const accepted = whole.links.accepted.reduce((s, a) => s + a, 0);
    assert.equal(
      level0.links.accepted.filter((a) => a === 1).length,
      Math.min(10, accepted),
      'the steps are kept',
    );
    assert.ok(level0.links.from.length <= 10);
  });

  it('stays small for a 20,000-node graph', () => {
    const big = new HnswIndex({ dimension: 8, distanceType: 'cosine', m: 8, efConstruction: 40, seed: 1 });
    const vectors = clustered(20_000, 8, 40, 3);
    big.add(vectors);
    const explanation = big.explainSearch(vectors.subarray(0, 8), 20, { efSearch: 512 });
    const trace = hnswTrace({
      collection: 'c',
      source: 'explore',
      k: 20,
      timeMs: 1,
      thumbnailBase: '/t/',
      m: 8,
      efConstruction: 40,
      size: big.size,
      graph: hnswGraphView(big.levels()),
      explanation,
      placeOf: (id) => ({ x: (id % 100) / 100, y: (id % 37) / 37 }),
      query: { x: 0.5, y: 0.5 },
      labelsOf,
      imageOf: image,
    });
    for (const level of trace.trace) assert.ok(level.links.from.length <= EXPLORE_CAPS.hnswLinksPerLevel);
    const size = bytes(trace);
    assert.ok(size < 250_000, `${size} bytes`);
  });
});

/** A snapshot of vectors as a collection would give it. */
function snapshotOf(vectors: Float32Array, d: number, firstId = 100): VectorSnapshot {
  const n = vectors.length / d;
  const ids = Uint32Array.from({ length: n }, (_, i) => firstId + i);
  return {
    generation: '1/1',
    ids,
    vectors,
    dimension: d,
    labels: Array.from(ids, (id) => labelsOf(id)),
    rowOf: new Map(Array.from(ids, (id, row) => [id, row])),
  };
}

describe('the projection', () => {
  it('lays out the members with the query, within the cap, the results always in', async () => {
    const d = 12;
    const vectors = clustered(400, d, 5, 8);
    const snapshot = snapshotOf(vectors, d);
    const results = [image(100 + 399), image(100 + 3)].map((r, i) => ({ ...r, rank: i + 1, distance: 0.1 }));
    const input = {
      collection: 'c',
      mode: 'collection' as const,
      source: null,
      kind: null,
      note: null,
      k: 2,
      nprobes: null,
      thumbnailBase: '/t/',
      snapshot,
      memberIds: snapshot.ids,
      memberPartitions: null,
      probes: [],
      query: vectors.slice(3 * d, 4 * d),
      toIndexSpace: (v: Float32Array) => v,
      results,
      maxPoints: 60,
    };
    const trace = await projectionTrace(input);
    assert.equal(trace.shown, 59, 'one place is the query’s');
    assert.equal(trace.total, 400);
    assert.equal(trace.omitted, 341);
    for (const r of results) assert.ok(trace.points.ids.includes(r.id));
    assert.ok(inUnitSquare(trace.points.x) && inUnitSquare(trace.points.y));
    assert.ok(inUnitSquare([trace.query.x, trace.query.y]));
    assert.deepEqual((await projectionTrace(input)).points, trace.points, 'seeded');
    assert.deepEqual(trace.points.labels, labelTable(trace.points.ids, labelsOf));
  });
});

/** Enough of a collection for the HNSW and IVF views: its vectors, count and generation, changed at will. */
function fakeCollection(n: number, d = 8) {
  const state = { vectors: clustered(n, d, 4, 2), generation: 1, reads: 0 };
  // Ids that are not the rows: 7, 10, 13, …
  const col = {
    name: 'fake',
    manifest: { dimension: d },
    searchIndex: () => undefined,
    status: async () => ({
      generation: state.generation,
      databaseGeneration: state.generation,
      kind: 'flat',
    }),
    count: async () => state.vectors.length / d,
    storedVectors: async () => {
      state.reads++;
      const count = state.vectors.length / d;
      return {
        ids: Uint32Array.from({ length: count }, (_, i) => 7 + 3 * i),
        vectors: state.vectors,
        paths: [],
        labels: Array.from({ length: count }, () => ['x']),
      };
    },
  } as unknown as ImageCollection;
  return { col, state, d };
}

describe('the HNSW views', () => {
  it('build in the background with progress, are cached, and are built again once the collection changed', async () => {
    const { col, state, d } = fakeCollection(600);
    const snapshots = new VectorSnapshots();
    const views = new HnswViews({ snapshots, batchSize: 50 });
    assert.deepEqual((await views.status(col, false)).status, { state: 'idle' }, 'nothing starts by looking');
    const started = await views.status(col, true);
    assert.equal(started.status.state, 'building');
    const seen: number[] = [];
    while ((await views.status(col, false)).status.state === 'building') {
      const status = (await views.status(col, false)).status;
      if (status.state === 'building') seen.push(status.percent);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(
      seen.some((p) => p > 0 && p < 100),
      `progress reported on the way (${seen.slice(0, 5)}…)`,
    );
    const ready = await views.status(col, true);
    assert.equal(ready.status.state, 'ready');
    assert.equal(ready.view!.index.size, 600);
    assert.equal(state.reads, 1);
    assert.equal((await views.status(col, true)).view, ready.view, 'cached');

    state.vectors = clustered(650, d, 4, 2);
    state.generation = 2;
    assert.deepEqual((await views.status(col, false)).status, { state: 'idle' });
    assert.equal((await views.status(col, true)).status.state, 'building');
    await views.settled(col);
    const rebuilt = await views.status(col, false);
    assert.equal(rebuilt.status.state, 'ready');
    assert.equal(rebuilt.view!.index.size, 650);
    assert.ok(inUnitSquare(rebuilt.view!.plane.points));
  });

  it("draw the collection's own HNSW index when it has one, without building another", async () => {
    const { col, d } = fakeCollection(300);
    const own = new HnswIndex({ dimension: d, distanceType: 'cosine', m: 8, efConstruction: 40, seed: 3 });
    own.add((await col.storedVectors()).vectors);
    const withIndex = Object.assign(Object.create(col), {
      searchIndex: () => ({ index: own, query: (v: Float32Array) => v }),
    }) as ImageCollection;
    const views = new HnswViews({ snapshots: new VectorSnapshots(), maxImages: 100 });
    assert.equal(
      (await views.status(withIndex, true)).status.state,
      'building',
      'its planes are laid out first',
    );
    await views.settled(withIndex);
    const { status, view } = await views.status(withIndex, false);
    assert.deepEqual(status, { state: 'ready', source: 'collection', size: 300 });
    assert.equal(view!.index, own, 'its own index, even above the size for building one');
  });

  it('say why there is no graph for a large or an empty collection', async () => {
    const views = new HnswViews({ snapshots: new VectorSnapshots(), maxImages: 500 });
    const large = await views.status(fakeCollection(600).col, true);
    assert.equal(large.status.state, 'unavailable');
    assert.match((large.status as { reason: string }).reason, /fake has 600 images: .* under 500/);
    const empty = await views.status(fakeCollection(0).col, true);
    assert.equal(empty.status.state, 'unavailable');
  });
});

/** Polls `views` until the build of `col` is over; returns the percentages seen on the way. */
async function progressOf(views: IvfViews, col: ImageCollection): Promise<number[]> {
  const seen: number[] = [];
  for (;;) {
    const { status } = await views.status(col, false);
    if (status.state !== 'building') return seen;
    seen.push(status.percent);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Every id of an IVF index, partition by partition. */
function membersOf(index: { numPartitions: number; partitionIds(l: number): Uint32Array }): number[] {
  const ids: number[] = [];
  for (let l = 0; l < index.numPartitions; l++) ids.push(...index.partitionIds(l));
  return ids;
}

describe('the IVF views', () => {
  it('have 100 partitions, or about √n for fewer than 100 × 39 images', () => {
    assert.equal(IVF_VIEW_PARTITIONS, 100);
    assert.equal(ivfViewPartitions(0), 0);
    assert.equal(ivfViewPartitions(1), 1);
    assert.equal(ivfViewPartitions(15), 4);
    assert.equal(ivfViewPartitions(600), 24);
    assert.equal(ivfViewPartitions(3_899), 62);
    assert.equal(ivfViewPartitions(3_900), 100);
    assert.equal(ivfViewPartitions(9_144), 100);
    assert.equal(ivfViewPartitions(1_000_000), 100);
  });

  it('build an IVF-Flat in the background with progress: every stored id in exactly one partition', async () => {
    const { col, state } = fakeCollection(600);
    const views = new IvfViews({ snapshots: new VectorSnapshots(), sliceRows: 50 });
    assert.deepEqual(
      (await views.status(col, false)).status,
      { state: 'idle', numPartitions: 24, defaultNprobes: 16 },
      'nothing starts by looking',
    );
    const started = await views.status(col, true);
    assert.deepEqual(started.status, {
      state: 'building',
      percent: 0,
      images: 600,
      numPartitions: 24,
      defaultNprobes: 16,
    });
    assert.equal(started.view, undefined);
    const seen = await progressOf(views, col);
    assert.ok(
      seen.filter((p) => p > 5 && p < 80).length >= 3,
      `k-means reports its progress step by step (${seen.join(',')})`,
    );
    assert.ok(
      seen.every((p, i) => i === 0 || p >= seen[i - 1]!),
      'the progress never goes back',
    );
    const { status, view } = await views.status(col, true);
    assert.deepEqual(status, {
      state: 'ready',
      source: 'explore',
      kind: 'ivf-flat',
      size: 600,
      numPartitions: 24,
      defaultNprobes: 16,
    });
    const index = view!.index;
    assert.ok(index instanceof IvfFlatIndex);
    assert.equal(index.distanceType, 'cosine', 'as the collection searches');
    const members = membersOf(index);
    const stored = (await col.storedVectors()).ids;
    assert.equal(members.length, stored.length, 'no id twice');
    assert.deepEqual(
      members.sort((a, b) => a - b),
      Array.from(stored),
      'every stored id in exactly one partition',
    );
    assert.ok(
      Array.from(index.partitionSizes()).every((size) => size > 0),
      'no empty partition',
    );
    assert.equal(state.reads, 2, 'the stored vectors are read once for the build (and once above)');
    assert.equal((await views.status(col, true)).view, view, 'cached');
    // The partitions are the index's: a stored vector's nearest partition holds it.
    const row = 17;
    const found = index.search(state.vectors.subarray(row * 8, (row + 1) * 8), 1, { nprobes: 1 });
    assert.equal(found.ids[0], 7 + 3 * row);
  });

  it('build 100 partitions from 100 × 39 images on', async () => {
    const { col } = fakeCollection(3_900, 4);
    const views = new IvfViews({ snapshots: new VectorSnapshots() });
    await views.status(col, true);
    await views.settled(col);
    const { status, view } = await views.status(col, false);
    assert.equal(status.state, 'ready');
    assert.equal(view!.index.numPartitions, 100);
    assert.equal(membersOf(view!.index).length, 3_900);
  });

  it('are built again once the collection changed, and a build overtaken by a change gives way', async () => {
    const { col, state, d } = fakeCollection(600);
    const views = new IvfViews({ snapshots: new VectorSnapshots(), sliceRows: 20 });
    await views.status(col, true);
    await views.settled(col);
    const first = (await views.status(col, false)).view!;
    assert.equal(first.index.size, 600);

    state.vectors = clustered(3_000, d, 4, 2);
    state.generation = 2;
    assert.equal((await views.status(col, false)).status.state, 'idle', 'a change is not built by looking');
    assert.equal((await views.status(col, true)).status.state, 'building');
    // Its k-means under way, the collection changes again (to fewer images: the newer build is done first).
    for (;;) {
      const { status } = await views.status(col, false);
      if (status.state === 'building' && status.percent >= 10) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    state.vectors = clustered(100, d, 4, 2);
    state.generation = 3;
    const third = await views.status(col, true);
    assert.equal(third.status.state, 'building');
    assert.equal((third.status as { images: number }).images, 100);
    // Until no build runs any more: the overtaken one must stop, not finish later over the newer one.
    await views.settled(col);
    const { status, view } = await views.status(col, false);
    assert.equal(status.state, 'ready');
    assert.notEqual(view, first);
    assert.equal(view!.index.size, 100);
    assert.equal(view!.index.numPartitions, ivfViewPartitions(100));
    assert.equal(membersOf(view!.index).length, 100);
  });

  it("use the collection's own IVF index as it is, whatever its size", async () => {
    const { col, d } = fakeCollection(300);
    const { ids, vectors } = await col.storedVectors();
    const own = new IvfPqIndex({
      dimension: d,
      distanceType: 'cosine',
      numPartitions: 8,
      numSubVectors: 2,
      seed: 1,
    });
    await own.train(clustered(300, d, 4, 2));
    own.add(vectors, ids);
    const withIndex = Object.assign(Object.create(col), {
      searchIndex: () => ({ index: own, query: (v: Float32Array) => v }),
    }) as ImageCollection;
    const views = new IvfViews({ snapshots: new VectorSnapshots(), maxImages: 100 });
    const { status, view } = await views.status(withIndex, true);
    assert.deepEqual(status, {
      state: 'ready',
      source: 'collection',
      kind: 'ivf-pq',
      size: 300,
      numPartitions: 8,
      defaultNprobes: 8,
    });
    assert.equal(view!.index, own, 'its own index, nothing built, even above the size for building one');
    assert.equal(view!.source, 'collection');
  });

  it('say why there are no partitions for a collection past the cap, or an empty one', async () => {
    const views = new IvfViews({ snapshots: new VectorSnapshots(), maxImages: 500 });
    const large = await views.status(fakeCollection(600).col, true);
    assert.equal(large.status.state, 'unavailable');
    assert.match(
      (large.status as { reason: string }).reason,
      /fake searches exactly \(a Flat index over its 600 images\): it has no partitions, and the IVF views build an IVF-Flat for this view only for collections under 500 images/,
    );
    assert.equal(large.view, undefined);
    // One image under the cap: built.
    const under = fakeCollection(499).col;
    assert.equal((await views.status(under, true)).status.state, 'building');
    await views.settled(under);
    assert.equal((await views.status(under, false)).status.state, 'ready');
    const empty = await views.status(fakeCollection(0).col, true);
    assert.equal(empty.status.state, 'unavailable');
    assert.match((empty.status as { reason: string }).reason, /fake has no images yet/);
  });

  it('say why a build failed, and log it', async () => {
    const { col } = fakeCollection(100);
    const broken = Object.assign(Object.create(col), {
      storedVectors: async () => {
        throw new Error('disk gone');
      },
    }) as ImageCollection;
    const lines: string[] = [];
    const views = new IvfViews({ snapshots: new VectorSnapshots(), log: (line) => lines.push(line) });
    await views.status(broken, true);
    await views.settled(broken);
    const { status } = await views.status(broken, true);
    assert.deepEqual(status, {
      state: 'failed',
      reason: 'building the IVF-Flat of fake for its IVF views failed: disk gone',
    });
    assert.deepEqual(lines, [status.state === 'failed' ? status.reason : '']);
  });

  it('train in slices to the same centroids as in one piece', async () => {
    const d = 16;
    const data = clustered(2_000, d, 12, 5);
    let slices = 0;
    let pauses = 0;
    const sliced = slicedAssigner({
      rows: 128,
      pause: async () => {
        pauses++;
      },
      onSlice: () => {
        slices++;
      },
    });
    const options = { numCentroids: 12, maxIterations: 6, tolerance: 0, seed: 3 };
    const whole = await kmeans(data, d, { ...options, assigner: localAssigner });
    const inSlices = await kmeans(data, d, { ...options, assigner: sliced });
    assert.equal(inSlices.iterations, whole.iterations);
    assert.equal(slices, 6 * Math.ceil(2_000 / 128), 'every step in slices of 128 rows');
    assert.ok(pauses >= slices, 'a pause after each slice');
    for (let i = 0; i < whole.centroids.length; i++)
      assert.ok(Math.abs(whole.centroids[i]! - inSlices.centroids[i]!) < 1e-4, `centroid value ${i}`);
    assert.ok(Math.abs(whole.objective - inSlices.objective) < 1e-3 * whole.objective);
  });
});
