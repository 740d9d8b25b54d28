// The relevance cutoff of each collection, kept apart for image queries and for queries with words
// (their similarities live on different scales), off by default, and clamped to the scale the server
// gives for the collection's model.
import { useState } from 'preact/hooks';
import type { CollectionEntry, CollectionInfo, SearchTerm, SimilarityScale } from './api.ts';
import { clampCutoff } from './components/SimilarityCutoff.tsx';

/** A model's scale, for a server that does not say it. */
const DEFAULT_SCALE: SimilarityScale = { min: 0, max: 1, step: 0.01 };
/** Text–image similarities of a model with a text tower that gives no scale of its own. */
const DEFAULT_TEXT_SCALE: SimilarityScale = { min: 0, max: 0.5, step: 0.005 };

/** A search by words (alone or with an image) scores on the text scale, an image alone on the image one. */
export type QueryKind = 'image' | 'words';
export const kindOf = (terms: SearchTerm[]): QueryKind => (terms.length > 0 ? 'words' : 'image');

export function useCutoffs(collections: CollectionEntry[] | null) {
  const [cutoffs, setCutoffs] = useState<Record<string, number | null>>({});
  const key = (name: string, kind: QueryKind) => (kind === 'words' ? `words:${name}` : name);
  /** Where a collection's similarities live for a kind of query: the slider's range and steps. */
  const scaleOf = (name: string, kind: QueryKind): SimilarityScale => {
    const info = collections?.find((c): c is CollectionInfo => c.name === name && c.state === 'ready');
    return kind === 'words'
      ? (info?.textSimilarity ?? DEFAULT_TEXT_SCALE)
      : (info?.similarity ?? DEFAULT_SCALE);
  };
  return {
    scaleOf,
    /** The cutoff a search of `name` by `kind` uses: null when off. */
    cutoffFor: (name: string, kind: QueryKind) =>
      clampCutoff(cutoffs[key(name, kind)] ?? null, scaleOf(name, kind)),
    setCutoffFor: (name: string, kind: QueryKind, value: number | null) =>
      setCutoffs((now) => ({ ...now, [key(name, kind)]: value })),
  };
}
