import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ArgumentError, createParallelAssigner, kmeans, useKernels } from '../src/index.ts';
import { clustered } from './helpers.ts';

describe('kmeans', () => {
  it('is deterministic for a seed and differs across seeds', async () => {
    const data = clustered(2000, 16, 12);
    const a = await kmeans(data, 16, { numCentroids: 12, seed: 5 });
    const b = await kmeans(data, 16, { numCentroids: 12, seed: 5 });
    const c = await kmeans(data, 16, { numCentroids: 12, seed: 6 });
    assert.deepEqual(a.centroids, b.centroids);
    assert.notDeepEqual(a.centroids, c.centroids);
  });

  it('finds well separated clusters (objective near the noise floor)', async () => {
    const d = 16;
    const data = clustered(3000, d, 8, 1, 0.05);
    const { objective } = await kmeans(data, d, { numCentroids: 8, seed: 1 });
    // Noise variance per point: d × 0.05², so the optimum is about n·d·0.0025.
    assert.ok(objective / 3000 < d * 0.0025 * 1.5, `objective per point ${objective / 3000}`);
  });

  it('repairs empty clusters so every centroid is used', async () => {
    // 3 distinct points repeated, 6 centroids requested: duplicates force splits.
    const d = 4;
    const data = new Float32Array(600 * d);
    for (let i = 0; i < 600; i++) data[i * d] = (i % 3) * 10;
    const { centroids } = await kmeans(data, d, { numCentroids: 6, seed: 2, init: 'random' });
    assert.ok(centroids.every(Number.isFinite));
  });

  it('gives the same centroids with worker threads as in one thread', async () => {
    const data = clustered(6000, 32, 20);
    const assigner = createParallelAssigner({ threads: 2 });
    try {
      const single = await kmeans(data, 32, { numCentroids: 20, seed: 3 });
      const parallel = await kmeans(data, 32, { numCentroids: 20, seed: 3, assigner });
      assert.deepEqual(parallel.centroids, single.centroids);
    } finally {
      await assigner.close();
    }
  });

  it('gives the same clustering with the TypeScript fallback kernels', async () => {
    const data = clustered(1500, 12, 6, 9, 0.1);
    const wasm = await kmeans(data, 12, { numCentroids: 6, seed: 4 });
    useKernels('js');
    try {
      const js = await kmeans(data, 12, { numCentroids: 6, seed: 4 });
      assert.ok(Math.abs(js.objective - wasm.objective) <= 1e-3 * wasm.objective);
    } finally {
      useKernels('wasm-simd');
    }
  });

  it('refuses fewer points than centroids, saying how many are needed', async () => {
    await assert.rejects(kmeans(new Float32Array(10 * 4), 4, { numCentroids: 20 }), (error: unknown) => {
      assert.ok(error instanceof ArgumentError);
      assert.equal(error.code, 'TOO_FEW_TRAINING_VECTORS');
      assert.match(error.message, /needs at least 20 training vectors but received 10/);
      return true;
    });
  });
});
