// The library routes of the ris API (src/server/library.ts): what this page may do, the models a
// collection can be made with, and the changes (create, delete, send images, remove one). Changes carry
// the write token (token.ts); uploads go through XMLHttpRequest, the one browser API that reports how
// much of a request body has been sent.

// The event and report types are the server's own (type-only: nothing of the server reaches the bundle).
import type { UploadReport } from '../../src/collection/uploads.ts';
import type { LibraryEvent } from '../../src/server/events.ts';
import { ApiError, collectionPath, request, type SimilarityScale } from './api.ts';
import { storedToken } from './token.ts';

export type { LibraryEvent, UploadReport };

/** What a request may do with the tokens this page holds, and how much one upload request may carry. */
export interface Session {
  read: boolean;
  write: boolean;
  readTokenRequired: boolean;
  uploads: UploadLimits;
}

export interface UploadLimits {
  /** Files per request. */
  maxFiles: number;
  /** Bytes per request, all files together. */
  maxBytes: number;
}

/** The server's defaults, for a server that does not say its own. */
export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { maxFiles: 100, maxBytes: 200_000_000 };

export async function getSession(): Promise<Session> {
  const session = await request<Partial<Session>>('api/session');
  return {
    read: session.read ?? true,
    write: session.write ?? false,
    readTokenRequired: session.readTokenRequired ?? false,
    uploads: session.uploads ?? DEFAULT_UPLOAD_LIMITS,
  };
}

/** A model a collection can be made with: `name` is what to send, `label` what to show. */
export interface ModelChoice {
  name: string;
  label: string;
  default: boolean;
  similarity: SimilarityScale;
}

export const listModels = () => request<ModelChoice[]>('api/models');

export type IndexChoice = 'auto' | 'flat' | 'hnsw' | 'ivf-pq' | 'ivf-rabitq';

export function createCollection(body: { name: string; model?: string; index?: IndexChoice }) {
  return request<{ name: string; model: string; size: number }>('api/collections', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

export const deleteCollection = (name: string) => request<void>(collectionPath(name), { method: 'DELETE' });

/** What a rescan of a collection's folder changed (POST …/rescan). */
export interface RescanSummary {
  added: number;
  reembedded: number;
  removed: number;
  moved: number;
  excluded: number;
  unchanged: number;
  failed: { path: string; code: string; message: string }[];
}

export const rescanCollection = (name: string) =>
  request<RescanSummary>(`${collectionPath(name)}/rescan`, { method: 'POST' });

/** One sentence for what a rescan did: the changes it made, or that there were none. */
export function describeRescan(name: string, r: RescanSummary): string {
  const parts = [
    [r.added, 'added'],
    [r.reembedded, 'embedded again'],
    [r.removed, 'removed'],
    [r.moved, 'moved'],
    [r.failed.length, 'could not be read'],
  ]
    .filter(([count]) => Number(count) > 0)
    .map(([count, what]) => `${Number(count).toLocaleString('en')} ${what}`);
  return parts.length
    ? `Rescanned ${name}: ${parts.join(', ')}.`
    : `Rescanned ${name}: its folder has not changed.`;
}

/**
 * Removes an image. `keepalive` lets the request outlive the page (a removal whose undo time runs out
 * after the tab is closed).
 */
export const removeImage = (collection: string, id: number, keepalive = false) =>
  request<void>(`${collectionPath(collection)}/images/${id}`, { method: 'DELETE', keepalive });

/** Removes several images at once (at most 5,000 a request); the answer counts them. */
export const removeImages = (collection: string, ids: number[], keepalive = false) =>
  request<{ removed: number; notFound: (number | string)[] }>(`${collectionPath(collection)}/images/remove`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ids }),
    keepalive,
  });

/** What one upload request sends: image files (one label for all), or addresses for the server to fetch. */
export type UploadBody = { files: File[]; label?: string } | { urls: string[]; label?: string };

/**
 * Sends one batch to a collection; `batch` names it in the server's progress events (GET /api/events),
 * `onSent` follows the request body as it leaves. Resolves with what became of each file, in order.
 */
export function sendBatch(
  collection: string,
  batch: string,
  body: UploadBody,
  onSent: (sent: number, total: number) => void,
  signal: AbortSignal,
): Promise<UploadReport> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${collectionPath(collection)}/images?batch=${encodeURIComponent(batch)}`);
    const token = storedToken();
    if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.responseType = 'json';
    xhr.upload.onprogress = (event) => onSent(event.loaded, event.total);
    xhr.onload = () => {
      const answer = xhr.response as (UploadReport & { error?: { code: string; message: string } }) | null;
      if (xhr.status === 200 && answer) return resolve(answer);
      reject(
        new ApiError(
          answer?.error?.code ?? 'HTTP_ERROR',
          answer?.error?.message ?? `The server answered ${xhr.status} ${xhr.statusText}`,
          xhr.status,
        ),
      );
    };
    xhr.onerror = () =>
      reject(new ApiError('NETWORK', 'The ris server cannot be reached; is `ris serve` still running?'));
    xhr.onabort = () => reject(new DOMException('The upload was cancelled', 'AbortError'));
    signal.addEventListener('abort', () => xhr.abort(), { once: true });
    if ('urls' in body) {
      xhr.setRequestHeader('content-type', 'application/json');
      xhr.send(JSON.stringify(body));
      return;
    }
    const form = new FormData();
    if (body.label) form.append('label', body.label);
    for (const file of body.files) form.append('image', file, file.name);
    xhr.send(form);
  });
}

/** Whether a failure is the server refusing this page's token (it was changed, or never right). */
export const isTokenRefused = (error: unknown) =>
  error instanceof ApiError && error.status === 401 && error.code === 'UNAUTHORIZED';
