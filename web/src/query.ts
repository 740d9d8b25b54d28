import { type CropBox, fetchBlob, type ImageRef, type SearchInput } from './api.ts';

/** Where a query image comes from; it decides what a search sends. */
export type QuerySource =
  | { kind: 'file'; blob: Blob; name: string }
  | { kind: 'url'; url: string }
  | { kind: 'collection'; collection: string; image: ImageRef };

/** An image in the To search or Last searched pane: its source, what the page shows, and its crop. */
export interface Query {
  source: QuerySource;
  /** What an <img> shows: an object URL, the public URL, or the server's image URL. */
  previewUrl: string;
  /** A short description for people and screen readers. */
  title: string;
  crop: CropBox | null;
}

export function queryFromFile(blob: Blob, name: string): Query {
  return {
    source: { kind: 'file', blob, name },
    previewUrl: URL.createObjectURL(blob),
    title: name,
    crop: null,
  };
}

/**
 * A query from an address. One of this server's own images (a result or example dragged into the pane)
 * becomes a collection image: the server would rightly refuse to fetch from itself.
 */
export function queryFromUrl(url: string): Query {
  const own = new URL(url, location.href);
  const match = /^\/api\/collections\/([^/]+)\/(?:images|thumbnails)\/(\d+)$/.exec(own.pathname);
  if (own.origin === location.origin && match) {
    const collection = decodeURIComponent(match[1]!);
    const id = Number(match[2]);
    const base = `/api/collections/${match[1]}`;
    return queryFromCollection(collection, {
      id,
      labels: [],
      width: 0,
      height: 0,
      imageUrl: `${base}/images/${id}`,
      thumbnailUrl: `${base}/thumbnails/${id}`,
    });
  }
  return { source: { kind: 'url', url }, previewUrl: url, title: url, crop: null };
}

export function queryFromCollection(collection: string, image: ImageRef): Query {
  return {
    source: { kind: 'collection', collection, image },
    previewUrl: image.imageUrl,
    title: `${image.labels.join(', ') || 'image'} #${image.id} from ${collection}`,
    crop: null,
  };
}

/**
 * What to send to search `collection` with this query. An image of the same collection goes by id; one
 * of another collection is fetched from this server and uploaded, since ids belong to their collection.
 */
export async function searchInputFor(query: Query, collection: string): Promise<SearchInput> {
  const source = query.source;
  switch (source.kind) {
    case 'file':
      return { file: source.blob };
    case 'url':
      return { url: source.url };
    case 'collection':
      return source.collection === collection
        ? { id: source.image.id }
        : { file: await fetchBlob(source.image.imageUrl) };
  }
}

/** Checks a typed address before it becomes a query; the server checks it again, fully, when searching. */
export function checkImageUrl(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return 'Enter a full address, starting with http:// or https://';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `Only http:// and https:// addresses can be searched, not ${url.protocol}`;
  return null;
}
