// Typed client of the ris HTTP API (src/server/app.ts). Every failure becomes an ApiError with the
// server's stable code, so the page can say what went wrong and where.

// The Explore answers' types are the server's own (type-only: nothing of the server reaches the bundle).
import type {
  ExploreOverview,
  ExploreResult,
  HnswBuilding,
  HnswLevelTraceView,
  HnswLevelView,
  HnswStatus,
  HnswTrace,
  IvfBuilding,
  IvfStatus,
  IvfTrace,
  LabelTable,
  PartitionPage,
  ProjectionTrace,
} from '../../src/explore/types.ts';
import { withToken } from './token.ts';

/** A range of similarity (1 − cosine distance) and the step a slider moves by over it (the model's scale). */
export interface SimilarityScale {
  min: number;
  max: number;
  step: number;
}

export interface CollectionInfo {
  name: string;
  state: 'ready';
  model: string;
  size: number;
  modelId: string;
  /** Its model has a text tower (CLIP): it can be searched by words. */
  searchByText: boolean;
  /** It follows a folder on the server (a rescan brings it in line). */
  followsFolder?: boolean;
  /** Where the similarities of its text queries live (lower than of image queries), when searchByText. */
  textSimilarity?: { min: number; max: number; step: number };
  /** Each label with its number of images, most frequent first. */
  labels: { label: string; count: number }[];
  /** Where the model's similarities live, for the relevance cutoff. */
  similarity: SimilarityScale;
  /** A ris index or retrain started and not finished: interrupted (with the command that resumes it), or running. */
  work?: { kind: 'index' | 'retrain'; state: 'interrupted' | 'running'; message: string; found?: number };
  index?: { kind: string; indexed: number; generation: number; outdated?: string };
}

/** A dataset the server downloads and indexes in the background; it joins once ready. */
export interface PreparingCollection {
  name: string;
  state: 'preparing';
  phase: 'waiting' | 'opening' | 'downloading' | 'extracting' | 'embedding' | 'indexing';
  percent: number;
}

/** A collection the server cannot use (damaged files, a failed preparation), with the reason. */
export interface UnusableCollection {
  name: string;
  state: 'broken' | 'failed';
  reason: string;
}

export type CollectionEntry = CollectionInfo | PreparingCollection | UnusableCollection;

export interface ImageRef {
  id: number;
  labels: string[];
  width: number;
  height: number;
  imageUrl: string;
  thumbnailUrl: string;
}

export interface ImagePage {
  seed: number;
  page: number;
  total: number;
  hasMore: boolean;
  images: ImageRef[];
}

export interface SearchHit extends ImageRef {
  rank: number;
  distance: number;
  similarity: number;
}

export interface SearchResponse {
  collection: string;
  timeMs: number;
  results: SearchHit[];
  /** Texts of the query longer than the model reads (77 tokens), whose end was left out. */
  truncatedTexts?: string[];
}

/** Words of a query: pulled toward with a positive weight, pushed away from with a negative one. */
export interface SearchTerm {
  text: string;
  weight: number;
}

/** A crop in the pixels of the image as displayed (EXIF orientation applied), as the server expects. */
export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** What a search sends: an image upload, a public URL, or an image already in the collection. */
export type SearchInput = { file: Blob } | { url: string } | { id: number };

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 0,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export async function request<T>(path: string, init?: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, withToken(init));
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError('NETWORK', 'The ris server cannot be reached; is `ris serve` still running?');
  }
  const body = (await response.json().catch(() => undefined)) as
    | { error?: { code: string; message: string } }
    | undefined;
  if (!response.ok) {
    const code = body?.error?.code ?? 'HTTP_ERROR';
    const message = body?.error?.message ?? `The server answered ${response.status} ${response.statusText}`;
    throw new ApiError(code, message, response.status);
  }
  return body as T;
}

export const collectionPath = (name: string) => `api/collections/${encodeURIComponent(name)}`;

export const listCollections = () => request<CollectionEntry[]>('api/collections');

/** A seeded random page of a collection: the same seed and page always give the same images. */
export function randomImages(
  collection: string,
  kind: 'examples' | 'gallery',
  options: { seed: number; page: number; count: number },
  signal?: AbortSignal,
): Promise<ImagePage> {
  const query = new URLSearchParams({
    seed: String(options.seed),
    page: String(options.page),
    count: String(options.count),
  });
  return request(`${collectionPath(collection)}/${kind}?${query}`, { signal });
}

/**
 * Searches with an image, words, or both: an upload goes as a multipart form with `text` and `weight`
 * fields beside it; otherwise JSON, `{ query: [...] }` as soon as there are words.
 */
export function search(
  collection: string,
  input: SearchInput | null,
  options: {
    k: number;
    crop?: CropBox | null;
    minSimilarity?: number;
    terms?: SearchTerm[];
    signal?: AbortSignal;
  },
): Promise<SearchResponse> {
  const path = `${collectionPath(collection)}/search`;
  const crop = options.crop ?? undefined;
  const { minSimilarity } = options;
  const terms = options.terms ?? [];
  if (input && 'file' in input) {
    const form = new FormData();
    form.append('image', input.file, 'query');
    form.append('k', String(options.k));
    if (crop) form.append('crop', JSON.stringify(crop));
    if (minSimilarity !== undefined) form.append('minSimilarity', String(minSimilarity));
    for (const term of terms) {
      form.append('text', term.text);
      form.append('weight', String(term.weight));
    }
    return request(path, { method: 'POST', body: form, signal: options.signal });
  }
  const image = input && ('url' in input ? input.url : input.id);
  const body =
    terms.length === 0
      ? { ...input, k: options.k, crop, minSimilarity }
      : { k: options.k, minSimilarity, query: [...(image === null ? [] : [{ image, crop }]), ...terms] };
  return request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: options.signal,
  });
}

/** Fetches an image of the page's own server as a Blob (to search another collection with it). */
export async function fetchBlob(url: string, signal?: AbortSignal): Promise<Blob> {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new ApiError('NOT_FOUND', `Could not fetch ${url} (${response.status})`);
  return response.blob();
}

// The Explore API (src/server/explore.ts; its types are src/explore/types.ts): how the index finds a
// query's neighbours. Many points come as struct-of-arrays, one array per field.

export type {
  ExploreOverview,
  ExploreResult,
  HnswBuilding,
  HnswLevelTraceView,
  HnswLevelView,
  HnswStatus,
  HnswTrace,
  IvfBuilding,
  IvfStatus,
  IvfTrace,
  LabelTable,
  PartitionPage,
  ProjectionTrace,
};

export interface ExploreOptions {
  k: number;
  nprobes?: number;
  efSearch?: number;
  crop?: CropBox | null;
  signal?: AbortSignal;
}

export const exploreOverview = (collection: string, signal?: AbortSignal) =>
  request<ExploreOverview>(`${collectionPath(collection)}/explore`, { signal });

export const hnswStatus = (collection: string, signal?: AbortSignal) =>
  request<HnswStatus>(`${collectionPath(collection)}/explore/hnsw`, { signal });

export const ivfStatus = (collection: string, signal?: AbortSignal) =>
  request<IvfStatus>(`${collectionPath(collection)}/explore/ivf`, { signal });

/** A page of a partition's images, in a seeded order (the same on every page). */
export function explorePartition(
  collection: string,
  partition: number,
  options: { page: number; count: number; signal?: AbortSignal },
): Promise<PartitionPage | IvfBuilding> {
  const query = new URLSearchParams({ page: String(options.page), count: String(options.count) });
  return request(`${collectionPath(collection)}/explore/partitions/${partition}?${query}`, {
    signal: options.signal,
  });
}

/** Sends a query as search does (upload, URL or id, with its crop) to one of the Explore traces. */
function exploreTrace<T>(
  collection: string,
  trace: string,
  input: SearchInput,
  options: ExploreOptions,
): Promise<T> {
  const path = `${collectionPath(collection)}/explore/${trace}`;
  const fields: Record<string, number> = { k: options.k };
  if (options.nprobes !== undefined) fields.nprobes = options.nprobes;
  if (options.efSearch !== undefined) fields.efSearch = options.efSearch;
  const crop = options.crop ?? undefined;
  if ('file' in input) {
    const form = new FormData();
    form.append('image', input.file, 'query');
    for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
    if (crop) form.append('crop', JSON.stringify(crop));
    return request(path, { method: 'POST', body: form, signal: options.signal });
  }
  return request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...input, ...fields, crop }),
    signal: options.signal,
  });
}

export const exploreIvf = (collection: string, input: SearchInput, options: ExploreOptions) =>
  exploreTrace<IvfTrace | IvfBuilding>(collection, 'ivf', input, options);

export const exploreProjection = (collection: string, input: SearchInput, options: ExploreOptions) =>
  exploreTrace<ProjectionTrace | IvfBuilding>(collection, 'projection', input, options);

export const exploreHnsw = (collection: string, input: SearchInput, options: ExploreOptions) =>
  exploreTrace<HnswTrace | HnswBuilding>(collection, 'hnsw', input, options);
