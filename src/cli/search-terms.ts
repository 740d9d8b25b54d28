import { existsSync } from 'node:fs';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { parseWeightedTerm, type QueryTerm } from '../embed/query.ts';
import { ArgumentError } from '../errors.ts';
import { fetchImage } from '../server/fetch-image.ts';

/**
 * The terms of `ris search`: the image argument (a file or an http(s) URL), each `--text` and each `--not`,
 * with rclip's weights ("2:golden retriever", "0.5:./cat.jpg"); `--not` subtracts.
 */
export async function searchTerms(
  image: string | undefined,
  options: { text?: string[]; not?: string[]; crop?: CropBox },
): Promise<QueryTerm[]> {
  const texts = options.text ?? [];
  const nots = options.not ?? [];
  if (image === undefined && texts.length === 0 && nots.length === 0) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      'Give an image (a file or an http(s) URL), --text "words", or both; see ris search --help',
    );
  }
  if (image === undefined && texts.length === 0) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      '--not only takes away from a query: give an image or --text "words" too',
    );
  }
  if (image === undefined && options.crop) {
    throw new ArgumentError('INVALID_ARGUMENT', '--crop needs an image to crop');
  }
  const terms: QueryTerm[] = [];
  if (image !== undefined) {
    // A file whose name looks weighted ("2:cat.jpg") is that file.
    const weighted =
      existsSync(image) || isUrl(image) ? { weight: 1, value: image } : parseWeightedTerm(image);
    terms.push({ image: await loadImage(weighted.value), crop: options.crop, weight: weighted.weight });
  }
  for (const text of texts) {
    const { weight, value } = parseWeightedTerm(text);
    terms.push({ text: value, weight });
  }
  for (const text of nots) {
    const { weight, value } = parseWeightedTerm(text);
    terms.push({ text: value, weight: -weight });
  }
  return terms;
}

const isUrl = (value: string) => /^https?:\/\//i.test(value);

/** A query image given on the command line: a file, or an http(s) URL (any address: the user runs this machine). */
export async function loadImage(image: string): Promise<ImageInput> {
  if (isUrl(image)) return fetchImage(image, { maxBytes: 100_000_000, allowPrivate: true });
  return image;
}
