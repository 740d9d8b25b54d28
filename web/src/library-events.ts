// GET /api/events: what every open page hears (collections made or deleted, sizes changing, work in
// progress), so all of them show the same library without reloading.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { LibraryEvent } from './library-api.ts';

/** A library event, or 'connected': the stream (re)opened, and what happened meanwhile was not heard. */
export type StreamEvent = LibraryEvent | { type: 'connected' };

const TYPES = ['collections', 'changed', 'progress'] as const;

/**
 * Listens to the server's events while `enabled`. The browser reconnects by itself after a network
 * failure; each (re)connection is told as 'connected', so the page can catch up by asking again.
 * A read-token server lets the stream through by the cookie GET /api/session set.
 */
export function useLibraryEvents(enabled: boolean, onEvent: (event: StreamEvent) => void): void {
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    if (!enabled || typeof EventSource === 'undefined') return;
    const source = new EventSource('api/events');
    source.addEventListener('hello', () => handler.current({ type: 'connected' }));
    for (const type of TYPES)
      source.addEventListener(type, (message) => {
        try {
          handler.current(JSON.parse((message as MessageEvent<string>).data) as LibraryEvent);
        } catch {
          // A message this page does not understand (a newer server): ignored.
        }
      });
    return () => source.close();
  }, [enabled]);
}

/** Work in progress on a collection (another page's upload, a rescan), as the stream tells it. */
export type Activity = Extract<LibraryEvent, { type: 'progress' }>;

/** An activity not heard of for this long is over (its page closed, its request cut). */
const ACTIVITY_GONE_MS = 20_000;

/** The latest work in progress per collection, from the stream's 'progress' events. */
export function useActivity(): [Map<string, Activity>, (event: Activity) => void] {
  const [activity, setActivity] = useState<Map<string, Activity>>(new Map());
  const timers = useRef(new Map<string, ReturnType<typeof setTimeout>>());
  const forget = (collection: string) =>
    setActivity((now) => {
      const next = new Map(now);
      next.delete(collection);
      return next;
    });
  const hear = (event: Activity) => {
    clearTimeout(timers.current.get(event.collection));
    if (event.done >= event.total) {
      forget(event.collection);
      return;
    }
    timers.current.set(
      event.collection,
      setTimeout(() => forget(event.collection), ACTIVITY_GONE_MS),
    );
    setActivity((now) => new Map(now).set(event.collection, event));
  };
  useEffect(() => () => timers.current.forEach(clearTimeout), []);
  return [activity, hear];
}
