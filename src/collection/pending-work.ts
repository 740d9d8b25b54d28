import { hostname } from 'node:os';

/**
 * Work started on a collection and not finished: a `ris index` (images still to add) or a `ris retrain`.
 * Kept with the collection from its start until it ends well, so one killed at any point leaves a mark
 * that every listing shows (the word `interrupted`, how far it got, the command that resumes it) until
 * running that command again finishes it.
 */
export interface PendingWork {
  kind: 'index' | 'retrain';
  /** The command that resumes it. */
  command: string;
  /** Images found when a `ris index` started: the collection holds them all once it is done. */
  found?: number;
  startedAt: string;
  /** The process doing it: on this machine and still running means in progress, not interrupted. */
  host: string;
  pid: number;
}

export function newPendingWork(kind: PendingWork['kind'], command: string, found?: number): PendingWork {
  return {
    kind,
    command,
    ...(found === undefined ? {} : { found }),
    startedAt: new Date().toISOString(),
    host: hostname(),
    pid: process.pid,
  };
}

/**
 * Runs a retrain marked as pending work from its start to its end. A retrain ends an interrupted index
 * only when that index had added every image it found: otherwise its mark comes back afterwards.
 */
export async function retrainMarked(
  collection: {
    name: string;
    pendingWork(): Promise<PendingWork | undefined>;
    beginWork(work: PendingWork): Promise<void>;
    endWork(): Promise<void>;
  },
  rebuild: () => Promise<void>,
): Promise<void> {
  const resumed = await collection.pendingWork();
  await collection.beginWork(newPendingWork('retrain', `ris retrain ${collection.name}`));
  await rebuild();
  if (resumed?.kind === 'index') await collection.beginWork(resumed);
  else await collection.endWork();
}

/** Whether the process that started `work` still runs (so it is in progress rather than interrupted). */
export function stillRunning(work: PendingWork): boolean {
  if (work.host !== hostname()) return false; // another machine's: shown as interrupted, resumable
  if (work.pid === process.pid) return true;
  try {
    process.kill(work.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One line for people: "interrupted ris index: 340 of 1,200 images; run … to resume", or "in progress". */
export function describePendingWork(work: PendingWork, images: number): string {
  const progress =
    work.found === undefined
      ? ''
      : `: ${images.toLocaleString('en')} of ${work.found.toLocaleString('en')} images`;
  return stillRunning(work)
    ? `ris ${work.kind} in progress${progress} (process ${work.pid})`
    : `interrupted ris ${work.kind}${progress}; run ${work.command} to resume`;
}
