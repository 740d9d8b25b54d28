import { useEffect, useState } from 'preact/hooks';
import { type ImagePage, randomImages } from '../api.ts';

export const randomSeed = () => Math.floor(Math.random() * 2 ** 31);

/**
 * One seeded random page of a collection (examples, gallery), fetched again when any input changes (or
 * `refresh` does: the collection changed); a fetch that is overtaken is aborted. A failure goes to
 * `onError`, prefixed with what was loading.
 */
export function useRandomPage(
  collection: string,
  kind: 'examples' | 'gallery',
  position: { seed: number; page: number; count: number },
  onError: (message: string) => void,
  refresh = 0,
): { page: ImagePage | null; loading: boolean } {
  const [page, setPage] = useState<ImagePage | null>(null);
  const [loading, setLoading] = useState(true);
  const { seed, page: index, count } = position;
  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    randomImages(collection, kind, { seed, page: index, count }, controller.signal)
      .then(setPage)
      .catch((error: Error) => {
        if (!controller.signal.aborted)
          onError(
            `${kind === 'examples' ? 'Examples' : 'The gallery'} could not be loaded: ${error.message}`,
          );
      })
      .finally(() => {
        if (!controller.signal.aborted) setLoading(false);
      });
    return () => controller.abort();
  }, [collection, kind, seed, index, count, onError, refresh]);
  return { page, loading };
}
