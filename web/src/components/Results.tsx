import type { ImageRef, SearchHit, SearchResponse } from '../api.ts';
import { labelText, similarityText } from '../format.ts';

interface ResultsProps {
  response: SearchResponse | null;
  /** Counts searches, so a page (or a test) can tell new results from old ones that look the same. */
  serial: number;
  count: number;
  loading: boolean;
  onEnlarge: (image: ImageRef) => void;
  onSearch: (image: SearchHit) => void;
}

/** The ranked results: rank, image, label, similarity, and a button to search again with each. */
export function Results({ response, serial, count, loading, onEnlarge, onSearch }: ResultsProps) {
  if (!response)
    return (
      <p class="empty-note" aria-busy={loading}>
        {loading ? 'Searching…' : 'Results appear here: choose an image to search, then press Search.'}
      </p>
    );
  const shown = response.results.slice(0, count);
  return (
    <div class={`results${loading ? ' stale' : ''}`} aria-busy={loading} data-search={serial}>
      <p class="muted" aria-live="polite">
        {shown.length} of {response.results.length} results in {response.collection},{' '}
        {Math.round(response.timeMs)} ms
      </p>
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
          </li>
        ))}
      </ol>
    </div>
  );
}
