// Typed client of the ris HTTP API (src/server/app.ts). Every failure becomes an ApiError with the
// server's stable code, so the page can say what went wrong and where.

export interface CollectionInfo {
  name: string;
  model: string;
  size: number;
  modelId: string;
  /** Each label with its number of images, most frequent first. */
  labels: { label: string; count: number }[];
}

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

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, init);
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

const collectionPath = (name: string) => `api/collections/${encodeURIComponent(name)}`;

export const listCollections = () => request<CollectionInfo[]>('api/collections');

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

export function search(
  collection: string,
  input: SearchInput,
  options: { k: number; crop?: CropBox | null; signal?: AbortSignal },
): Promise<SearchResponse> {
  const path = `${collectionPath(collection)}/search`;
  const crop = options.crop ?? undefined;
  if ('file' in input) {
    const form = new FormData();
    form.append('image', input.file, 'query');
    form.append('k', String(options.k));
    if (crop) form.append('crop', JSON.stringify(crop));
    return request(path, { method: 'POST', body: form, signal: options.signal });
  }
  return request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...input, k: options.k, crop }),
    signal: options.signal,
  });
}

/** Fetches an image of the page's own server as a Blob (to search another collection with it). */
export async function fetchBlob(url: string, signal?: AbortSignal): Promise<Blob> {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new ApiError('NOT_FOUND', `Could not fetch ${url} (${response.status})`);
  return response.blob();
}
