import { Worker } from 'node:worker_threads';
import type { Layout, LayoutFunction } from '../explore/layout.ts';

/** How long the worker is kept after its last layout: starting one again loads umap-js (~0.1 s). */
const IDLE_MS = 30_000;

let worker: Worker | undefined;
let idleTimer: NodeJS.Timeout | undefined;
/** Layouts run one after the other: one core computes them, the other stays with the server. */
let queue: Promise<unknown> = Promise.resolve();

/**
 * `layoutVectors` on a worker thread, so a server's event loop stays free while UMAP lays out a few
 * thousand points (PCA and the neighbour search run in one go of half a second and more). The same input
 * gives the same layout as on this thread. One worker per process, started on first use, referenced
 * only while it works and ended once idle; a worker that dies fails its layout and the next starts anew.
 */
export const layoutOffThread: LayoutFunction = (data, n, d, seed) => {
  const result = queue.then(() => run(data, n, d, seed));
  queue = result.catch(() => undefined);
  return result;
};

async function run(data: Float32Array, n: number, d: number, seed: number): Promise<Layout> {
  clearTimeout(idleTimer);
  worker ??= start();
  const current = worker;
  current.ref();
  try {
    return await new Promise<Layout>((resolve, reject) => {
      const onMessage = (reply: 'loaded' | { layout: Layout } | { error: string }) => {
        if (reply === 'loaded') return;
        done();
        if ('layout' in reply) resolve(reply.layout);
        else reject(new Error(`The layout failed: ${reply.error}`));
      };
      const onExit = (code: number) => {
        done();
        reject(new Error(`The layout worker ended (exit code ${code})`));
      };
      const onError = (error: Error) => {
        done();
        reject(error);
      };
      const done = () => {
        current.off('message', onMessage);
        current.off('exit', onExit);
        current.off('error', onError);
      };
      current.on('message', onMessage);
      current.once('exit', onExit);
      current.once('error', onError);
      current.postMessage({ data, n, d, seed });
    });
  } finally {
    if (worker === current) {
      current.unref();
      idleTimer = setTimeout(() => {
        if (worker === current) worker = undefined;
        void current.terminate();
      }, IDLE_MS);
      idleTimer.unref();
    }
  }
}

function start(): Worker {
  const entry = new URL(`./layout-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)
    .href;
  const started = new Worker(new URL('./ts-worker.mjs', import.meta.url), { workerData: { entry } });
  started.once('exit', () => {
    if (worker === started) worker = undefined;
  });
  started.on('error', () => undefined); // reported to the layout in hand (run); the next one starts anew
  return started;
}
