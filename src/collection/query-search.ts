import { embedQuery, type QueryTerm } from '../embed/query.ts';
import { ArgumentError } from '../errors.ts';
import { checkSearchOptions, type ImageCollection, type SearchOptions } from './store.ts';
import type { SearchHit } from './types.ts';

/** The hits of a query, and which of its texts (indices into the terms) were cut to the model's context. */
export interface QueryResult {
  hits: SearchHit[];
  truncatedTexts: number[];
}

/**
 * Searches a collection with a query of words, images or both (see `embedQuery`: each term's unit vector
 * times its weight, summed; negative weights subtract). The CLI, the API and the page all search through
 * this. A single image of weight 1 is searched exactly as `collection.search` does (its vector as the
 * model gives it). Words need a model with a text tower (CLIP): otherwise INVALID_ARGUMENT, naming the
 * collection and its model.
 */
export async function searchQuery(
  collection: ImageCollection,
  terms: readonly QueryTerm[],
  options: SearchOptions = {},
): Promise<QueryResult> {
  checkSearchOptions(options);
  const only = terms.length === 1 ? terms[0] : undefined;
  if (only && 'image' in only && (only.weight ?? 1) === 1) {
    return { hits: await collection.search(only.image, { ...options, crop: only.crop }), truncatedTexts: [] };
  }
  const embedder = await collection.embedder();
  if (
    !embedder.hasText &&
    Array.isArray(terms) &&
    terms.some((t) => t && typeof t === 'object' && 'text' in t)
  ) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Collection "${collection.name}" was indexed with ${collection.manifest.model}, which sees images only: search it by image, or index the images again with --model clip-vit-b32 to search them by words`,
    );
  }
  const { vector, truncatedTexts } = await embedQuery(embedder, terms);
  return { hits: await collection.searchVector(vector, options), truncatedTexts };
}
