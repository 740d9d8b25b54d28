import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Random } from '../src/ann/random.ts';
import {
  type BuildWorker,
  createHnswBuilder,
  type HnswBuilder,
  HnswIndex,
  handleHnswBuildMessage,
  StateError,
  useKernels,
} from '../src/index.ts';
import { clustered, exactNeighbours, recallAtK } from './helpers.ts';

// This file is also the entry of the build workers it starts (through src/node/ts-worker.mjs).
if (!isMainThread && (workerData as { role?: string }).role === 'hnsw-builder') {
  parentPort!.on('message', handleHnswBuildMessage);
  parentPort!.postMessage('loaded');
} else {
  const d = 24;
  const n = 6000;
  const base = clustered(n, d, 60);
  const queries = clustered(100, d, 60, 3);

  let workers: Worker[] = [];
  let builder: HnswBuilder;
  before(async () => {
    workers = [0].map(
      () =>
        new Worker(new URL('../src/node/ts-worker.mjs', import.meta.url), {
          workerData: { entry: import.meta.url, role: 'hnsw-builder' },
        }),
    );
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))));
    builder = createHnswBuilder(workers.map(port));
  });
  after(async () => {
    await builder.close();
  });

  function port(worker: Worker): BuildWorker {
    return { postMessage: (message) => worker.postMessage(message), terminate: () => worker.terminate() };
  }

  describe('HnswIndex with a builder (searches of a build on several threads)', () => {
    it('builds the same graph on two threads as on one, with the recall of a one-by-one build', () => {
      const parallel = new HnswIndex({ dimension: d, m: 8, efConstruction: 80, builder });
      parallel.add(base);
      const alone = new HnswIndex({ dimension: d, m: 8, efConstruction: 80, builder: createHnswBuilder([]) });
      alone.add(base);
      assert.deepEqual(parallel.toBytes(), alone.toBytes(), 'batches do not depend on the thread count');
      const sequential = new HnswIndex({ dimension: d, m: 8, efConstruction: 80 });
      sequential.add(base);
      const truth = exactNeighbours(base, queries, d);
      const nq = queries.length / d;
      const a = recallAtK(parallel.searchBatch(queries, 10, { efSearch: 32 }), truth, nq, 10);
      const b = recallAtK(sequential.searchBatch(queries, 10, { efSearch: 32 }), truth, nq, 10);
      assert.ok(a >= b - 0.01, `recall ${a} built in batches vs ${b} one by one`);
    });

    it('vectors that arrive sorted by class (a folder of classes) link to each other: recall of a one-by-one build', () => {
      // 60 classes of 100 consecutive vectors: whole batches come from one class, and a batch's nodes
      // are not in the graph while their candidates are searched.
      const sorted = new Float32Array(n * d);
      for (let c = 0; c < 60; c++) sorted.set(clustered(100, d, 1, 100 + c), c * 100 * d);
      const random = new Random(5);
      const nq = 200;
      const near = new Float32Array(nq * d);
      for (let i = 0; i < nq; i++) {
        const row = random.int(n);
        for (let j = 0; j < d; j++) near[i * d + j] = sorted[row * d + j]! + 0.05 * random.gaussian();
      }
      const truth = exactNeighbours(sorted, near, d);
      const recall = (index: HnswIndex) => {
        index.add(sorted);
        return recallAtK(index.searchBatch(near, 10, { efSearch: 32 }), truth, nq, 10);
      };
      const a = recall(new HnswIndex({ dimension: d, m: 8, efConstruction: 80, builder }));
      const b = recall(new HnswIndex({ dimension: d, m: 8, efConstruction: 80 }));
      assert.ok(a >= b - 0.01, `recall ${a} built in batches vs ${b} one by one`);
    });

    it('goes on after the graph moves to a bigger memory, and with tombstones', () => {
      const index = new HnswIndex({ dimension: d, m: 8, efConstruction: 60, builder, compactAt: 1 });
      for (let i = 0; i < n; i += 1500) index.add(base.subarray(i * d, (i + 1500) * d));
      index.remove(Uint32Array.from({ length: 500 }, (_, i) => i * 3));
      index.add(clustered(2000, d, 60, 9));
      assert.equal(index.size, n - 500 + 2000);
      for (const id of [1, 4000, 5999])
        assert.equal(index.search(base.subarray(id * d, (id + 1) * d), 1).ids[0], id);
    });

    it('builds on this thread alone under the TypeScript kernels (no shared memory there)', () => {
      useKernels('js');
      try {
        const index = new HnswIndex({ dimension: d, m: 8, efConstruction: 40, builder });
        index.add(base.subarray(0, 2000 * d));
        assert.equal(index.search(base.subarray(1500 * d, 1501 * d), 1).ids[0], 1500);
      } finally {
        useKernels('wasm-simd');
      }
    });

    it('a failing worker: the add completes on this thread, then says so with WORKER_FAILED', () => {
      // A worker that reports a failure as soon as it is asked to attach.
      const failing = createHnswBuilder([
        {
          postMessage(message) {
            new Int32Array((message as { control: SharedArrayBuffer }).control)[13] = 1;
          },
          terminate() {},
        },
      ]);
      const index = new HnswIndex({ dimension: d, m: 8, efConstruction: 40, builder: failing });
      assert.throws(
        () => index.add(base.subarray(0, 3000 * d)),
        (error: unknown) => {
          assert.ok(error instanceof StateError);
          assert.equal(error.code, 'WORKER_FAILED');
          assert.match(
            error.message,
            /An HNSW build thread failed while starting; the 3000 vectors were added on this thread instead \(the index is complete\)\. Close the builder/,
          );
          return true;
        },
      );
      assert.equal(index.size, 3000);
      for (const id of [0, 1234, 2999])
        assert.equal(index.search(base.subarray(id * d, (id + 1) * d), 1).ids[0], id);
    });

    it('a closed builder refuses with WORKER_FAILED (and the add still completes)', async () => {
      const closed = createHnswBuilder([]);
      await closed.close();
      const index = new HnswIndex({ dimension: d, builder: closed });
      assert.throws(
        () => index.add(base.subarray(0, 2000 * d)),
        /This HNSW builder is closed; the 2000 vectors were added on this thread instead/,
      );
      assert.equal(index.size, 2000);
    });
  });
}
