import { getConnInfo } from '@hono/node-server/conninfo';
import { type Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { streamCaps } from './load-guards.ts';
import type { CollectionRegistry } from './registry.ts';

/** What every open page hears, so they all show the same library without reloading. */
export type LibraryEvent =
  /** The list of collections changed (one created, deleted, joined, broken, or its preparation moved). */
  | { type: 'collections' }
  /** A collection's images changed (here or in another process): its size and generation now. */
  | { type: 'changed'; collection: string; size: number; generation: number }
  /**
   * Work in progress on a collection (an upload batch, a rescan), `done` of `total` files; for a search of
   * duplicates, of the `stage`'s images or pairs.
   */
  | {
      type: 'progress';
      collection: string;
      operation: 'upload' | 'rescan' | 'watch' | 'duplicates';
      id: string;
      done: number;
      total: number;
      stage?: 'calibrate' | 'neighbours' | 'compare';
    };

/** How often open pages are told what changed in the store (by this server or any other process). */
const POLL_MS = 1_000;
/** A comment line this often keeps proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

/**
 * Fans library events out to the pages listening on GET /api/events. While anyone listens it also
 * follows the store once a second (the collections' generations and the list), so changes made by
 * `ris add` in a terminal or by another server reach the page too.
 */
export class EventHub {
  /** Listeners get every event, and null when the hub closes (the server stops). */
  private readonly listeners = new Set<(event: LibraryEvent | null) => void>();
  private timer: NodeJS.Timeout | undefined;
  private seen = new Map<string, string>();
  private listing = '';

  constructor(
    private readonly registry: CollectionRegistry,
    private readonly discover?: () => Promise<void>,
  ) {}

  publish(event: LibraryEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  subscribe(listener: (event: LibraryEvent | null) => void): () => void {
    this.listeners.add(listener);
    if (!this.timer) {
      void this.snapshot(false);
      this.timer = setInterval(() => void this.snapshot(true), POLL_MS);
      this.timer.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const listener of [...this.listeners]) listener(null);
    this.listeners.clear();
  }

  /** Compares the store with what was last seen, and tells what differs. */
  private async snapshot(announce: boolean): Promise<void> {
    await this.discover?.().catch(() => undefined);
    const entries = this.registry.list();
    const listing = JSON.stringify(
      entries.map((e) => [e.name, e.state, e.state === 'preparing' ? e.preparation : null]),
    );
    if (announce && listing !== this.listing) this.publish({ type: 'collections' });
    this.listing = listing;
    const seen = new Map<string, string>();
    for (const collection of this.registry.ready()) {
      try {
        await collection.refresh();
        const [size, status] = await Promise.all([collection.count(), collection.status()]);
        const key = `${size}:${status.databaseGeneration}`;
        seen.set(collection.name, key);
        if (announce && this.seen.get(collection.name) !== key)
          this.publish({
            type: 'changed',
            collection: collection.name,
            size,
            generation: status.databaseGeneration,
          });
      } catch {
        // A collection being deleted or broken: the list event says so.
      }
    }
    this.seen = seen;
  }
}

/** GET /api/events: the hub's events as Server-Sent Events (`event: <type>`, JSON data). */
export function eventsRouter(hub: EventHub): Hono {
  const app = new Hono();
  const caps = streamCaps(clientAddress);
  app.get('/api/events', (c) => {
    const release = caps.take(c);
    return streamSSE(c, async (stream) => {
      const queue: LibraryEvent[] = [];
      let wake: (() => void) | undefined;
      let open = true;
      const unsubscribe = hub.subscribe((event) => {
        if (event) queue.push(event);
        else open = false;
        wake?.();
      });
      stream.onAbort(() => {
        open = false;
        wake?.();
      });
      try {
        await stream.writeSSE({ event: 'hello', data: '{}' });
        while (open) {
          const event = queue.shift();
          if (event) {
            await stream.writeSSE({ event: event.type, data: JSON.stringify(event) });
            continue;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, KEEPALIVE_MS).unref();
          });
          wake = undefined;
          if (open && queue.length === 0) await stream.write(': keep-alive\n\n');
        }
      } finally {
        unsubscribe();
        release();
      }
    });
  });
  return app;
}

/** The client's address as the socket has it (a proxy in front makes every client one). */
function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown'; // a request made in-process (app.request), with no socket
  }
}
