// Removing an image with undo: the image leaves the page at once, and the DELETE goes out only when the
// undo time has passed (or the user says "remove now"). A page closed meanwhile still sends it, with
// fetch's keepalive, so closing the tab never undoes a removal.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type ImageRef } from './api.ts';
import { isTokenRefused, removeImage } from './library-api.ts';

/** How long a removal can be undone. */
export const UNDO_MS = 6_000;

export interface PendingRemoval {
  key: string;
  collection: string;
  image: ImageRef;
}

const keyOf = (collection: string, id: number) => `${collection}\n${id}`;

export interface Removals {
  /** Removals that can still be undone, oldest first. */
  pending: PendingRemoval[];
  remove: (collection: string, image: ImageRef) => void;
  undo: (key: string) => void;
  /** Sends a pending removal now. */
  commit: (key: string) => void;
  /** Whether an image is removed (pending or sent): the page no longer shows it. */
  isRemoved: (collection: string, id: number) => boolean;
  /** How many removals this page has sent to a collection, to tell its own changes from others'. */
  sentTo: (collection: string) => number;
}

export function useRemovals(handlers: {
  onRefused: () => void;
  onError: (message: string) => void;
}): Removals {
  const [pending, setPending] = useState<PendingRemoval[]>([]);
  const [sent, setSent] = useState<ReadonlySet<string>>(new Set());
  const timers = useRef(new Map<string, ReturnType<typeof setTimeout>>());
  const waiting = useRef(new Map<string, PendingRemoval>());
  const sentCounts = useRef(new Map<string, number>());
  const on = useRef(handlers);
  on.current = handlers;

  const forget = (key: string) => {
    clearTimeout(timers.current.get(key));
    timers.current.delete(key);
    waiting.current.delete(key);
    setPending((list) => list.filter((r) => r.key !== key));
  };

  const commit = useCallback((key: string) => {
    const removal = waiting.current.get(key);
    if (!removal) return;
    forget(key);
    const { collection, image } = removal;
    setSent((set) => new Set(set).add(key));
    sentCounts.current.set(collection, (sentCounts.current.get(collection) ?? 0) + 1);
    removeImage(collection, image.id).catch((error: unknown) => {
      if (error instanceof ApiError && error.status === 404) return; // removed elsewhere already
      setSent((set) => {
        const next = new Set(set);
        next.delete(key);
        return next;
      });
      if (isTokenRefused(error)) on.current.onRefused();
      else
        on.current.onError(
          `Image #${image.id} could not be removed from ${collection}: ${error instanceof Error ? error.message : String(error)}`,
        );
    });
  }, []);

  const remove = useCallback(
    (collection: string, image: ImageRef) => {
      const key = keyOf(collection, image.id);
      if (waiting.current.has(key)) return;
      const removal = { key, collection, image };
      waiting.current.set(key, removal);
      timers.current.set(
        key,
        setTimeout(() => commit(key), UNDO_MS),
      );
      setPending((list) => [...list, removal]);
    },
    [commit],
  );

  const undo = useCallback((key: string) => forget(key), []);

  // The page is going away (closed, reloaded, another address): what is pending goes now, and survives it.
  useEffect(() => {
    const flush = () => {
      const keys = [...waiting.current.keys()];
      for (const { key, collection, image } of waiting.current.values()) {
        clearTimeout(timers.current.get(key));
        void removeImage(collection, image.id, true).catch(() => undefined);
      }
      waiting.current.clear();
      timers.current.clear();
      // Kept in the back-forward cache, the page may come back: what it shows then is what was sent.
      setPending([]);
      setSent((set) => new Set([...set, ...keys]));
    };
    addEventListener('pagehide', flush);
    return () => removeEventListener('pagehide', flush);
  }, []);

  const isRemoved = useCallback(
    (collection: string, id: number) => {
      const key = keyOf(collection, id);
      return sent.has(key) || pending.some((r) => r.key === key);
    },
    [sent, pending],
  );

  return {
    pending,
    remove,
    undo,
    commit,
    isRemoved,
    sentTo: (collection) => sentCounts.current.get(collection) ?? 0,
  };
}
