import type { ImageRef } from './api.ts';

export const labelText = (image: Pick<ImageRef, 'labels'>) => image.labels.join(', ') || 'unlabelled';

/** Cosine similarity shown with two decimals: 1.00 is the same picture. */
export const similarityText = (similarity: number) => similarity.toFixed(2);
