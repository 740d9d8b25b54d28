import { Hono } from 'hono';
import { z } from 'zod';
import type { ImageCollection } from '../collection/store.ts';
import { type DuplicatesReport, findDuplicates } from '../duplicates/find.ts';
import { RequestError } from '../errors.ts';
import { matchThreads } from '../node/match-threads.ts';
import type { EventHub } from './events.ts';

export interface DuplicatesRouterOptions {
  /** The served collection of a name, or the error that says why there is none (a registry's `require`). */
  collection: (name: string) => ImageCollection;
  /** Where the search's progress goes (GET /api/events), so the page shows it while it waits. */
  hub?: EventHub;
}

/** Answers kept per collection: the default threshold and a few a slider moved to. */
const KEPT_PER_COLLECTION = 4;
/**
 * Searches for duplicates run one at a time on a server (each takes the CPU for seconds on a large
 * collection), and at most this many wait or run: past that a new threshold is BUSY (503, Retry-After),
 * so a client that asks for many thresholds at once cannot queue hours of work.
 */
const SEARCHES_AT_ONCE = 3;

const duplicatesQuery = z.object({
  // An empty ?threshold= means the default, not 0.
  threshold: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.coerce.number().min(-1).max(1).optional(),
  ),
  neighbours: z.coerce.number().int().min(1).max(100).optional(),
  page: z.coerce.number().int().min(0).default(0),
  count: z.coerce.number().int().min(1).max(500).default(50),
});

/**
 * `GET /api/collections/:name/duplicates?threshold=&neighbours=&page=&count=`: the groups of `ris duplicates --json`
 * (the same library call, the same JSON per group), a page at a time (`count` groups, default 50, largest
 * groups first) with the number of groups in all. Finding the groups takes seconds on a large collection:
 * the answer is kept per threshold until the collection changes, so paging and a slider going back and
 * forth cost nothing, and requests that arrive meanwhile wait for the same work. Its progress goes to
 * every open page (a `progress` event of operation `duplicates`).
 */
export function duplicatesRouter(options: DuplicatesRouterOptions): Hono {
  const app = new Hono();
  const kept = new Map<string, { generation: number; answers: Map<string, Promise<DuplicatesReport>> }>();
  let queue: Promise<unknown> = Promise.resolve();
  let queued = 0;

  const reportOf = async (
    col: ImageCollection,
    threshold: number | undefined,
    neighbours: number | undefined,
  ): Promise<DuplicatesReport> => {
    await col.refresh();
    const { databaseGeneration: generation } = await col.status();
    let entry = kept.get(col.name);
    if (!entry || entry.generation !== generation) {
      entry = { generation, answers: new Map() };
      kept.set(col.name, entry);
    }
    const key = `${threshold ?? 'default'}/${neighbours ?? 'default'}`;
    let answer = entry.answers.get(key);
    if (!answer) {
      if (queued >= SEARCHES_AT_ONCE)
        throw new RequestError(
          'BUSY',
          'This server is already searching for duplicates at other thresholds; try again once those are done',
        );
      const id = `duplicates-${col.name}-${key}`;
      queued++;
      const search = () =>
        findDuplicates(col, {
          threshold,
          neighbours,
          matcher: matchThreads,
          onProgress: (event) =>
            options.hub?.publish({
              type: 'progress',
              collection: col.name,
              operation: 'duplicates',
              id,
              stage: event.type,
              done: event.done,
              total: event.total,
            }),
        });
      answer = queue
        .catch(() => undefined)
        .then(search)
        .finally(() => {
          queued--;
        });
      queue = answer;
      entry.answers.set(key, answer);
      const answers = entry.answers;
      // A failure is not kept: the next request tries again.
      answer.catch(() => answers.delete(key));
      if (answers.size > KEPT_PER_COLLECTION) answers.delete(answers.keys().next().value!);
    }
    return answer;
  };

  app.get('/api/collections/:name/duplicates', async (c) => {
    const col = options.collection(c.req.param('name'));
    const { threshold, neighbours, page, count } = duplicatesQuery.parse(c.req.query());
    const report = await reportOf(col, threshold, neighbours);
    const start = page * count;
    return c.json({
      threshold: report.threshold,
      thresholdSource: report.thresholdSource,
      total: report.groups.length,
      page,
      count,
      hasMore: start + count < report.groups.length,
      groups: report.groups.slice(start, start + count),
    });
  });
  return app;
}
