import { StateError } from '../errors.ts';
import type { SharedGraph } from './kernels/types.ts';
import type { GraphExports } from './kernels/wasm-graph.ts';

/**
 * Builds an HNSW graph on several threads, batch by batch: the graph lives in shared WebAssembly memory;
 * for a batch of new nodes every thread (this one too) takes nodes in turn and runs the read-only part of
 * an insertion (greedy descent, beam searches and the choice of neighbours, `graphCandidates`), then
 * this thread links the batch in order (`graphLink`: the node's links, and the links back to it). Nodes
 * of one batch do not see each other while searching, so each node's earlier batch mates join its
 * candidates when it is linked, and batches stay small against the graph (see batchSize in hnsw.ts). No
 * locks: while threads search nobody writes.
 *
 * src/ann creates no threads: the platform does (see the Node example in bench/ann.ts) and hands the
 * workers to `createHnswBuilder`; each worker passes every message it receives to
 * `handleHnswBuildMessage`. Synchronisation is by Atomics on a small shared control block, so `add` stays
 * synchronous: this thread waits with Atomics.wait (or spins where the platform forbids waiting).
 */

/** A worker thread as the platform gives it. */
export interface BuildWorker {
  postMessage(message: unknown): void;
  terminate(): unknown;
}

/** Spreads the searches of HNSW builds over threads; pass it as HnswOptions.builder. */
export interface HnswBuilder {
  /** Threads that search during a build, this one included. */
  readonly threads: number;
  /** Stops the workers; the builder cannot be used afterwards. */
  close(): Promise<void>;
  /** @internal Runs graphCandidates for a batch on every thread; returns once all are done. */
  run(graph: SharedGraph, job: BatchJob): void;
}

/** @internal One batch of a parallel build. */
export interface BatchJob {
  descriptors: number[];
  /** The job table's address: per node its level and the address of its neighbour lists. */
  jobs: number;
  first: number;
  count: number;
  entry: number;
  maxLevel: number;
  efConstruction: number;
  anyDeleted: boolean;
}

/** Fields of the control block. */
const EPOCH = 0;
const COMMAND = 1;
const NEXT = 2;
const COUNT = 3;
const DONE = 4;
const READY = 5;
const VERSION = 6;
const FIRST = 7;
const ENTRY = 8;
const MAX_LEVEL = 9;
const EF = 10;
const ANY_DELETED = 11;
const JOBS = 12;
const FAILED = 13;
const FIELDS = 16;

const RUN = 1;
const DETACH = 2;
const STOP = 3;

/** How long this thread waits for a worker that shows no progress before giving up. */
const STALL_MS = 60_000;

/**
 * A builder over `workers` (threads besides this one). The workers must pass their messages to
 * `handleHnswBuildMessage`.
 */
export function createHnswBuilder(workers: readonly BuildWorker[]): HnswBuilder {
  const control = new Int32Array(new SharedArrayBuffer(FIELDS * 4));
  let attached: WebAssembly.Memory | undefined;
  let closed = false;

  /** Sets the command, wakes the workers. */
  const signal = (command: number) => {
    Atomics.store(control, COMMAND, command);
    Atomics.add(control, EPOCH, 1);
    Atomics.notify(control, EPOCH);
  };

  /** Waits until control[index] reaches `target`, failing when the workers stall or fail. */
  const waitFor = (index: number, target: number, what: string) => {
    let last = -1;
    let since = Date.now();
    for (;;) {
      const value = Atomics.load(control, index);
      if (Atomics.load(control, FAILED) !== 0) {
        throw new StateError(
          'WORKER_FAILED',
          `An HNSW build thread failed while ${what}; close the builder and build without it (or create a new one)`,
        );
      }
      if (value >= target) return;
      const progress = value + Atomics.load(control, NEXT);
      if (progress !== last) {
        last = progress;
        since = Date.now();
      } else if (Date.now() - since > STALL_MS) {
        throw new StateError(
          'WORKER_FAILED',
          `The HNSW build threads stopped responding while ${what}; close the builder and build without it`,
        );
      }
      try {
        Atomics.wait(control, index, value, 100);
      } catch {
        // A thread that may not block (a browser's main thread) polls instead.
      }
    }
  };

  return {
    threads: workers.length + 1,
    run(graph, job) {
      if (closed) throw new StateError('WORKER_FAILED', 'This HNSW builder is closed; create a new one');
      if (workers.length > 0 && attached !== graph.memory) {
        // Workers on another memory go back to their message loop first, then attach to this one.
        if (attached) signal(DETACH);
        Atomics.store(control, READY, 0);
        Atomics.store(control, VERSION, graph.version);
        workers.forEach((worker, w) => {
          worker.postMessage({
            type: 'hnsw-attach',
            module: graph.module,
            memory: graph.memory,
            control: control.buffer,
            descriptor: job.descriptors[w + 1],
          });
        });
        waitFor(READY, workers.length, 'starting');
        attached = graph.memory;
      }
      Atomics.store(control, VERSION, graph.version);
      Atomics.store(control, FIRST, job.first);
      Atomics.store(control, COUNT, job.count);
      Atomics.store(control, ENTRY, job.entry);
      Atomics.store(control, MAX_LEVEL, job.maxLevel);
      Atomics.store(control, EF, job.efConstruction);
      Atomics.store(control, ANY_DELETED, job.anyDeleted ? 1 : 0);
      Atomics.store(control, JOBS, job.jobs);
      Atomics.store(control, NEXT, 0);
      Atomics.store(control, DONE, 0);
      if (workers.length > 0) signal(RUN);
      const table = graph.jobs(job.count);
      for (let i = Atomics.add(control, NEXT, 1); i < job.count; i = Atomics.add(control, NEXT, 1)) {
        graph.candidates(
          job.first + i,
          table[2 * i]!,
          job.entry,
          job.maxLevel,
          job.efConstruction,
          job.anyDeleted,
          table[2 * i + 1]!,
        );
      }
      if (workers.length > 0) waitFor(DONE, workers.length, 'searching');
    },
    async close() {
      if (closed) return;
      closed = true;
      signal(STOP);
      await Promise.all(workers.map((worker) => worker.terminate()));
    },
  };
}

/** The worker side: give it every message the worker receives. Returns once the worker is told to stop or move. */
export function handleHnswBuildMessage(message: unknown): void {
  const m = message as {
    type?: string;
    module: WebAssembly.Module;
    memory: WebAssembly.Memory;
    control: SharedArrayBuffer;
    descriptor: number;
  };
  if (m?.type !== 'hnsw-attach') return;
  const control = new Int32Array(m.control);
  const exports = new WebAssembly.Instance(m.module, { env: { memory: m.memory } })
    .exports as unknown as GraphExports;
  exports.graphInit(m.descriptor);
  let version = Atomics.load(control, VERSION);
  let epoch = Atomics.load(control, EPOCH);
  Atomics.add(control, READY, 1);
  Atomics.notify(control, READY);
  for (;;) {
    Atomics.wait(control, EPOCH, epoch);
    epoch = Atomics.load(control, EPOCH);
    const command = Atomics.load(control, COMMAND);
    if (command === DETACH || command === STOP) return;
    if (command !== RUN) continue;
    try {
      if (Atomics.load(control, VERSION) !== version) {
        version = Atomics.load(control, VERSION);
        exports.graphInit(m.descriptor);
      }
      const count = Atomics.load(control, COUNT);
      const first = Atomics.load(control, FIRST);
      const entry = Atomics.load(control, ENTRY);
      const maxLevel = Atomics.load(control, MAX_LEVEL);
      const ef = Atomics.load(control, EF);
      const anyDeleted = Atomics.load(control, ANY_DELETED);
      const table = new Uint32Array(m.memory.buffer, Atomics.load(control, JOBS), count * 2);
      for (let i = Atomics.add(control, NEXT, 1); i < count; i = Atomics.add(control, NEXT, 1)) {
        exports.graphCandidates(first + i, table[2 * i]!, entry, maxLevel, ef, anyDeleted, table[2 * i + 1]!);
      }
    } catch {
      Atomics.store(control, FAILED, 1);
    }
    Atomics.add(control, DONE, 1);
    Atomics.notify(control, DONE);
  }
}
