import { useEffect, useState } from 'preact/hooks';
import type { ImageRef } from '../api.ts';
import { randomSeed, useRandomPage } from './random-page.ts';
import { Thumbnails } from './Thumbnails.tsx';

const PER_PAGE = 24;

interface GalleryProps {
  collection: string;
  total: number;
  onEnlarge: (image: ImageRef) => void;
  onError: (message: string) => void;
}

/** Random images of the collection, 24 at a time; "Show more" adds the next ones. */
export function Gallery({ collection, total, onEnlarge, onError }: GalleryProps) {
  const [seed] = useState(randomSeed);
  const [pageIndex, setPageIndex] = useState(0);
  const { page, loading } = useRandomPage(
    collection,
    'gallery',
    { seed, page: pageIndex, count: PER_PAGE },
    onError,
  );
  // Each page adds to those shown; the first one starts afresh.
  const [images, setImages] = useState<ImageRef[]>([]);
  useEffect(() => {
    if (page) setImages((shown) => (page.page === 0 ? page.images : [...shown, ...page.images]));
  }, [page]);

  return (
    <div aria-busy={loading}>
      <p class="hint">
        {images.length} of {total} images in random order. Click one to enlarge it and download it.
      </p>
      <Thumbnails images={images} action="Enlarge" onPick={onEnlarge} />
      {loading && images.length === 0 && <p class="muted">Loading the gallery…</p>}
      {page?.hasMore && (
        <button type="button" onClick={() => setPageIndex(pageIndex + 1)} disabled={loading}>
          Show more
        </button>
      )}
    </div>
  );
}
