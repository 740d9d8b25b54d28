// The page's uploads: each drop, pick or pasted list becomes requests within the server's limits, sent
// one at a time; each request's bar follows its body leaving (XMLHttpRequest), then the server adding
// its files (its 'progress' events, matched by the batch id this page chose), then says what became of
// every file.
import { useCallback, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.ts';
import {
  isTokenRefused,
  type LibraryEvent,
  sendBatch,
  type UploadBody,
  type UploadLimits,
  type UploadReport,
} from './library-api.ts';
import { type NotSent, planBatches, type ToSend } from './upload-plan.ts';

export interface BatchView {
  /** Sent as ?batch=, and named so in the server's progress events. */
  id: string;
  /** Files sent, or addresses the server fetches. */
  kind: 'files' | 'urls';
  files: number;
  bytes: number;
  label?: string;
  phase: 'waiting' | 'sending' | 'adding' | 'done' | 'failed' | 'cancelled';
  /** Bytes of the request sent, of `sendTotal`. */
  sent: number;
  sendTotal: number;
  /** Files the server has dealt with. */
  handled: number;
  added: number;
  error?: string;
}

export interface FileOutcome {
  path: string;
  reason: string;
}

/** One drop (or pick, or pasted list) and its requests. */
export interface DropView {
  id: string;
  collection: string;
  title: string;
  batches: BatchView[];
  failed: FileOutcome[];
  skipped: FileOutcome[];
}

type Work = { kind: 'files'; items: ToSend[] } | { kind: 'urls'; urls: string[]; label?: string };

/** Ids the server accepts (letters, digits, - and _), made where crypto.randomUUID is not (plain http). */
function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

export function useUploads(options: { limits: UploadLimits; onRefused: () => void }) {
  const [drops, setDrops] = useState<DropView[]>([]);
  const dropsRef = useRef(drops);
  dropsRef.current = drops;
  const work = useRef(new Map<string, Work>());
  const running = useRef<{ batch: string; drop: string; controller: AbortController } | null>(null);
  const limits = useRef(options.limits);
  limits.current = options.limits;
  const onRefused = useRef(options.onRefused);
  onRefused.current = options.onRefused;

  const commitDrops = (change: (drops: DropView[]) => DropView[]) => {
    dropsRef.current = change(dropsRef.current);
    setDrops(dropsRef.current);
  };
  const patchBatch = (id: string, change: (batch: BatchView) => Partial<BatchView>) =>
    commitDrops((list) =>
      list.map((drop) =>
        drop.batches.some((b) => b.id === id)
          ? { ...drop, batches: drop.batches.map((b) => (b.id === id ? { ...b, ...change(b) } : b)) }
          : drop,
      ),
    );
  const patchDrop = (id: string, change: (drop: DropView) => Partial<DropView>) =>
    commitDrops((list) => list.map((drop) => (drop.id === id ? { ...drop, ...change(drop) } : drop)));

  const batchOf = (items: ToSend[]): BatchView => {
    const id = newId();
    work.current.set(id, { kind: 'files', items });
    return {
      id,
      kind: 'files',
      files: items.length,
      bytes: items.reduce((sum, item) => sum + item.file.size, 0),
      label: items[0]?.label,
      phase: 'waiting',
      sent: 0,
      sendTotal: 0,
      handled: 0,
      added: 0,
    };
  };

  /** What the server answered, by the paths this page knows the files by. */
  const record = (drop: DropView, paths: string[], report: UploadReport) => {
    const path = (index: number, name: string) => paths[index] ?? name;
    patchDrop(drop.id, (now) => ({
      failed: [
        ...now.failed,
        ...report.failed.map((f) => ({ path: path(f.index, f.name), reason: f.message })),
      ],
      skipped: [
        ...now.skipped,
        ...report.skipped.map((s) => ({ path: path(s.index, s.name), reason: s.reason })),
      ],
    }));
  };

  const pump = useCallback(async () => {
    if (running.current) return;
    for (;;) {
      const drop = dropsRef.current.find((d) => d.batches.some((b) => b.phase === 'waiting'));
      const batch = drop?.batches.find((b) => b.phase === 'waiting');
      if (!drop || !batch) return;
      const job = work.current.get(batch.id)!;
      const controller = new AbortController();
      running.current = { batch: batch.id, drop: drop.id, controller };
      patchBatch(batch.id, () => ({ phase: 'sending' }));
      const body: UploadBody =
        job.kind === 'urls'
          ? { urls: job.urls, label: job.label }
          : { files: job.items.map((item) => item.file), label: batch.label };
      const paths = job.kind === 'urls' ? job.urls : job.items.map((item) => item.path);
      try {
        const report = await sendBatch(
          drop.collection,
          batch.id,
          body,
          (sent, total) => patchBatch(batch.id, () => ({ sent, sendTotal: total })),
          controller.signal,
        );
        patchBatch(batch.id, () => ({ phase: 'done', handled: batch.files, added: report.added.length }));
        record(drop, paths, report);
      } catch (error) {
        if (controller.signal.aborted) {
          patchBatch(batch.id, () => ({
            phase: 'cancelled',
            error: 'Cancelled; images added before the cancel stay in the collection.',
          }));
        } else if (
          job.kind === 'files' &&
          job.items.length > 1 &&
          error instanceof ApiError &&
          error.code === 'UPLOAD_TOO_LARGE'
        ) {
          // The server takes less than it said (or than a server that says nothing takes by default):
          // the request goes again in two halves.
          const half = Math.ceil(job.items.length / 2);
          const parts = [batchOf(job.items.slice(0, half)), batchOf(job.items.slice(half))];
          patchDrop(drop.id, (now) => ({
            batches: now.batches.flatMap((b) => (b.id === batch.id ? parts : [b])),
          }));
        } else {
          const refused = isTokenRefused(error);
          patchBatch(batch.id, () => ({ phase: 'failed', error: errorText(error) }));
          patchDrop(drop.id, (now) => ({
            failed: [...now.failed, ...paths.map((path) => ({ path, reason: errorText(error) }))],
          }));
          if (refused) {
            // Nothing more can be sent without a token.
            commitDrops((list) =>
              list.map((d) => ({
                ...d,
                batches: d.batches.map((b) =>
                  b.phase === 'waiting'
                    ? { ...b, phase: 'cancelled', error: 'Not sent: the server refused the token.' }
                    : b,
                ),
              })),
            );
            onRefused.current();
          }
        }
      } finally {
        work.current.delete(batch.id);
        running.current = null;
      }
    }
  }, []);

  const add = (
    drop: Omit<DropView, 'batches' | 'failed' | 'skipped'>,
    batches: BatchView[],
    notSent: NotSent[],
  ) => {
    commitDrops((list) => [
      { ...drop, batches, failed: notSent.map(({ path, reason }) => ({ path, reason })), skipped: [] },
      ...list,
    ]);
    void pump();
  };

  /** Sends files to `collection`, split into requests the server takes. */
  const sendFiles = (collection: string, title: string, items: ToSend[], notSent: NotSent[]) =>
    add({ id: newId(), collection, title }, planBatches(items, limits.current).map(batchOf), notSent);

  /** Has the server fetch addresses into `collection`, as many per request as it takes files. */
  const sendUrls = (collection: string, urls: string[], invalid: NotSent[], label?: string) => {
    const batches: BatchView[] = [];
    for (let i = 0; i < urls.length; i += limits.current.maxFiles) {
      const id = newId();
      const slice = urls.slice(i, i + limits.current.maxFiles);
      work.current.set(id, { kind: 'urls', urls: slice, label });
      batches.push({
        id,
        kind: 'urls',
        label,
        files: slice.length,
        bytes: 0,
        phase: 'waiting',
        sent: 0,
        sendTotal: 0,
        handled: 0,
        added: 0,
      });
    }
    const count = urls.length + invalid.length;
    add({ id: newId(), collection, title: `${count} address${count === 1 ? '' : 'es'}` }, batches, invalid);
  };

  /** Stops a drop: its request in flight is aborted, those waiting are not sent. */
  const cancel = (dropId: string) => {
    commitDrops((list) =>
      list.map((drop) =>
        drop.id !== dropId
          ? drop
          : {
              ...drop,
              batches: drop.batches.map((b) =>
                b.phase === 'waiting' ? { ...b, phase: 'cancelled', error: 'Cancelled before sending.' } : b,
              ),
            },
      ),
    );
    if (running.current?.drop === dropId) running.current.controller.abort();
  };

  /** Forgets the drops that are over. */
  const clearFinished = () =>
    commitDrops((list) =>
      list.filter((drop) =>
        drop.batches.some((b) => b.phase === 'waiting' || b.phase === 'sending' || b.phase === 'adding'),
      ),
    );

  /** The server's progress on one of this page's batches. */
  const onEvent = (event: LibraryEvent) => {
    if (event.type !== 'progress' || event.operation !== 'upload') return;
    const mine = dropsRef.current.some((d) =>
      d.batches.some((b) => b.id === event.id && (b.phase === 'sending' || b.phase === 'adding')),
    );
    if (mine) patchBatch(event.id, () => ({ phase: 'adding', handled: event.done }));
  };

  /** Whether a batch id is this page's (other pages' batches show as activity elsewhere). */
  const isMine = (id: string) => dropsRef.current.some((d) => d.batches.some((b) => b.id === id));

  return { drops, sendFiles, sendUrls, cancel, clearFinished, onEvent, isMine };
}
