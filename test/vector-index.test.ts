import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  FlatIndex,
  type IndexKind,
  IvfFlatIndex,
  IvfPqIndex,
  loadIndex,
  openIndex,
  PqIndex,
  useKernels,
  type VectorIndex,
} from '../src/index.ts';
import { clustered, recallAtK } from './helpers.ts';

const d = 16;
const base = clustered(3000, d, 30);
const queries = clustered(50, d, 30, 77);
const nq = queries.length / d;

const KINDS: [IndexKind, () => VectorIndex][] = [
  ['flat', () => new FlatIndex({ dimension: d })],
  ['ivf-flat', () => new IvfFlatIndex({ dimension: d, numPartitions: 16 })],
  [
    'ivf-pq',
    () => new IvfPqIndex({ dimension: d, numPartitions: 16, numSubVectors: 8, refineStorage: 'float16' }),
  ],
  ['pq', () => new PqIndex({ dimension: d, numSubVectors: 8, refineStorage: 'float16' })],
];
const OPTIONS = { nprobes: 4, refineFactor: 4 };

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-vector-index-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('every kind behind one VectorIndex interface', () => {
  for (const [kind, make] of KINDS) {
    it(`${kind}: train, add, search, remove, ids, describe, and its file opened by openIndex / loadIndex`, async () => {
      const index = make();
      assert.equal(index.kind, kind);
      assert.equal(index.trained, kind === 'flat');
      await index.train(base);
      assert.ok(index.trained);
      assert.deepEqual(
        index.add(base),
        Uint32Array.from({ length: 3000 }, (_, i) => i),
      );
      assert.equal(index.size, 3000);
      for (const id of [0, 1234, 2999]) {
        assert.equal(index.search(base.subarray(id * d, (id + 1) * d), 1, OPTIONS).ids[0], id);
      }
      assert.equal(index.remove([0, 1, 2]), 3);
      assert.equal(index.size, 2997);
      assert.deepEqual(
        [...index.ids()].sort((a, b) => a - b),
        Array.from({ length: 2997 }, (_, i) => i + 3),
      );
      assert.notEqual(index.search(base.subarray(0, d), 1, OPTIONS).ids[0], 0);

      const description = index.describe();
      assert.equal(description.kind, kind);
      assert.equal(description.dimension, d);
      assert.equal(description.distanceType, 'l2');
      assert.equal(description.size, 2997);
      assert.equal(description.trained, true);
      assert.equal(description.memoryBytes, index.memoryUsage().total);
      assert.ok(description.memoryBytes > 0);
      assert.deepEqual(JSON.parse(JSON.stringify(description)), description, 'plain data');

      const opened = openIndex(index.toBytes(), `${kind}.ris`);
      assert.equal(opened.constructor, index.constructor);
      assert.deepEqual(opened.describe(), description);
      assert.deepEqual(opened.searchBatch(queries, 10, OPTIONS), index.searchBatch(queries, 10, OPTIONS));
      const file = join(dir, `${kind}.ris`);
      await index.save(file);
      const loaded = await loadIndex(file);
      assert.deepEqual(loaded.searchBatch(queries, 10, OPTIONS), index.searchBatch(queries, 10, OPTIONS));
      assert.deepEqual(loaded.toBytes(), index.toBytes());
    });

    it(`${kind}: searches exactly as before after useKernels switches kernels under it`, async () => {
      const index = make();
      await index.train(base);
      index.add(base);
      // The first searches make the index's matrices resident in the current WebAssembly instance.
      const before = index.searchBatch(queries, 10, OPTIONS);
      try {
        assert.equal(useKernels('wasm-simd'), 'wasm-simd'); // a new instance, with a memory of its own
        assert.deepEqual(index.searchBatch(queries, 10, OPTIONS), before);
        assert.equal(useKernels('js'), 'js');
        const js = index.searchBatch(queries, 10, OPTIONS);
        assert.ok(recallAtK(js, before, nq, 10) >= 0.99);
        for (let i = 0; i < js.distances.length; i++)
          assert.ok(
            Math.abs(js.distances[i]! - before.distances[i]!) <= 1e-3 * Math.max(1, before.distances[i]!),
          );
        useKernels('wasm-simd');
        assert.deepEqual(index.searchBatch(queries, 10, OPTIONS), before);
        // Adding and removing on the new kernels keeps working too.
        index.remove([5]);
        index.add(base.subarray(5 * d, 6 * d), Uint32Array.of(5));
        assert.equal(index.search(base.subarray(5 * d, 6 * d), 1, OPTIONS).ids[0], 5);
      } finally {
        useKernels('wasm-simd');
      }
    });
  }
});
