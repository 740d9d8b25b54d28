import type { ImageRef } from './api.ts';

export const labelText = (image: Pick<ImageRef, 'labels'>) => image.labels.join(', ') || 'unlabelled';

/** Cosine similarity shown with two decimals: 1.00 is the same picture. */
export const similarityText = (similarity: number) => similarity.toFixed(2);

/** "1 file", "2 files", "3 addresses". */
export const plural = (n: number, word: string) =>
  `${n.toLocaleString('en')} ${word}${n === 1 ? '' : word.endsWith('s') ? 'es' : 's'}`;
