// Removing images with undo: the images leave the page at once, and the request goes out only when the
// undo time has passed (or the user says "remove now"). A page closed meanwhile still sends it, with
// fetch's keepalive, so closing the tab never undoes a removal. One image goes as DELETE …/images/:id,
// several (the duplicates view's "remove the others") as one POST …/images/remove per few thousand.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, type ImageRef } from './api.ts';
import { isTokenRefused, removeImage, removeImages } from './library-api.ts';

/** How long a removal can be undone. */
export const UNDO_MS = 6_000;

export interface PendingRemoval {
  key: string;
  collection: string;
  /** The first image removed (the one whose remove button was pressed). */
  image: ImageRef;
  /** Every image removed: one, or the copies of a group (or of all groups). */
  images: ImageRef[];
  /** What the undo notice calls them, for several images ("3 copies in 2 groups"). */
  what?: string;
}

const keyOf = (collection: string, id: number) => `${collection}\n${id}`;

export interface Removals {
  /** Removals that can still be undone, oldest first. */
  pending: PendingRemoval[];
  remove: (collection: string, image: ImageRef) => void;
  /** Removes several images as one removal (one undo). */
  removeMany: (collection: string, images: ImageRef[], what: string) => void;
  undo: (key: string) => void;
  /** Sends a pending removal now. */
  commit: (key: string) => void;
  /** Whether an image is removed (pending or sent): the page no longer shows it. */
  isRemoved: (collection: string, id: number) => boolean;
  /** How many removals this page has sent to a collection, to tell its own changes from others'. */
  sentTo: (collection: string) => number;
}

/** Sends a removal: one image by its own route, several in turns of the bulk route's largest request. */
async function send(removal: PendingRemoval, keepalive: boolean): Promise<void> {
  const { collection, images } = removal;
  if (images.length === 1) return removeImage(collection, images[0]!.id, keepalive);
  const ids = images.map((image) => image.id);
  for (let start = 0; start < ids.length; start += MAX_IDS_PER_REQUEST)
    await removeImages(collection, ids.slice(start, start + MAX_IDS_PER_REQUEST), keepalive);
}
/** As the server takes at most (MAX_REMOVE_IDS in src/server/library.ts). */
const MAX_IDS_PER_REQUEST = 5_000;

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
    const { collection, image, images } = removal;
    const keys = images.map((i) => keyOf(collection, i.id));
    setSent((set) => new Set([...set, ...keys]));
    sentCounts.current.set(collection, (sentCounts.current.get(collection) ?? 0) + images.length);
    send(removal, false).catch((error: unknown) => {
      if (error instanceof ApiError && error.status === 404) return; // removed elsewhere already
      setSent((set) => {
        const next = new Set(set);
        for (const k of keys) next.delete(k);
        return next;
      });
      if (isTokenRefused(error)) on.current.onRefused();
      else
        on.current.onError(
          `${images.length === 1 ? `Image #${image.id}` : (removal.what ?? `${images.length} images`)} could not be removed from ${collection}: ${error instanceof Error ? error.message : String(error)}`,
        );
    });
  }, []);

  const removeMany = useCallback(
    (collection: string, images: ImageRef[], what?: string) => {
      if (images.length === 0) return;
      const image = images[0]!;
      const key =
        images.length === 1 ? keyOf(collection, image.id) : `${keyOf(collection, image.id)}+${images.length}`;
      if (waiting.current.has(key)) return;
      const removal: PendingRemoval = { key, collection, image, images, what };
      waiting.current.set(key, removal);
      timers.current.set(
        key,
        setTimeout(() => commit(key), UNDO_MS),
      );
      setPending((list) => [...list, removal]);
    },
    [commit],
  );

  const remove = useCallback(
    (collection: string, image: ImageRef) => removeMany(collection, [image]),
    [removeMany],
  );

  const undo = useCallback((key: string) => forget(key), []);

  // The page is going away (closed, reloaded, another address): what is pending goes now, and survives it.
  useEffect(() => {
    const flush = () => {
      const keys = [...waiting.current.values()].flatMap((r) =>
        r.images.map((i) => keyOf(r.collection, i.id)),
      );
      for (const removal of waiting.current.values()) {
        clearTimeout(timers.current.get(removal.key));
        void send(removal, true).catch(() => undefined);
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

  // A removal of all groups holds thousands of images: looked up by key, not by scanning them.
  const pendingKeys = useMemo(
    () => new Set(pending.flatMap((r) => r.images.map((i) => keyOf(r.collection, i.id)))),
    [pending],
  );
  const isRemoved = useCallback(
    (collection: string, id: number) => {
      const key = keyOf(collection, id);
      return sent.has(key) || pendingKeys.has(key);
    },
    [sent, pendingKeys],
  );

  return {
    pending,
    remove,
    removeMany,
    undo,
    commit,
    isRemoved,
    sentTo: (collection) => sentCounts.current.get(collection) ?? 0,
  };
}
