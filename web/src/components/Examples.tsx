import { useState } from 'preact/hooks';
import type { ImageRef } from '../api.ts';
import { randomSeed, useRandomPage } from './random-page.ts';
import { Thumbnails } from './Thumbnails.tsx';

const PER_PAGE = 20;

interface ExamplesProps {
  collection: string;
  onPick: (image: ImageRef) => void;
  onError: (message: string) => void;
}

/** 20 random images of the collection; "More examples" shows the next 20, never one already shown. */
export function Examples({ collection, onPick, onError }: ExamplesProps) {
  const [position, setPosition] = useState({ seed: randomSeed(), page: 0 });
  const { page, loading } = useRandomPage(collection, 'examples', { ...position, count: PER_PAGE }, onError);

  // After the last page, a new order starts rather than an empty page.
  const more = () =>
    setPosition(page?.hasMore ? { ...position, page: position.page + 1 } : { seed: randomSeed(), page: 0 });

  return (
    <div aria-busy={loading}>
      <p class="hint">Click an example to put it in To search.</p>
      {page && <Thumbnails images={page.images} action="Use example" onPick={onPick} />}
      {loading && !page && <p class="muted">Loading examples…</p>}
      <button type="button" onClick={more} disabled={loading}>
        More examples
      </button>
    </div>
  );
}
