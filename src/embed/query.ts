import { ArgumentError, describe, RisError } from '../errors.ts';
import { type Embedder, noTextTower } from './embedder.ts';
import type { CropBox, ImageInput } from './image.ts';
import { normalizeRows } from './pooling.ts';

/**
 * One part of a query: a sentence (for a model with a text tower), an image (optionally a crop of it), or
 * a vector already embedded (a stored image's). `weight` scales its pull: default 1; a negative weight
 * pushes away from it ("− people").
 */
export type QueryTerm =
  | { text: string; weight?: number }
  | { image: ImageInput; crop?: CropBox; weight?: number }
  | { vector: Float32Array; weight?: number };

/** The query's vector, and which of its texts were longer than the model reads and were cut. */
export interface EmbeddedQuery {
  vector: Float32Array;
  /** Indices (into the terms) of the texts cut to the model's context (77 tokens for CLIP). */
  truncatedTexts: number[];
}

/**
 * Embeds a query of several terms into one vector, in the manner of rclip: each term's unit vector times
 * its weight, summed, and scaled to unit length. So "2:golden retriever" + a photo of a pool − "people"
 * pulls twice as hard toward the dog as toward the pool, and away from people. The texts run on the text
 * tower while the images are decoded and run on the image tower (one batch), both at once.
 *
 * Throws INVALID_ARGUMENT for no terms, a weight that is zero or not finite, a text term on a model
 * without a text tower, a vector of the wrong length, or terms that cancel out; an image that cannot be
 * used throws its ImageError.
 */
export async function embedQuery(embedder: Embedder, terms: readonly QueryTerm[]): Promise<EmbeddedQuery> {
  if (!Array.isArray(terms) || terms.length === 0) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected a query of one or more terms ({ text }, { image } or { vector }) but received ${describe(terms)}`,
    );
  }
  const d = embedder.dimension;
  const weights = terms.map((term, i) => checkTerm(term, i, d));
  const texts: { index: number; text: string }[] = [];
  const images: { index: number; input: ImageInput; crop?: CropBox }[] = [];
  for (const [index, term] of terms.entries()) {
    if ('text' in term) texts.push({ index, text: term.text });
    else if ('image' in term) images.push({ index, input: term.image, crop: term.crop });
  }
  if (texts.length > 0 && !embedder.hasText) throw noTextTower(embedder.config.name);
  const [textResult, imageResults] = await Promise.all([
    texts.length > 0 ? embedder.embedTexts(texts.map((t) => t.text)) : undefined,
    images.length > 0 ? embedder.embedBatch(images.map(({ input, crop }) => ({ input, crop }))) : [],
  ]);
  const rows = new Map<number, Float32Array>();
  texts.forEach(({ index }, r) => {
    rows.set(index, textResult!.vectors.subarray(r * d, (r + 1) * d));
  });
  images.forEach(({ index }, r) => {
    const result = imageResults[r]!;
    if (result instanceof RisError) throw result;
    rows.set(index, result);
  });
  const vector = new Float32Array(d);
  for (const [index, term] of terms.entries()) {
    const row = 'vector' in term ? unit(term.vector) : unit(rows.get(index)!);
    const w = weights[index]!;
    for (let j = 0; j < d; j++) vector[j] = vector[j]! + w * row[j]!;
  }
  let norm = 0;
  for (let j = 0; j < d; j++) norm += vector[j]! * vector[j]!;
  if (!(norm > 1e-12)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      'The query terms cancel each other out (what is added is also subtracted); change a weight or a term',
    );
  }
  normalizeRows(vector, d);
  const truncatedTexts = texts.filter((_, r) => textResult!.truncated[r]).map((t) => t.index);
  return { vector, truncatedTexts };
}

/** The term's weight, once its shape is checked. */
function checkTerm(term: QueryTerm, i: number, dimension: number): number {
  if (typeof term !== 'object' || term === null) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected query term ${i} to be an object but received ${describe(term)}`,
    );
  }
  const kinds = ['text', 'image', 'vector'].filter((k) => k in term);
  if (kinds.length !== 1) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected query term ${i} to have exactly one of text, image or vector but it has ${kinds.length === 0 ? 'none' : kinds.join(' and ')}`,
    );
  }
  if ('text' in term && (typeof term.text !== 'string' || term.text.trim() === '')) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected query term ${i}'s text to be a non-empty string but received ${describe(term.text)}`,
    );
  }
  if ('vector' in term && (!(term.vector instanceof Float32Array) || term.vector.length !== dimension)) {
    throw new ArgumentError(
      'DIMENSION_MISMATCH',
      `Expected query term ${i}'s vector to be a Float32Array of ${dimension} values (the model's) but received ${describe(term.vector)}`,
    );
  }
  const weight = term.weight ?? 1;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight === 0) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected query term ${i}'s weight to be a non-zero finite number but received ${describe(weight)}`,
    );
  }
  return weight;
}

function unit(v: Float32Array): Float32Array {
  const out = Float32Array.from(v);
  normalizeRows(out, out.length);
  return out;
}

/**
 * rclip's weighted term: "2:golden retriever" is { weight: 2, value: "golden retriever" }, "0.5:./cat.jpg"
 * is { weight: 0.5, value: "./cat.jpg" }; without a number and a colon in front the weight is 1 (so
 * "10:30 train" reads as weight 10: write "1:10:30 train" for that text).
 */
export function parseWeightedTerm(argument: string): { weight: number; value: string } {
  const match = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+)):(.+)$/s.exec(argument);
  if (!match) return { weight: 1, value: argument };
  return { weight: Number(match[1]), value: match[2]! };
}
