// The worker side of layoutOffThread: UMAP and PCA layouts (src/explore/layout.ts) off the event loop.
import { parentPort } from 'node:worker_threads';
import { layoutVectors } from '../explore/layout.ts';

parentPort!.on('message', async (job: { data: Float32Array; n: number; d: number; seed: number }) => {
  try {
    const layout = await layoutVectors(job.data, job.n, job.d, job.seed);
    parentPort!.postMessage({ layout }, [layout.points.buffer as ArrayBuffer]);
  } catch (error) {
    parentPort!.postMessage({
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
  }
});
parentPort!.postMessage('loaded');
