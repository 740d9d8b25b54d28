import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { createHnswBuilder, type HnswBuilder } from '../ann/hnsw-parallel.ts';

/**
 * Spreads HNSW builds over `threads` threads (default: every core), for `HnswOptions.builder`: src/ann
 * creates no threads, so the Node side starts the workers. Resolves once every worker has loaded (an add
 * blocks this thread while they work, so they must be up first).
 */
export async function createNodeHnswBuilder(options: { threads?: number } = {}): Promise<HnswBuilder> {
  const threads = Math.max(1, options.threads ?? availableParallelism());
  const entry = new URL(
    `./hnsw-build-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`,
    import.meta.url,
  ).href;
  const workers = Array.from(
    { length: threads - 1 },
    () => new Worker(new URL('./ts-worker.mjs', import.meta.url), { workerData: { entry } }),
  );
  try {
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise((resolve, reject) => {
            worker.once('message', resolve);
            worker.once('error', reject);
          }),
      ),
    );
  } catch (error) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw error;
  }
  // Idle workers must not keep the process alive.
  for (const worker of workers) worker.unref();
  return createHnswBuilder(
    workers.map((worker) => ({
      postMessage: (message: unknown) => worker.postMessage(message),
      terminate: () => worker.terminate(),
    })),
  );
}
