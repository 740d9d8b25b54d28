// What a drop, a pick or a pasted list becomes before anything is sent: the files worth sending with
// their labels, those not sent and why, and requests within the server's limits. Pure: no DOM, so it is
// tested without a browser (test/web-logic.test.ts).
import type { UploadLimits } from './library-api.ts';

/** The file types ris indexes (as IMAGE_EXTENSIONS in src/collection/walk.ts, which the page cannot import). */
export const IMAGE_NAME = /\.(jpe?g|png|webp|gif|tiff?|avif)$/i;

/** A file as picked or dropped: `path` is its name, under the folder it came in ("trip/beach/a.jpg"). */
export interface Picked<F extends { size: number } = File> {
  file: F;
  path: string;
}

/** A file to send, with the label it gets. */
export interface ToSend<F extends { size: number } = File> extends Picked<F> {
  label?: string;
}

export interface NotSent {
  path: string;
  reason: string;
}

/** At most 100 printable characters, as the server takes labels. */
function asLabel(text: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  let label = text.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  while (label.length > 100) label = Array.from(label).slice(0, -1).join('');
  return label || undefined;
}

/**
 * The label of a file that came in a folder, as `ris index` labels by folder: the first folder below
 * the one dropped ("trip/beach/a.jpg" → beach), or the dropped folder itself for a file directly in it
 * ("beach/a.jpg" → beach). A file dropped on its own has none.
 */
export function labelByFolder(path: string): string | undefined {
  const parts = path.split('/');
  if (parts.length < 2) return undefined;
  return asLabel(parts.length > 2 ? parts[1]! : parts[0]!);
}

/**
 * The files to send, and those left out with why. A file that came in a folder is sent only when its
 * name says it is an image (a folder often holds notes, sidecars, .DS_Store); a file picked on its own is
 * always sent, and the server says why it cannot be used. `label`, when given, labels every file;
 * otherwise files get their folder's.
 */
export function prepareFiles<F extends { size: number }>(
  picked: Picked<F>[],
  label: string,
  limits: UploadLimits,
): { send: ToSend<F>[]; notSent: NotSent[] } {
  const given = asLabel(label);
  const send: ToSend<F>[] = [];
  const notSent: NotSent[] = [];
  for (const item of picked) {
    const name = item.path.split('/').pop() ?? item.path;
    if (item.path.includes('/') && !IMAGE_NAME.test(name))
      notSent.push({ path: item.path, reason: 'not an image by its name (not .jpg, .png, .webp, …)' });
    else if (item.file.size > limits.maxBytes)
      notSent.push({
        path: item.path,
        reason: `larger than the ${megabytes(limits.maxBytes)} one request may carry`,
      });
    else send.push({ ...item, label: given ?? labelByFolder(item.path) });
  }
  return { send, notSent };
}

/**
 * Requests within the server's limits: files of one label together (a request carries one label), in
 * the order given, at most `maxFiles` files and `maxBytes` bytes each.
 */
export function planBatches<T extends { file: { size: number }; label?: string }>(
  items: T[],
  limits: UploadLimits,
): T[][] {
  const byLabel = new Map<string | undefined, T[]>();
  for (const item of items) {
    const group = byLabel.get(item.label);
    if (group) group.push(item);
    else byLabel.set(item.label, [item]);
  }
  const batches: T[][] = [];
  for (const group of byLabel.values()) {
    let batch: T[] = [];
    let bytes = 0;
    for (const item of group) {
      if (
        batch.length > 0 &&
        (batch.length === limits.maxFiles || bytes + item.file.size > limits.maxBytes)
      ) {
        batches.push(batch);
        batch = [];
        bytes = 0;
      }
      batch.push(item);
      bytes += item.file.size;
    }
    if (batch.length > 0) batches.push(batch);
  }
  return batches;
}

/** The addresses in pasted text (one per line, or separated by spaces or commas), and what is not one. */
export function parseUrlList(text: string): { urls: string[]; invalid: NotSent[] } {
  const urls: string[] = [];
  const invalid: NotSent[] = [];
  for (const word of text.split(/[\s,]+/)) {
    if (!word) continue;
    let url: URL | undefined;
    try {
      url = new URL(word);
    } catch {
      // not an address
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
      invalid.push({ path: word, reason: 'not an http:// or https:// address' });
    else if (!urls.includes(word)) urls.push(word);
  }
  return { urls, invalid };
}

export function megabytes(bytes: number): string {
  if (bytes < 1e6) return `${bytes === 0 ? 0 : Math.max(1, Math.round(bytes / 1e3))} KB`;
  const mb = bytes / 1e6;
  return `${mb >= 10 ? Math.round(mb) : mb.toFixed(1).replace(/\.0$/, '')} MB`;
}
