import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Assigner } from '../ann/kmeans.ts';
import { localAssigner } from '../ann/kmeans.ts';

export interface ParallelAssigner extends Assigner {
  readonly threads: number;
  /** Stops the worker threads; the assigner cannot be used afterwards. */
  close(): Promise<void>;
}

/**
 * Spreads k-means' assignment step over `threads` threads (default: every core): this thread takes one
 * share of the points and each worker another, so training uses the whole machine. Results equal the
 * single-threaded ones exactly (each point's assignment does not depend on the split).
 */
export function createParallelAssigner(options: { threads?: number } = {}): ParallelAssigner {
  const threads = Math.max(1, options.threads ?? availableParallelism());
  const entry = new URL(`./assign-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)
    .href;
  const workers = Array.from({ length: threads - 1 }, () => {
    const worker = new Worker(new URL('./ts-worker.mjs', import.meta.url), { workerData: { entry } });
    worker.unref();
    return worker;
  });

  const request = <T>(worker: Worker, message: unknown, transfer: Transferable[] = []) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (reply: T) => {
        worker.off('error', onError);
        resolve(reply);
      };
      const onError = (error: Error) => {
        worker.off('message', onMessage);
        reject(error);
      };
      worker.once('message', onMessage);
      worker.once('error', onError);
      worker.postMessage(message, transfer as never);
    });

  return {
    threads,
    async begin(points, n, d) {
      if (workers.length === 0 || n < 1024) return localAssigner.begin(points, n, d);
      const share = Math.ceil(n / threads);
      // This thread keeps the first share; the workers get copies of the others.
      const local = await localAssigner.begin(points.subarray(0, share * d), share, d);
      const ranges = workers.map(
        (_, w) => [Math.min(n, (w + 1) * share), Math.min(n, (w + 2) * share)] as const,
      );
      await Promise.all(
        workers.map((worker, w) => {
          const chunk = points.slice(ranges[w]![0] * d, ranges[w]![1] * d);
          return request(worker, { type: 'begin', points: chunk, d }, [chunk.buffer]);
        }),
      );
      return {
        async assign(centroids, k, labels, distances) {
          const remote = workers.map((worker, w) =>
            request<{ labels: Int32Array; distances: Float32Array }>(worker, {
              type: 'assign',
              centroids,
              k,
            }).then((reply) => {
              labels.set(reply.labels, ranges[w]![0]);
              distances.set(reply.distances, ranges[w]![0]);
            }),
          );
          await local.assign(centroids, k, labels.subarray(0, share), distances.subarray(0, share));
          await Promise.all(remote);
        },
        end() {
          local.end();
          for (const worker of workers) worker.postMessage({ type: 'end' });
        },
      };
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
