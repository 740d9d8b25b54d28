import { readdir } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';

export interface ImageToAdd {
  path: string;
  /** Labels to store. Default: the image's first folder below the collection's root (see `labelsFor`). */
  labels?: string[];
}

/** The file types ris indexes (what sharp decodes as photos). */
export const IMAGE_EXTENSIONS = /\.(jpe?g|png|webp|gif|tiff?|avif)$/i;

/**
 * Labels by folder, the one rule for `index` and `add`: an image's label is the first folder below `base`
 * (`cats/kitten.jpg` → cats); an image directly in `base`, or outside it, has none.
 */
export function labelsFor(file: string, base: string): string[] {
  const rel = relative(base, resolve(file));
  if (rel.startsWith('..') || isAbsolute(rel)) return [];
  const parts = rel.split(sep);
  return parts.length > 1 ? [parts[0]!] : [];
}

/** Image files under a folder, recursively, in sorted order; labels by folder below `labelBase` (default the folder). */
export async function walkImages(folder: string, labelBase = folder): Promise<ImageToAdd[]> {
  const root = resolve(folder);
  const base = resolve(labelBase);
  const out: ImageToAdd[] = [];
  const visit = async (dir: string) => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await visit(path);
      else if (entry.isFile() && IMAGE_EXTENSIONS.test(entry.name))
        out.push({ path, labels: labelsFor(path, base) });
    }
  };
  await visit(root);
  return out;
}
