import type { Context, MiddlewareHandler } from 'hono';
import { RequestError } from '../errors.ts';

/**
 * Query images held at once, as a multiple of the largest one: a search buffers its whole body (and its
 * decoded copies), so without a budget anyone who may search could fill the server's memory with
 * parallel 20 MB uploads (about 65 MB of memory each). Past the budget a request is BUSY (503,
 * Retry-After), before its body is read. Small uploads, the usual case, hardly count: the budget is in
 * bytes declared by Content-Length (a body without one counts as the largest).
 */
export const QUERY_BODIES_AT_ONCE = 8;

/** Holds a query body's declared bytes against the server's budget while its request runs. */
export function queryBudget(maxBytes: number): MiddlewareHandler {
  const budget = QUERY_BODIES_AT_ONCE * maxBytes;
  let held = 0;
  return async (c, next) => {
    if (c.req.method !== 'POST') return next();
    const declared = Number(c.req.header('content-length'));
    const bytes = Number.isFinite(declared) && declared >= 0 ? Math.min(declared, maxBytes) : maxBytes;
    if (held > 0 && held + bytes > budget)
      throw new RequestError(
        'BUSY',
        'The server is reading as many query images as it holds at once; try again in a moment',
      );
    held += bytes;
    try {
      await next();
    } finally {
      held -= bytes;
    }
  };
}

/** Event streams open at once: in all, and from one client address. */
export const EVENT_STREAMS = { total: 256, perAddress: 16 } as const;

/**
 * Counts the open event streams (GET /api/events): each holds a socket and a timer for as long as the
 * client keeps it, so past the caps a new one is BUSY (503, Retry-After) instead of piling up.
 */
export function streamCaps(
  address: (c: Context) => string,
  caps: { total: number; perAddress: number } = EVENT_STREAMS,
) {
  const open = new Map<string, number>();
  let total = 0;
  return {
    /** Takes a place for a stream, or throws BUSY; `release` gives it back once the stream ends. */
    take(c: Context): () => void {
      const from = address(c);
      const mine = open.get(from) ?? 0;
      if (total >= caps.total || mine >= caps.perAddress)
        throw new RequestError(
          'BUSY',
          `This server keeps at most ${caps.perAddress} event streams per client and ${caps.total} in all; close another page, or try again later`,
        );
      open.set(from, mine + 1);
      total++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        total--;
        const left = (open.get(from) ?? 1) - 1;
        if (left > 0) open.set(from, left);
        else open.delete(from);
      };
    },
  };
}
