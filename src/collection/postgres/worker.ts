import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { CollectionError, RisError } from '../../errors.ts';
import { pausePoint } from '../pause.ts';
import { makeThumbnail } from '../thumbnail.ts';
import type { CollectionOptions, CollectionProgress } from '../types.ts';
import { type EmbeddedImage, insertImages, type PgCollection } from './collection.ts';
import type { PgDatabase } from './connection.ts';
import { type OutageEvent, OutageWatch, sleep } from './outage.ts';

/**
 * The work queue: ris_jobs holds the images of `ris index --enqueue` until a worker has stored them.
 *
 * - A worker claims a batch with `SELECT … FOR UPDATE SKIP LOCKED` (concurrent workers skip each other's
 *   rows instead of waiting) and stamps it with a lease (`locked_by`, `locked_until`) in the same
 *   statement; the claim is committed at once, so no transaction stays open while it embeds.
 * - While it works it extends the lease (a heartbeat every third of it). A worker that dies (`kill -9`, a
 *   lost machine) stops doing so: once the lease has run out its batch is claimed again by another worker.
 *   Nothing is lost, and since a live worker keeps its lease, no image is embedded by two workers.
 * - It stores a batch in one transaction that first locks its jobs and checks they are still its own, then
 *   writes each image (row, vector, thumbnail) and deletes the jobs. A worker that lost its lease (paused
 *   longer than the lease) stores nothing of that batch.
 * - A database outage (a restart, a failover, dropped connections) is waited out, up to 10 minutes by
 *   default: the worker keeps the batch in hand and stores it once the database is back (its lease still
 *   holds it unless the outage outlasted the lease), and releases any claim whose answer the outage cut
 *   off, so no image waits for a lease that nobody works under.
 * - Each claim counts an attempt. An image that cannot be decoded fails at once; one that cannot be read
 *   (a file not there yet, a URL that failed) is retried after 5 s, 10 s, …; a job claimed `max_attempts`
 *   times by workers that died with it (an image that kills the worker) is marked failed. Failed jobs
 *   keep their error for `ris collections info`, and `ris index --enqueue` again puts them back.
 */

/** Decoding failures: the same bytes will fail again, so they are not retried. */
const PERMANENT = new Set<string>(['EMPTY_IMAGE', 'UNSUPPORTED_IMAGE', 'CORRUPT_IMAGE', 'IMAGE_TOO_LARGE']);

export const DEFAULT_LEASE_SECONDS = 120;
export const DEFAULT_WORKER_BATCH = 32;
export const DEFAULT_OUTAGE_SECONDS = 600;

interface Job {
  id: number;
  collection_id: number;
  path: string;
  labels: string[];
  attempts: number;
}

export type WorkerProgress =
  | CollectionProgress
  | { type: 'worker-start'; worker: string; collections: string[] }
  | { type: 'worker-refused'; collection: string; reason: string }
  | {
      type: 'worker-batch';
      collection: string;
      stored: number;
      failed: number;
      /** Already stored (by `ris add`, or a job queued twice): nothing to do. */
      skipped: number;
      /** Lost to another worker after this one's lease ran out: not stored by this one. */
      lost: number;
      /** Still waiting in the collection's queue. */
      pending: number;
      /** Stored images whose bytes equal an image already in the collection. */
      duplicates: { path: string; sameAs: string }[];
    }
  | { type: 'worker-stopping' }
  | OutageEvent;

export interface WorkerOptions {
  /** Collections to work for. Default: every collection of the store, looked up again every 30 s. */
  collections?: string[];
  /** Refuse collections of another model (MODEL_MISMATCH); default: each collection's own model. */
  model?: string;
  /** Images claimed at once. Default 32. */
  batchSize?: number;
  /** Seconds a claim holds before another worker may take it over. Default 120. */
  leaseSeconds?: number;
  /** Stop once no work is waiting or held by anyone (a batch job); default: wait for more work. */
  untilDone?: boolean;
  /**
   * Seconds a worker that has started waits for a database that went away (a restart, a failover) before
   * it gives up with DATABASE_UNREACHABLE. Default 600. A database unreachable at the start fails at once.
   */
  outageSeconds?: number;
  /** Stops the worker after the batch in hand. */
  signal?: AbortSignal;
  /** How collections and their embedders are opened. */
  collectionOptions?: CollectionOptions;
  onProgress?: (event: WorkerProgress) => void;
}

export interface WorkerReport {
  worker: string;
  /** Images this worker embedded and stored. */
  stored: number;
  failed: number;
  skipped: number;
  lost: number;
  /** Stored images that are exact duplicates of one already stored (reported, and stored all the same). */
  duplicates: number;
}

/** What a worker needs of the store: its database and how to open its collections. */
export interface WorkerStore {
  readonly db: PgDatabase;
  list(): Promise<string[]>;
  open(name: string, options?: CollectionOptions): Promise<PgCollection>;
}

/** A worker's name in the queue: where it runs, so a stuck claim can be traced to its machine. */
export function workerName(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/**
 * Claims, embeds and stores queued images until stopped (or, with `untilDone`, until there is nothing
 * left). Each collection's images are embedded with its own model.
 */
export async function runWorker(store: WorkerStore, options: WorkerOptions = {}): Promise<WorkerReport> {
  const worker = workerName();
  const batchSize = options.batchSize ?? DEFAULT_WORKER_BATCH;
  const lease = options.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
  const report: WorkerReport = { worker, stored: 0, failed: 0, skipped: 0, lost: 0, duplicates: 0 };
  const outage = new OutageWatch(
    { outageSeconds: options.outageSeconds, signal: options.signal, onProgress: options.onProgress },
    DEFAULT_OUTAGE_SECONDS,
  );
  const open = new Map<number, PgCollection>();
  const refused = new Set<string>();
  let listedAt = 0;

  /** The collections to work for, opened once each and checked against the model. */
  const collections = async (): Promise<PgCollection[]> => {
    if (options.collections && listedAt > 0) return [...open.values()];
    if (!options.collections && Date.now() - listedAt < 30_000) return [...open.values()];
    listedAt = Date.now();
    const names = options.collections ?? (await store.list());
    for (const name of names) {
      if (refused.has(name) || [...open.values()].some((c) => c.name === name)) continue;
      const collection = await store.open(name, options.collectionOptions);
      try {
        checkModel(collection, options.model);
        await collection.embedder();
        open.set(collection.id, collection);
      } catch (error) {
        await collection.close();
        if (options.collections || !(error instanceof RisError)) throw error;
        refused.add(name);
        options.onProgress?.({ type: 'worker-refused', collection: name, reason: (error as Error).message });
      }
    }
    return [...open.values()];
  };

  try {
    const first = await collections();
    options.onProgress?.({ type: 'worker-start', worker, collections: first.map((c) => c.name) });
    let idleMs = 250;
    while (!options.signal?.aborted) {
      const targets = await outage.through(collections);
      const ids = targets.map((c) => c.id);
      if (outage.recovered) {
        // This worker holds no batch between two: a claim in its name is one whose answer was lost.
        outage.recovered = false;
        await outage.through(() => releaseClaims(store.db, worker));
      }
      const jobs =
        ids.length > 0 ? await outage.through(() => claim(store.db, ids, batchSize, worker, lease)) : [];
      if (jobs.length === 0) {
        if (
          options.untilDone &&
          (ids.length === 0 || (await outage.through(() => waiting(store.db, ids))) === 0)
        )
          break;
        await sleep(idleMs, options.signal);
        idleMs = Math.min(idleMs * 2, 5000);
        continue;
      }
      idleMs = 250;
      for (const [collectionId, batch] of groupBy(jobs, (job) => job.collection_id)) {
        const collection = open.get(collectionId)!;
        await work(store.db, collection, batch, worker, lease, report, options, outage);
      }
    }
    options.onProgress?.({ type: 'worker-stopping' });
  } finally {
    await Promise.all([...open.values()].map((c) => c.close()));
  }
  return report;
}

/** A worker started for one model refuses collections of another (and every worker checks the file's hash). */
function checkModel(collection: PgCollection, model: string | undefined): void {
  if (model === undefined) return;
  const wanted = model.endsWith('.onnx') ? resolve(model) : model;
  if (collection.manifest.model !== wanted)
    throw new CollectionError(
      'MODEL_MISMATCH',
      `Collection "${collection.name}" uses the model ${collection.manifest.model} but this worker runs ${model}; start it with --model ${collection.manifest.model}, or without --model`,
    );
}

/** Claims up to `limit` jobs, oldest first, skipping rows other workers are claiming at this moment. */
async function claim(
  db: PgDatabase,
  collectionIds: number[],
  limit: number,
  worker: string,
  lease: number,
): Promise<Job[]> {
  // Jobs whose every attempt ended with a dead worker: failed, so they stop killing workers.
  await db.query(
    `UPDATE ris_jobs SET state = 'failed', error_code = 'ABANDONED',
       last_error = 'claimed ' || attempts || ' times by workers that stopped before storing it (killed, or out of memory?)',
       locked_by = NULL, locked_until = NULL
     WHERE state = 'pending' AND collection_id = ANY($1::int8[]) AND attempts >= max_attempts AND locked_until < now()`,
    [collectionIds],
  );
  const { rows } = await db.query<Job>(
    `WITH picked AS (
       SELECT id FROM ris_jobs
       WHERE state = 'pending' AND collection_id = ANY($1::int8[]) AND run_after <= now()
         AND attempts < max_attempts AND (locked_until IS NULL OR locked_until < now())
       ORDER BY id
       LIMIT $2
       FOR UPDATE SKIP LOCKED
     )
     UPDATE ris_jobs j
     SET locked_by = $3, locked_until = now() + make_interval(secs => $4), attempts = j.attempts + 1
     FROM picked WHERE j.id = picked.id
     RETURNING j.id, j.collection_id, j.path, j.labels, j.attempts`,
    [collectionIds, limit, worker, lease],
  );
  return rows
    .map((r) => ({ ...r, id: Number(r.id), collection_id: Number(r.collection_id) }))
    .sort((a, b) => a.id - b.id);
}

/**
 * Gives back every claim in this worker's name: called between batches, when it holds none, after an
 * outage that may have cut off the answer to a claim the database did commit. The attempt is not counted.
 */
async function releaseClaims(db: PgDatabase, worker: string): Promise<void> {
  await db.query(
    `UPDATE ris_jobs SET locked_by = NULL, locked_until = NULL, attempts = greatest(attempts - 1, 0)
     WHERE locked_by = $1 AND state = 'pending'`,
    [worker],
  );
}

/** Jobs of these collections not finished yet: waiting, held by a worker, or due for a retry. */
async function waiting(db: PgDatabase, collectionIds: number[]): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*) AS n FROM ris_jobs WHERE state = 'pending' AND collection_id = ANY($1::int8[])`,
    [collectionIds],
  );
  return Number(rows[0]?.n ?? 0);
}

/** Embeds and stores one collection's share of a claimed batch. */
async function work(
  db: PgDatabase,
  collection: PgCollection,
  jobs: Job[],
  worker: string,
  lease: number,
  report: WorkerReport,
  options: WorkerOptions,
  outage: OutageWatch,
): Promise<void> {
  const jobIds = jobs.map((job) => job.id);
  const heartbeat = setInterval(
    () => {
      db.query(
        `UPDATE ris_jobs SET locked_until = now() + make_interval(secs => $3) WHERE id = ANY($1::int8[]) AND locked_by = $2`,
        [jobIds, worker, lease],
      ).catch(() => undefined); // the store step finds out whether the claim still holds
    },
    Math.max(1000, (lease * 1000) / 3),
  );
  try {
    const present = await outage.through(() => collection.storedPaths(jobs.map((job) => job.path)));
    const todo = jobs.filter((job) => !present.has(job.path));
    const skipped = jobs.filter((job) => present.has(job.path));
    const failures: { job: Job; error: RisError }[] = [];
    const read = await Promise.all(
      todo.map((job) =>
        collection.source.read(job.path, job.path, collection.name).then(
          ({ bytes, mtimeMs }) => ({ job, bytes, mtimeMs }),
          (error: RisError) => {
            failures.push({ job, error });
            return undefined;
          },
        ),
      ),
    );
    const readable = read.filter((r) => r !== undefined);
    // Thumbnails are made on libuv's threads while the network runs on onnxruntime's.
    const thumbnails = readable.map((r) =>
      makeThumbnail(r.bytes, r.job.path).then(
        (webp) => webp,
        (error: RisError) => error,
      ),
    );
    const embedder = await collection.embedder();
    const embedded: { job: Job; image: EmbeddedImage }[] = [];
    if (readable.length > 0) {
      const d = collection.manifest.dimension;
      const inputs = readable.map((r) => r.bytes);
      // The embedder's own batches, not one of the whole claim: the next is decoded while one runs.
      for await (const batch of embedder.embedMany(inputs)) {
        for (const failure of batch.failures)
          failures.push({ job: readable[failure.index]!.job, error: failure.error });
        for (const [r, index] of batch.indices.entries()) {
          const { job, bytes, mtimeMs } = readable[index]!;
          const thumbnail = await thumbnails[index]!;
          if (thumbnail instanceof RisError) {
            failures.push({ job, error: thumbnail });
            continue;
          }
          embedded.push({
            job,
            image: {
              path: job.path,
              labels: job.labels,
              width: batch.sizes[2 * r]!,
              height: batch.sizes[2 * r + 1]!,
              bytes: bytes.length,
              sha256: createHash('sha256').update(bytes).digest('hex'),
              mtimeMs,
              vector: batch.vectors.subarray(r * d, (r + 1) * d),
              thumbnail,
            },
          });
        }
      }
    }
    pausePoint('worker:embedded');
    // Through an outage the batch in hand is stored once the database is back: embedded once, whatever
    // happens to the connection. A transaction cut off before its COMMIT was rolled back and runs again;
    // whether one whose COMMIT went unanswered committed, the database tells by its transaction id.
    let attempt: { xid: number; outcome: BatchOutcome } | undefined;
    const outcome = await outage.through(async () => {
      if (attempt && (await batchCommitted(db, attempt.xid, jobIds, worker))) return attempt.outcome;
      return db.transaction(async (client) => {
        const { rows: xid } = await client.query<{ xid: number }>('SELECT txid_current() AS xid');
        const { rows } = await client.query<{ id: number }>(
          'SELECT id FROM ris_jobs WHERE id = ANY($1::int8[]) AND locked_by = $2 FOR UPDATE',
          [jobIds, worker],
        );
        const mine = new Set(rows.map((r) => Number(r.id)));
        const images = embedded.filter((e) => mine.has(e.job.id)).map((e) => e.image);
        const stored = await insertImages(client, collection.id, images);
        const done = [...embedded.map((e) => e.job), ...skipped]
          .filter((job) => mine.has(job.id))
          .map((job) => job.id);
        if (done.length > 0) await client.query('DELETE FROM ris_jobs WHERE id = ANY($1::int8[])', [done]);
        let failed = 0;
        for (const { job, error } of failures) {
          if (!mine.has(job.id)) continue;
          failed++;
          await client.query(
            `UPDATE ris_jobs SET
             state = CASE WHEN $3 OR attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
             run_after = now() + make_interval(secs => least(300, 5 * power(2, attempts - 1))),
             error_code = $4, last_error = $5, locked_by = NULL, locked_until = NULL
           WHERE id = $1 AND locked_by = $2`,
            [job.id, worker, PERMANENT.has(error.code), error.code ?? null, error.message],
          );
        }
        const outcome: BatchOutcome = {
          stored: stored.ids.length,
          duplicates: stored.duplicates,
          skipped: skipped.filter((job) => mine.has(job.id)).length + stored.alreadyPresent,
          failed,
          lost: jobs.length - mine.size,
        };
        attempt = { xid: Number(xid[0]!.xid), outcome };
        pausePoint('worker:storing'); // written, not committed
        return outcome;
      });
    });
    pausePoint('worker:committed');
    report.stored += outcome.stored;
    report.failed += outcome.failed;
    report.skipped += outcome.skipped;
    report.lost += outcome.lost;
    report.duplicates += outcome.duplicates.length;
    const pending = await outage.through(() => waiting(db, [collection.id]));
    options.onProgress?.({ type: 'worker-batch', collection: collection.name, ...outcome, pending });
    // The last batch of a large collection builds its HNSW index (one worker does; the others find it).
    if (pending === 0) await outage.through(() => collection.ensureIndex({ onProgress: options.onProgress }));
  } finally {
    clearInterval(heartbeat);
  }
}

/** What storing one batch did. */
interface BatchOutcome {
  stored: number;
  duplicates: { path: string; sameAs: string }[];
  skipped: number;
  failed: number;
  lost: number;
}

/**
 * Whether a batch's transaction, whose COMMIT got no answer, committed: its id says so, and none of the
 * batch's jobs is still locked by this worker (the transaction deleted or released each one). After a
 * crash the server may give the same id to another transaction: the jobs tell the two apart.
 */
async function batchCommitted(
  db: PgDatabase,
  xid: number,
  jobIds: number[],
  worker: string,
): Promise<boolean> {
  if (!(await transactionCommitted(db, xid))) return false;
  const { rows } = await db.query<{ held: number }>(
    'SELECT count(*)::int AS held FROM ris_jobs WHERE id = ANY($1::int8[]) AND locked_by = $2',
    [jobIds, worker],
  );
  return rows[0]?.held === 0;
}

/**
 * Whether a transaction whose COMMIT got no answer (the connection dropped) did commit. After a crash
 * the server restarts from its last written transaction id, which may be before the one the worker was
 * given: txid_status calls that id "in the future" (an error), and it did not commit.
 */
export async function transactionCommitted(db: PgDatabase, xid: number): Promise<boolean> {
  const { rows } = await db.query<{ status: string | null }>(
    `SELECT CASE WHEN $1::int8 < txid_snapshot_xmax(txid_current_snapshot()) THEN txid_status($1) END AS status`,
    [xid],
  );
  return rows[0]?.status === 'committed';
}

function groupBy<T, K>(items: T[], key: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}
