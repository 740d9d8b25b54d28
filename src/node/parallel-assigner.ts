import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type Assigner, type LloydStep, localAssigner } from '../ann/kmeans.ts';

export interface ParallelAssigner extends Assigner {
  readonly threads: number;
  /** Resolves once every worker has loaded its code (a few hundred ms after creation). */
  ready(): Promise<void>;
  /** Stops the worker threads; the assigner cannot be used afterwards. */
  close(): Promise<void>;
}

/**
 * Spreads k-means' Lloyd step (assignment and cluster sums) over `threads` threads (default: every core): this thread takes one
 * share of the points and each worker another, so training uses the whole machine. Results equal the
 * single-threaded ones up to the order in which cluster sums are added.
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
  // Each worker says once that it has loaded; requests wait for that, so the first reply is theirs.
  const loaded = Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve)))).then(
    () => {},
  );

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
    ready: () => loaded,
    async begin(points, n, d) {
      if (workers.length === 0 || n < 1024) return localAssigner.begin(points, n, d);
      await loaded;
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
        async step(centroids, k) {
          const remote = workers.map((worker) => request<LloydStep>(worker, { type: 'step', centroids, k }));
          const total = await local.step(centroids, k);
          for (const part of await Promise.all(remote)) {
            for (let i = 0; i < total.sums.length; i++) total.sums[i] = total.sums[i]! + part.sums[i]!;
            for (let c = 0; c < k; c++) total.counts[c] = total.counts[c]! + part.counts[c]!;
            total.objective += part.objective;
          }
          return total;
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
