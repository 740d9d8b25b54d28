import { basename } from 'node:path';

/**
 * Text for an HTTP client with this machine's absolute paths cut to their last part (a file's or folder's
 * name): answers name images, models and collections, never where they are on the server's disk. Paths
 * in quotes are taken whole (spaces and all); API paths (/api/…) and URLs are kept as they are.
 */
export function withoutServerPaths(text: string): string {
  return text
    .replace(
      /(["'])(\/(?!api\/)[^"'\n]*)\1/g,
      (_, quote: string, path: string) => `${quote}${nameOf(path)}${quote}`,
    )
    .replace(
      /(^|[\s(=[<])(\/(?!api\/)[^\s"'()<>[\],;]*[^\s"'()<>[\],;.:])/g,
      (_, lead: string, path: string) => `${lead}${nameOf(path)}`,
    );
}

const nameOf = (path: string) => basename(path) || path;
