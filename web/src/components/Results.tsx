import type { ImageRef, SearchHit, SearchResponse } from '../api.ts';
import { labelText, similarityText } from '../format.ts';

interface ResultsProps {
  response: SearchResponse | null;
  /** Counts searches, so a page (or a test) can tell new results from old ones that look the same. */
  serial: number;
  count: number;
  loading: boolean;
  /** The relevance cutoff: results less similar are not shown (null: none). */
  minSimilarity?: number | null;
  onEnlarge: (image: ImageRef) => void;
  onSearch: (image: SearchHit) => void;
  /** Removing from a result card (with the write token); removed images leave the list at once. */
  onRemove?: (image: SearchHit) => void;
  isRemoved?: (id: number) => boolean;
}

/** The ranked results: rank, image, label, similarity, and a button to search again with each. */
export function Results({
  response,
  serial,
  count,
  loading,
  minSimilarity = null,
  onEnlarge,
  onSearch,
  onRemove,
  isRemoved,
}: ResultsProps) {
  if (!response)
    return (
      <p class="empty-note" aria-busy={loading}>
        {loading ? 'Searching…' : 'Results appear here: choose an image to search, then press Search.'}
      </p>
    );
  const passing = response.results.filter(
    (hit) => !isRemoved?.(hit.id) && (minSimilarity === null || hit.similarity >= minSimilarity),
  );
  const shown = passing.slice(0, count);
  return (
    <div class={`results${loading ? ' stale' : ''}`} aria-busy={loading} data-search={serial}>
      {shown.length === 0 && minSimilarity !== null ? (
        // Never the least bad images instead: with a cutoff, nothing close is an answer of its own.
        <p class="no-match" aria-live="polite">
          <strong>No close match</strong> in {response.collection}: no image is at least{' '}
          {similarityText(minSimilarity)} similar to this one. Lower the minimum similarity to see the nearest
          images.
        </p>
      ) : (
        <p class="muted" aria-live="polite">
          {shown.length} of {passing.length} results in {response.collection}
          {minSimilarity !== null && ` at least ${similarityText(minSimilarity)} similar`},{' '}
          {Math.round(response.timeMs)} ms
        </p>
      )}
      <ol class="result-list">
        {shown.map((hit) => (
          <li key={hit.id} class="result">
            <button
              type="button"
              class="result-image"
              aria-label={`Enlarge result ${hit.rank}, ${labelText(hit)}`}
              onClick={() => onEnlarge(hit)}
            >
              <img src={hit.thumbnailUrl} alt="" />
            </button>
            <div class="result-text" id={`result-${hit.rank}`}>
              <span class="rank">#{hit.rank}</span> <span class="label">{labelText(hit)}</span>
              <span class="similarity">
                similarity <strong>{similarityText(hit.similarity)}</strong>
                <span class="similarity-bar" aria-hidden="true">
                  <span style={{ width: `${Math.max(0, Math.min(1, hit.similarity)) * 100}%` }} />
                </span>
              </span>
            </div>
            <button type="button" aria-describedby={`result-${hit.rank}`} onClick={() => onSearch(hit)}>
              Search with this image
            </button>
            {onRemove && (
              <button
                type="button"
                class="remove-button"
                data-removes-id={hit.id}
                aria-describedby={`result-${hit.rank}`}
                onClick={() => onRemove(hit)}
              >
                Remove from collection
              </button>
            )}
          </li>
        ))}
      </ol>
    </div>
  );
}
