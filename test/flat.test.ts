import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ArgumentError, FlatIndex, IvfFlatIndex, NO_ID } from '../src/index.ts';
import { clustered, recallAtK } from './helpers.ts';

const d = 24;
const base = clustered(3000, d, 20);
const queries = clustered(100, d, 20, 42);

function bruteForce(q: Float32Array, k: number): number[] {
  const dist = Array.from({ length: base.length / d }, (_, i) => {
    let s = 0;
    for (let j = 0; j < d; j++) s += (q[j]! - base[i * d + j]!) ** 2;
    return [s, i] as const;
  });
  return dist
    .sort((a, b) => a[0] - b[0])
    .slice(0, k)
    .map(([, i]) => i);
}

describe('FlatIndex', () => {
  it('finds exactly the nearest vectors (checked by brute force)', () => {
    const index = new FlatIndex({ dimension: d });
    index.add(base);
    for (let i = 0; i < 5; i++) {
      const q = queries.subarray(i * d, (i + 1) * d);
      assert.deepEqual([...index.search(q, 5).ids], bruteForce(q, 5));
    }
  });

  it('cosine and dot distances follow their definitions', () => {
    const v = Float32Array.of(3, 4, 0, 0);
    const w = Float32Array.of(0, 2, 0, 0);
    const cosine = new FlatIndex({ dimension: 4, distanceType: 'cosine' });
    cosine.add(v);
    assert.ok(Math.abs(cosine.search(w, 1).distances[0]! - (1 - 0.8)) < 1e-6);
    const dot = new FlatIndex({ dimension: 4, distanceType: 'dot' });
    dot.add(v);
    assert.ok(Math.abs(dot.search(w, 1).distances[0]! - (1 - 8)) < 1e-6);
  });

  it('removes, pads, and round-trips through bytes', () => {
    const index = new FlatIndex({ dimension: d });
    index.add(base.subarray(0, 10 * d));
    assert.equal(index.remove([0, 1]), 2);
    const q = base.subarray(0, d);
    assert.ok(!index.search(q, 8).ids.includes(0));
    const padded = index.searchBatch(q, 10);
    assert.equal(padded.ids[8], NO_ID);
    const again = FlatIndex.fromBytes(index.toBytes());
    assert.deepEqual(again.searchBatch(queries, 5), index.searchBatch(queries, 5));
    assert.throws(() => index.add(base.subarray(0, d), Uint32Array.of(3)), ArgumentError);
  });
});

describe('IvfFlatIndex', () => {
  it('reaches full recall when every partition is probed, and high recall at a few', async () => {
    const exact = new FlatIndex({ dimension: d });
    exact.add(base);
    const truth = exact.searchBatch(queries, 10);
    const index = new IvfFlatIndex({ dimension: d, numPartitions: 30 });
    await index.train(base);
    index.add(base);
    assert.equal(recallAtK(index.searchBatch(queries, 10, { nprobes: 30 }), truth, 100, 10), 1);
    assert.ok(recallAtK(index.searchBatch(queries, 10, { nprobes: 5 }), truth, 100, 10) > 0.8);
    const again = IvfFlatIndex.fromBytes(index.toBytes());
    assert.deepEqual(
      again.searchBatch(queries, 10, { nprobes: 5 }),
      index.searchBatch(queries, 10, { nprobes: 5 }),
    );
    assert.equal(index.remove([0, 1, 2]), 3);
    assert.equal(index.size, 2997);
  });
});
