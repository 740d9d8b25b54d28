import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ArgumentError,
  type DistanceType,
  HnswIndex,
  type IvfExplanation,
  IvfFlatIndex,
  IvfPqIndex,
  StateError,
} from '../src/index.ts';
import { clustered, trainedWith } from './helpers.ts';

const d = 24;
const base = clustered(3000, d, 30);
const queries = clustered(20, d, 30, 5);

/** What every IVF explanation must satisfy, whatever the kind. */
function checkIvf(
  index: IvfFlatIndex | IvfPqIndex,
  query: Float32Array,
  k: number,
  options: { nprobes: number; refineFactor?: number },
): IvfExplanation {
  const explained = index.explainSearch(query, k, options);
  const { coarse, fine } = explained;
  assert.deepEqual(fine.results, index.search(query, k, options), 'the results are search’s');
  // Coarse: one distance per partition; the probed ones are the nprobes nearest, nearest first.
  assert.equal(coarse.distances.length, index.numPartitions);
  assert.equal(coarse.probed.length, options.nprobes);
  const sorted = [...coarse.distances].sort((a, b) => a - b);
  coarse.probed.forEach((l, i) => {
    if (i > 0)
      assert.ok(
        coarse.distances[coarse.probed[i - 1]!]! <= coarse.distances[l]!,
        'probe order is distance order',
      );
    assert.ok(
      Math.abs(coarse.distances[l]! - sorted[i]!) <= 1e-4 * (1 + Math.abs(sorted[i]!)),
      'the nearest partitions are probed',
    );
  });
  // Fine: every vector of every probed partition, once, tagged with its partition, in probe order.
  const sizes = index.partitionSizes();
  const expected = [...coarse.probed].reduce((s, l) => s + sizes[l]!, 0);
  assert.equal(fine.ids.length, expected, 'candidates = the probed partitions’ sizes');
  assert.equal(fine.partitions.length, expected);
  assert.equal(fine.distances.length, expected);
  let at = 0;
  for (const l of coarse.probed) {
    const members = index.partitionIds(l);
    assert.deepEqual(fine.ids.subarray(at, at + members.length), members);
    assert.ok(fine.partitions.subarray(at, at + members.length).every((p) => p === l));
    at += members.length;
  }
  // Without refine, the results are the k nearest candidates by the scan's distance.
  if (!options.refineFactor) {
    const order = [...fine.distances.keys()].sort((a, b) => fine.distances[a]! - fine.distances[b]!);
    const kth = fine.distances[order[Math.min(k, order.length) - 1]!]!;
    for (let i = 0; i < fine.results.ids.length; i++) {
      assert.ok(fine.results.distances[i]! <= kth + 1e-5 * (1 + Math.abs(kth)));
      const j = fine.ids.indexOf(fine.results.ids[i]!);
      assert.ok(Math.abs(fine.distances[j]! - fine.results.distances[i]!) <= 1e-5 * (1 + Math.abs(kth)));
    }
  }
  return explained;
}

describe('explainSearch of IVF indexes', () => {
  for (const distanceType of ['l2', 'cosine', 'dot'] as DistanceType[]) {
    it(`IVF-Flat (${distanceType}): coarse and fine steps agree with search and the partitions`, async () => {
      const index = await trainedWith(
        new IvfFlatIndex({ dimension: d, numPartitions: 20, distanceType }),
        base,
      );
      for (let i = 0; i < queries.length / d; i++) {
        const query = queries.subarray(i * d, (i + 1) * d);
        const explained = checkIvf(index, query, 5, { nprobes: 1 + (i % 6) });
        // IVF-Flat scans exact distances: each candidate's is its distance to the query.
        const j = explained.fine.ids.indexOf(explained.fine.results.ids[0]!);
        assert.equal(explained.fine.distances[j], explained.fine.results.distances[0]);
      }
    });
  }

  it('IVF-PQ: the same, with the product-quantized distances, and with refine', async () => {
    const index = await trainedWith(
      new IvfPqIndex({ dimension: d, numPartitions: 16, numSubVectors: 8, refineStorage: 'float16' }),
      base,
    );
    for (let i = 0; i < queries.length / d; i++) {
      const query = queries.subarray(i * d, (i + 1) * d);
      checkIvf(index, query, 10, { nprobes: 1 + (i % 5) });
      checkIvf(index, query, 10, { nprobes: 3, refineFactor: 4 });
    }
  });

  it('IVF-PQ with an OPQ transform: the coarse step works in the rotated space', async () => {
    const index = await trainedWith(
      new IvfPqIndex({ dimension: d, numPartitions: 8, numSubVectors: 6, transform: { type: 'opq' } }),
      base,
    );
    checkIvf(index, queries.subarray(0, d), 5, { nprobes: 4 });
  });

  it('errors: untrained, bad query, bad nprobes', async () => {
    const untrained = new IvfFlatIndex({ dimension: d, numPartitions: 4 });
    assert.throws(
      () => untrained.explainSearch(queries.subarray(0, d), 3),
      (e: unknown) => {
        assert.ok(e instanceof StateError);
        assert.equal(e.code, 'NOT_TRAINED');
        assert.match(e.message, /Cannot search an untrained index; call await index.train\(vectors\) first/);
        return true;
      },
    );
    const index = await trainedWith(new IvfFlatIndex({ dimension: d, numPartitions: 4 }), base);
    assert.throws(
      () => index.explainSearch(new Float32Array(3), 3),
      (e: unknown) => {
        assert.ok(e instanceof ArgumentError);
        assert.equal(e.code, 'DIMENSION_MISMATCH');
        return true;
      },
    );
    assert.throws(
      () => index.explainSearch(queries.subarray(0, d), 3, { nprobes: 5 }),
      (e: unknown) => {
        assert.ok(e instanceof ArgumentError);
        assert.equal(e.code, 'OUT_OF_RANGE');
        assert.match(e.message, /Expected nprobes to be an integer between 1 and 4 but received 5/);
        return true;
      },
    );
  });
});

describe('explainSearch of HNSW at other dimensions and storages', () => {
  // 203 dimensions: past the 64-dimension checkpoints of the early-exit distance, and a scalar tail.
  for (const [dimension, storage, distanceType] of [
    [203, 'float32', 'l2'],
    [128, 'float32', 'l2'],
    [40, 'float16', 'cosine'],
    [48, 'int8', 'l2'],
    [48, 'int8', 'dot'],
  ] as const) {
    it(`${dimension} dimensions, ${storage}, ${distanceType}: explained results are search's, ending at the first`, () => {
      const data = clustered(1500, dimension, 20, 11);
      const q = clustered(10, dimension, 20, 12);
      const index = new HnswIndex({ dimension, storage, distanceType, m: 8, efConstruction: 64 });
      index.add(data);
      for (let i = 0; i < 10; i++) {
        const query = q.subarray(i * dimension, (i + 1) * dimension);
        const explained = index.explainSearch(query, 10, { efSearch: 20 });
        assert.deepEqual(explained.results, index.search(query, 10, { efSearch: 20 }));
        const bottom = explained.levels.at(-1)!;
        assert.equal(bottom.level, 0);
        assert.equal(bottom.best.id, explained.results.ids[0]);
        const upper = explained.levels.slice(0, -1);
        for (const level of upper) {
          // Above level 0 the path only ever gets nearer.
          for (let j = 1; j < level.visited.distances.length; j++) {
            assert.ok(level.visited.distances[j]! < level.visited.distances[j - 1]!);
          }
        }
      }
    });
  }
});
