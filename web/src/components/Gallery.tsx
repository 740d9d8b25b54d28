import { useEffect, useRef, useState } from 'preact/hooks';
import type { ImageRef } from '../api.ts';
import { randomSeed, useRandomPage } from './random-page.ts';
import { Thumbnails } from './Thumbnails.tsx';

const PER_PAGE = 24;
/** What a refresh fetches again at most (the API answers 100 images a page). */
const MAX_REFRESH = 4 * PER_PAGE;

interface GalleryProps {
  collection: string;
  total: number;
  /** The collection's generation as the server last told it; a change shows the collection anew. */
  generation?: number;
  onEnlarge: (image: ImageRef) => void;
  onError: (message: string) => void;
  /** Removing from a tile (with the write token); removed images leave the grid at once. */
  onRemove?: (image: ImageRef) => void;
  isRemoved?: (id: number) => boolean;
  /** How many removals this page has sent to the collection: its own changes do not reshuffle the grid. */
  removalsSent?: () => number;
}

/** Random images of the collection, 24 at a time; "Show more" adds the next ones. */
export function Gallery({
  collection,
  total,
  generation,
  onEnlarge,
  onError,
  onRemove,
  isRemoved,
  removalsSent = () => 0,
}: GalleryProps) {
  const [seed] = useState(randomSeed);
  // Page 0 may span several pages' worth after a refresh; "Show more" then goes on from there.
  const [position, setPosition] = useState({ page: 0, count: PER_PAGE });
  const [refresh, setRefresh] = useState(0);
  const { page, loading } = useRandomPage(collection, 'gallery', { seed, ...position }, onError, refresh);
  // Each page adds to those shown; the first one starts afresh.
  const [images, setImages] = useState<ImageRef[]>([]);
  const sentAtFetch = useRef(removalsSent());
  useEffect(() => {
    if (!page) return;
    sentAtFetch.current = removalsSent();
    setImages((shown) => (page.page === 0 ? page.images : [...shown, ...page.images]));
  }, [page]);

  // The collection changed (an upload here or elsewhere, a removal from another page, `ris add`): the
  // images shown are fetched again, in the same seeded order. Changes this page made by removing
  // images (already gone from the grid) do not reshuffle it.
  useEffect(() => {
    if (generation === undefined || !page) return;
    if (total === page.total - (removalsSent() - sentAtFetch.current)) return;
    const shown = (position.page + 1) * position.count;
    setPosition({ page: 0, count: Math.min(MAX_REFRESH, Math.ceil(shown / PER_PAGE) * PER_PAGE) });
    setRefresh((n) => n + 1);
  }, [generation]);

  const visible = isRemoved ? images.filter((image) => !isRemoved(image.id)) : images;
  const showMore = () =>
    setPosition({ page: ((position.page + 1) * position.count) / PER_PAGE, count: PER_PAGE });

  return (
    <div aria-busy={loading}>
      <p class="hint">
        {visible.length} of {total} images in random order. Click one to enlarge it and download it.
      </p>
      <Thumbnails images={visible} action="Enlarge" onPick={onEnlarge} onRemove={onRemove} />
      {loading && images.length === 0 && <p class="muted">Loading the gallery…</p>}
      {page?.hasMore && (
        <button type="button" onClick={showMore} disabled={loading}>
          Show more
        </button>
      )}
    </div>
  );
}
