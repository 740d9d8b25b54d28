import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ArgumentError, FlatIndex, IvfFlatIndex, NO_ID, StateError } from '../src/index.ts';
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

  it("leaves the caller's bytes intact when changed after fromBytes (copy on write)", () => {
    const index = new FlatIndex({ dimension: d });
    index.add(base.subarray(0, 200 * d));
    const bytes = index.toBytes();
    const pristine = bytes.slice();
    const loaded = FlatIndex.fromBytes(bytes);
    assert.equal(loaded.remove([0, 5, 199]), 3);
    assert.ok(Buffer.from(bytes).equals(Buffer.from(pristine)), "remove wrote into the caller's bytes");
    loaded.add(base.subarray(200 * d, 210 * d));
    assert.ok(Buffer.from(bytes).equals(Buffer.from(pristine)), "add wrote into the caller's bytes");
    index.remove([0, 5, 199]);
    index.add(base.subarray(200 * d, 210 * d));
    assert.deepEqual(loaded.searchBatch(queries, 10), index.searchBatch(queries, 10));
    assert.deepEqual(loaded.ids(), index.ids());
    // The bytes still open as the index they were.
    assert.equal(FlatIndex.fromBytes(bytes).size, 200);
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

  it('refuses a second train while it holds vectors (ALREADY_TRAINED), keeping them', async () => {
    const index = new IvfFlatIndex({ dimension: d, numPartitions: 10 });
    await index.train(base);
    index.add(base.subarray(0, 300 * d));
    await assert.rejects(index.train(base), (error: unknown) => {
      assert.ok(error instanceof StateError, String(error));
      assert.equal(error.code, 'ALREADY_TRAINED');
      assert.match(error.message, /holds 300 vectors/);
      return true;
    });
    assert.equal(index.size, 300);
    assert.equal(index.search(base.subarray(7 * d, 8 * d), 1, { nprobes: 10 }).ids[0], 7);
    // An empty trained index may be trained again.
    const empty = new IvfFlatIndex({ dimension: d, numPartitions: 10 });
    await empty.train(base);
    await empty.train(base.subarray(0, 1000 * d));
    assert.equal(empty.numPartitions, 10);
  });

  it('never writes into the bytes it was read from, and shows its partitions', async () => {
    const index = new IvfFlatIndex({ dimension: d, numPartitions: 10 });
    await index.train(base);
    index.add(base.subarray(0, 1000 * d));
    const bytes = index.toBytes();
    const pristine = bytes.slice();
    const loaded = IvfFlatIndex.fromBytes(bytes);
    loaded.remove([1, 2, 3]);
    loaded.add(base.subarray(1000 * d, 1010 * d));
    assert.ok(Buffer.from(bytes).equals(Buffer.from(pristine)), "the caller's bytes changed");
    index.remove([1, 2, 3]);
    index.add(base.subarray(1000 * d, 1010 * d));
    assert.deepEqual(
      loaded.searchBatch(queries, 10, { nprobes: 3 }),
      index.searchBatch(queries, 10, { nprobes: 3 }),
    );
    assert.equal(index.centroids().length, 10 * d);
    const sizes = index.partitionSizes();
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      1007,
    );
    const members = Array.from({ length: 10 }, (_, l) => [...index.partitionIds(l)]).flat();
    assert.deepEqual(
      members.sort((a, b) => a - b),
      [...index.ids()].sort((a, b) => a - b),
    );
  });
});
