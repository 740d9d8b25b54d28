// GET /api/collections/:name/duplicates (src/server/duplicates.ts): groups of copies, a page at a time.
import type { DuplicateGroup, DuplicateImage, DuplicatesReport } from '../../src/duplicates/find.ts';
import { collectionPath, type ImageRef, request } from './api.ts';

export type { DuplicateGroup, DuplicateImage };

export interface DuplicatesPage {
  /** The similarity the groups were found from: the one asked for, or the collection's default. */
  threshold: number;
  /** Where the threshold came from: asked for, the model's measured one, or calibrated on the collection. */
  thresholdSource: DuplicatesReport['thresholdSource'];
  /** Groups in all, at this threshold. */
  total: number;
  page: number;
  count: number;
  hasMore: boolean;
  groups: DuplicateGroup[];
}

/** The groups the server answers at most per request. */
export const MAX_GROUPS_PER_PAGE = 500;

export function duplicates(
  collection: string,
  options: { threshold: number | null; page: number; count: number },
  signal?: AbortSignal,
): Promise<DuplicatesPage> {
  const query = new URLSearchParams({ page: String(options.page), count: String(options.count) });
  if (options.threshold !== null) query.set('threshold', String(options.threshold));
  return request(`${collectionPath(collection)}/duplicates?${query}`, { signal });
}

/** Every group at a threshold, MAX_GROUPS_PER_PAGE a request (the server keeps the answer meanwhile). */
export async function allDuplicates(
  collection: string,
  threshold: number | null,
  signal?: AbortSignal,
): Promise<DuplicateGroup[]> {
  const groups: DuplicateGroup[] = [];
  for (let page = 0; ; page++) {
    const answer = await duplicates(collection, { threshold, page, count: MAX_GROUPS_PER_PAGE }, signal);
    groups.push(...answer.groups);
    if (!answer.hasMore) return groups;
  }
}

/** The file name of an image's path (the path is relative to the collection's root). */
export const fileName = (image: Pick<DuplicateImage, 'path'>) => image.path.split('/').pop() || image.path;

/**
 * A group member as the rest of the page knows images. Unversioned links: the server revalidates them
 * by ETag (the duplicates answer carries no content hash).
 */
export function imageRefOf(collection: string, image: DuplicateImage): ImageRef {
  const base = collectionPath(collection);
  return {
    id: image.id,
    labels: [fileName(image)],
    width: image.width,
    height: image.height,
    imageUrl: `${base}/images/${image.id}`,
    thumbnailUrl: `${base}/thumbnails/${image.id}`,
  };
}

/** "340 KB", "2.4 MB". */
export function bytesText(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${Math.round(bytes / 1000)} KB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}
