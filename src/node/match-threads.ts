import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { PLANE_RECORD, writePlaneRecord } from '../collection/plane-record.ts';
import { localMatcher, type PairMatcher } from '../duplicates/copies.ts';
import type { MatchReply, MatchRequest } from './match-worker.ts';

/** How long workers are kept after their last comparison: starting one loads its code (~0.3 s). */
const IDLE_MS = 30_000;
/** Pairs sent in one message: ~10 ms of work, so messages cost little and threads end together. */
const CHUNK = 32;

export interface MatchThreadsOptions {
  /** Worker threads. Default: one per core (availableParallelism). */
  threads?: number;
  /**
   * Fewer pairs than this are compared on the calling thread: starting workers and sending them planes
   * costs more than a few hundred comparisons. Default 200.
   */
  minPairs?: number;
}

export interface MatchThreads extends PairMatcher {
  readonly threads: number;
  /** Ends the worker threads now (they also end by themselves after 30 s idle). */
  close(): Promise<void>;
}

interface Slot {
  worker: Worker;
  alive: boolean;
  loaded: boolean;
  /** Per session: the images whose planes this worker has been sent. */
  sent: Map<number, Set<number>>;
  pending: Map<number, { resolve: (copies: Uint8Array) => void; reject: (error: Error) => void }>;
  nextId: number;
}

/** A worker ended (or never started): its comparisons are made elsewhere. */
class WorkerGone extends Error {}

/**
 * The second look's pixel comparisons spread over worker threads: each call's pairs go out in chunks to
 * whichever worker is free, each worker receiving an image's planes the first time one of its pairs
 * needs them; the answers are put back in the order of the pairs, so they are the same as on one thread.
 * Workers start on first use, are referenced only while they work, and end once idle. Small calls, and
 * every call once workers cannot be started, are made on the calling thread; a worker that dies has its
 * pairs compared there too.
 */
export function createMatchThreads(options: MatchThreadsOptions = {}): MatchThreads {
  const threads = Math.max(0, options.threads ?? availableParallelism());
  const minPairs = options.minPairs ?? 200;
  const entry = new URL(`./match-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url)
    .href;
  let slots: Slot[] = [];
  /** Set once a worker failed before it loaded: this process does not try again. */
  let unavailable = false;
  let busy = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  const sessionIds = new WeakMap<object, number>();
  let nextSession = 0;

  const startSlot = (): Slot | undefined => {
    let worker: Worker;
    try {
      worker = new Worker(new URL('./ts-worker.mjs', import.meta.url), { workerData: { entry } });
    } catch {
      unavailable = true;
      return undefined;
    }
    const slot: Slot = { worker, alive: true, loaded: false, sent: new Map(), pending: new Map(), nextId: 0 };
    worker.on('message', (reply: MatchReply) => {
      if (reply === 'loaded') {
        slot.loaded = true;
        return;
      }
      const waiting = slot.pending.get(reply.id);
      slot.pending.delete(reply.id);
      if ('copies' in reply) waiting?.resolve(reply.copies);
      else waiting?.reject(new Error(`The pixel comparison failed: ${reply.error}`));
    });
    const gone = (why: string) => {
      if (!slot.alive) return;
      slot.alive = false;
      if (!slot.loaded) unavailable = true;
      slots = slots.filter((s) => s !== slot);
      for (const waiting of slot.pending.values()) waiting.reject(new WorkerGone(why));
      slot.pending.clear();
    };
    worker.on('error', (error) => gone(error.message));
    worker.on('exit', (code) => gone(`exit code ${code}`));
    return slot;
  };

  /** Ends a worker on purpose: its pairs in flight are compared on the calling thread. */
  const end = (slot: Slot) => {
    slot.alive = false;
    for (const waiting of slot.pending.values()) waiting.reject(new WorkerGone('ended'));
    slot.pending.clear();
    return slot.worker.terminate();
  };

  const compare = (
    slot: Slot,
    session: number,
    first: Uint32Array,
    second: Uint32Array,
    planes: Parameters<PairMatcher['copies']>[3],
  ) =>
    new Promise<Uint8Array>((resolve, reject) => {
      if (!slot.alive) return reject(new WorkerGone('ended'));
      const sent = slot.sent.get(session) ?? new Set<number>();
      slot.sent.set(session, sent);
      const images: number[] = [];
      for (const list of [first, second])
        for (const image of list)
          if (!sent.has(image)) {
            sent.add(image);
            images.push(image);
          }
      const records = new Uint8Array(images.length * PLANE_RECORD);
      for (const [i, image] of images.entries()) writePlaneRecord(planes(image), records, i * PLANE_RECORD);
      const id = slot.nextId++;
      slot.pending.set(id, { resolve, reject });
      const request: MatchRequest = {
        type: 'compare',
        id,
        session,
        images: Uint32Array.from(images),
        records,
        first,
        second,
      };
      slot.worker.postMessage(request, [records.buffer]);
    });

  return {
    threads,
    async copies(session, first, second, planes) {
      if (first.length < minPairs || threads === 0 || unavailable)
        return localMatcher.copies(session, first, second, planes);
      clearTimeout(idleTimer);
      while (slots.length < threads && !unavailable) {
        const slot = startSlot();
        if (slot) slots.push(slot);
      }
      if (slots.length === 0) return localMatcher.copies(session, first, second, planes);
      const id = sessionIds.get(session) ?? nextSession++;
      sessionIds.set(session, id);
      busy++;
      for (const slot of slots) slot.worker.ref();
      try {
        const out = new Uint8Array(first.length);
        const chunks = Math.ceil(first.length / CHUNK);
        const leftOver: number[] = [];
        let next = 0;
        // Two chunks in flight per worker, so none waits for its next message.
        const runner = async (slot: Slot) => {
          for (let chunk = next++; chunk < chunks; chunk = next++) {
            const from = chunk * CHUNK;
            const to = Math.min(first.length, from + CHUNK);
            try {
              out.set(
                await compare(slot, id, first.subarray(from, to), second.subarray(from, to), planes),
                from,
              );
            } catch (error) {
              if (!(error instanceof WorkerGone)) throw error;
              leftOver.push(chunk);
              return;
            }
          }
        };
        await Promise.all(slots.flatMap((slot) => [runner(slot), runner(slot)]));
        // The pairs of workers that ended, and those no worker was left to take.
        while (next < chunks) leftOver.push(next++);
        for (const chunk of leftOver) {
          const from = chunk * CHUNK;
          const to = Math.min(first.length, from + CHUNK);
          out.set(
            await localMatcher.copies(session, first.subarray(from, to), second.subarray(from, to), planes),
            from,
          );
        }
        return out;
      } finally {
        if (--busy === 0) {
          for (const slot of slots) slot.worker.unref();
          idleTimer = setTimeout(() => {
            if (busy > 0) return;
            const ending = slots;
            slots = [];
            for (const slot of ending) void end(slot);
          }, IDLE_MS);
          idleTimer.unref();
        }
      }
    },
    release(session) {
      const id = sessionIds.get(session);
      if (id === undefined) return;
      sessionIds.delete(session);
      for (const slot of slots)
        if (slot.sent.delete(id) && slot.alive)
          slot.worker.postMessage({ type: 'release', session: id } satisfies MatchRequest);
    },
    async close() {
      clearTimeout(idleTimer);
      const ending = slots;
      slots = [];
      await Promise.all(ending.map(end));
    },
  };
}

/** The worker threads of this process, shared by the CLI and the server (workers start on first use). */
export const matchThreads: MatchThreads = createMatchThreads();
