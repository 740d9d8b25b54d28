import { useEffect, useState } from 'preact/hooks';
import { type ImageRef, randomImages } from '../api.ts';
import { randomSeed } from './Examples.tsx';
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
  const [pages, setPages] = useState(1);
  const [images, setImages] = useState<ImageRef[]>([]);
  const [hasMore, setHasMore] = useState(false);
  const [loading, setLoading] = useState(true);

  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    randomImages(collection, 'gallery', { seed, page: pages - 1, count: PER_PAGE }, controller.signal)
      .then((page) => {
        setImages((shown) => (page.page === 0 ? page.images : [...shown, ...page.images]));
        setHasMore(page.hasMore);
      })
      .catch((error: Error) => {
        if (!controller.signal.aborted) onError(`The gallery could not be loaded: ${error.message}`);
      })
      .finally(() => {
        if (!controller.signal.aborted) setLoading(false);
      });
    return () => controller.abort();
  }, [collection, seed, pages, onError]);

  return (
    <div aria-busy={loading}>
      <p class="hint">
        {images.length} of {total} images in random order. Click one to enlarge it and download it.
      </p>
      <Thumbnails images={images} action="Enlarge" onPick={onEnlarge} />
      {loading && images.length === 0 && <p class="muted">Loading the gallery…</p>}
      {hasMore && (
        <button type="button" onClick={() => setPages(pages + 1)} disabled={loading}>
          Show more
        </button>
      )}
    </div>
  );
}
