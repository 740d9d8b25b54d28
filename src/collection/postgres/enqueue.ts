import { pausePoint } from '../pause.ts';
import type { ImageToAdd } from '../walk.ts';
import type { PgCollection } from './collection.ts';
import type { PgDatabase } from './connection.ts';
import { type OutageOptions, OutageWatch } from './outage.ts';

/** The work queue's producer side (the worker's side, and how the queue works, are in worker.ts). */

export interface QueueReport {
  /** Newly queued (or failed ones queued again). */
  queued: number;
  /** Already stored in the collection: not queued. */
  alreadyStored: number;
  /** Already waiting in the queue. */
  alreadyQueued: number;
}

/** Puts images in the queue of a collection; images already stored or queued are left out. */
export async function enqueueImages(
  db: PgDatabase,
  collection: PgCollection,
  images: ImageToAdd[],
  options: OutageOptions = {},
): Promise<QueueReport> {
  const report: QueueReport = { queued: 0, alreadyStored: 0, alreadyQueued: 0 };
  const outage = new OutageWatch(options, 60);
  for (let i = 0; i < images.length; i += 5000) {
    pausePoint('enqueue:chunk');
    const chunk = images.slice(i, i + 5000);
    const paths = chunk.map((image) => collection.storedPath(image.path));
    const labels = chunk.map((image) => JSON.stringify(image.labels ?? []));
    // Safe to run again: a chunk stored before the answer was lost is then found already queued.
    const { rows } = await outage.through(() =>
      db.query<{ fresh: number; queued: number }>(
        `WITH input AS (
         SELECT * FROM unnest($2::text[], $3::text[]) AS u (path, labels)
       ), fresh AS (
         SELECT path, labels::jsonb AS labels FROM input
         WHERE NOT EXISTS (SELECT 1 FROM ris_images m WHERE m.collection_id = $1 AND m.path = input.path)
       ), queued AS (
         INSERT INTO ris_jobs (collection_id, path, labels) SELECT $1, path, labels FROM fresh
         ON CONFLICT (collection_id, path) DO UPDATE
           SET state = 'pending', attempts = 0, run_after = now(), error_code = NULL, last_error = NULL,
               locked_by = NULL, locked_until = NULL
           WHERE ris_jobs.state = 'failed'
         RETURNING 1
       )
       SELECT (SELECT count(*) FROM fresh) AS fresh, (SELECT count(*) FROM queued) AS queued`,
        [collection.id, paths, labels],
      ),
    );
    const fresh = Number(rows[0]!.fresh);
    const queued = Number(rows[0]!.queued);
    report.queued += queued;
    report.alreadyStored += chunk.length - fresh;
    report.alreadyQueued += fresh - queued;
  }
  return report;
}

export interface QueueStatus {
  pending: number;
  /** Of the pending ones, those a worker holds now. */
  inProgress: number;
  failed: number;
  /** The first failures, oldest first. */
  failures: { path: string; code: string | null; error: string; attempts: number }[];
}

export async function queueStatus(
  db: PgDatabase,
  collectionId: number,
  failuresShown = 20,
): Promise<QueueStatus> {
  const { rows } = await db.query<{ pending: number; in_progress: number; failed: number }>(
    `SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
            count(*) FILTER (WHERE state = 'pending' AND locked_until > now()) AS in_progress,
            count(*) FILTER (WHERE state = 'failed') AS failed
     FROM ris_jobs WHERE collection_id = $1`,
    [collectionId],
  );
  const { rows: failures } = await db.query<{
    path: string;
    error_code: string | null;
    last_error: string;
    attempts: number;
  }>(
    `SELECT path, error_code, last_error, attempts FROM ris_jobs
     WHERE collection_id = $1 AND state = 'failed' ORDER BY id LIMIT $2`,
    [collectionId, failuresShown],
  );
  return {
    pending: Number(rows[0]?.pending ?? 0),
    inProgress: Number(rows[0]?.in_progress ?? 0),
    failed: Number(rows[0]?.failed ?? 0),
    failures: failures.map((f) => ({
      path: f.path,
      code: f.error_code,
      error: f.last_error,
      attempts: f.attempts,
    })),
  };
}
