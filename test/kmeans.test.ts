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
    // Six distinct points, each repeated 100 times, and six centroids: a random start that puts two
    // centroids on copies of one point leaves one of them empty until it is split off elsewhere.
    const d = 4;
    const n = 600;
    const data = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      data[i * d] = (i % 6) * 10;
      data[i * d + 1] = i % 3;
      data[i * d + 2] = 1;
    }
    for (let seed = 1; seed <= 20; seed++) {
      const { centroids } = await kmeans(data, d, { numCentroids: 6, seed, init: 'random' });
      // Clusters that receive at least one point, by brute force.
      const used = new Set<number>();
      for (let i = 0; i < n; i++) {
        let best = Number.POSITIVE_INFINITY;
        let label = -1;
        for (let c = 0; c < 6; c++) {
          let s = 0;
          for (let j = 0; j < d; j++) s += (data[i * d + j]! - centroids[c * d + j]!) ** 2;
          if (s < best) {
            best = s;
            label = c;
          }
        }
        used.add(label);
      }
      assert.equal(used.size, 6, `seed ${seed}: ${used.size} of 6 centroids hold points`);
    }
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
