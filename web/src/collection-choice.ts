import type { CollectionEntry } from './api.ts';

/**
 * The collection a page opens on: the one its address names (`?collection=`) when it can be searched,
 * else the first that can; with a sentence saying why when that is not the one asked for (or when none
 * can be searched yet).
 */
export function openingCollection(
  list: CollectionEntry[],
  wanted: string | null,
): { name: string; problem?: string } {
  const ready = list.filter((c) => c.state === 'ready');
  const chosen = ready.find((c) => c.name === wanted) ?? ready[0];
  const name = chosen?.name ?? '';
  if (wanted && name !== wanted) {
    const asked = list.find((c) => c.name === wanted);
    const why = !asked
      ? `There is no collection "${wanted}" on this server`
      : asked.state === 'preparing'
        ? `The collection "${wanted}" is still being prepared`
        : asked.state === 'ready'
          ? `The collection "${wanted}" cannot be shown`
          : `The collection "${wanted}" cannot be used: ${asked.reason}`;
    return { name, problem: `${why}; showing ${name || 'nothing'} instead.` };
  }
  if (ready.length === 0 && list.length > 0)
    return { name, problem: 'No collection can be searched yet: see the collection list for why.' };
  return { name };
}
