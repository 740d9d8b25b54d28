import type { Context } from 'hono';
import { z } from 'zod';
import type { ImageCollection } from '../collection/store.ts';
import type { ImageInput } from '../embed/image.ts';
import type { QueryTerm } from '../embed/query.ts';
import { ArgumentError, RequestError } from '../errors.ts';
import { fetchImage, type HostResolver } from './fetch-image.ts';
import { readMultipart, readSearchRequest } from './search-request.ts';

/** At most this many terms in one query, of which this many images (each may be a fetch). */
export const MAX_QUERY_TERMS = 8;
export const MAX_QUERY_IMAGES = 4;
/** Longest text of a term, in characters (CLIP reads about 60 words). */
export const MAX_TEXT_LENGTH = 1000;

const weight = z
  .number()
  .finite()
  .refine((w) => w !== 0 && Math.abs(w) <= 100, 'a weight is a non-zero number from -100 to 100');
const text = z.string().trim().min(1).max(MAX_TEXT_LENGTH);
const crop = z.object({
  left: z.number().int().min(0),
  top: z.number().int().min(0),
  width: z.number().int().min(1),
  height: z.number().int().min(1),
});
const termSchema = z.union([
  z.object({ text, weight: weight.optional() }).strict(),
  z
    .object({
      image: z.union([z.string().max(2048), z.number().int().min(0)]),
      crop: crop.optional(),
      weight: weight.optional(),
    })
    .strict(),
]);
const options = {
  k: z.coerce.number().int().min(1).max(50).default(5),
  nprobes: z.coerce.number().int().min(1).max(4096).optional(),
  efSearch: z.coerce.number().int().min(1).max(4096).optional(),
  minSimilarity: z.coerce.number().min(-1).max(1).optional(),
};
const textBody = z.object({ ...options, text, weight: weight.optional() }).strict();
const queryBody = z.object({ ...options, query: z.array(termSchema).min(1).max(MAX_QUERY_TERMS) }).strict();

export interface QueryRequest {
  terms: QueryTerm[];
  /** The text of each term (undefined for images), as the answer reports them. */
  texts: (string | undefined)[];
  options: { k: number; nprobes?: number; efSearch?: number; minSimilarity?: number };
}

/**
 * A search request in any of its forms: JSON `{ text }` (words), `{ query: [{ text, weight }, { image:
 * url | id, crop?, weight }, …] }` (negative weights subtract), or what `readSearchRequest` reads (an
 * upload, `{ url }`, `{ id }`), whose multipart form may add words in `text` fields, each weighed by the
 * `weight` field in the same position (default 1).
 */
export async function readQueryRequest(
  c: Context,
  col: ImageCollection,
  limits: { maxBytes: number; allowLoopbackUrls?: boolean; resolveHost?: HostResolver },
): Promise<QueryRequest> {
  const type = c.req.header('content-type') ?? '';
  if (type.startsWith('multipart/form-data')) {
    // Every field, repeated ones as arrays (readSearchRequest then reads the same parsed form).
    const form = await readMultipart(c, type, { all: true });
    const texts = [form.text ?? []].flat();
    const weights = [form.weight ?? []].flat();
    if (texts.length + 1 > MAX_QUERY_TERMS || weights.length > texts.length) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Send at most ${MAX_QUERY_TERMS - 1} "text" fields beside the image, and no more "weight" fields than "text" fields`,
      );
    }
    const { input, options: parsed } = await readSearchRequest(c, col, limits);
    const terms: QueryTerm[] = [{ image: input, crop: parsed.crop }];
    texts.forEach((value, i) => {
      const w = weights[i];
      terms.push({
        text: text.parse(typeof value === 'string' ? value : undefined),
        weight:
          w === undefined
            ? 1
            : weight.parse(typeof w === 'string' && w.trim() !== '' ? Number(w) : Number.NaN),
      });
    });
    return {
      terms,
      texts: [undefined, ...terms.slice(1).map((t) => (t as { text: string }).text)],
      options: parsed,
    };
  }
  const json = await readJson(c);
  if (json && typeof json === 'object' && 'text' in json) {
    const body = textBody.parse(json);
    return { terms: [{ text: body.text, weight: body.weight }], texts: [body.text], options: body };
  }
  if (json && typeof json === 'object' && 'query' in json) {
    const body = queryBody.parse(json);
    const images = body.query.filter((t) => 'image' in t).length;
    if (images > MAX_QUERY_IMAGES) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `A query takes at most ${MAX_QUERY_IMAGES} images; it has ${images}`,
      );
    }
    const terms = await Promise.all(
      body.query.map(async (term): Promise<QueryTerm> => {
        if ('text' in term) return { text: term.text, weight: term.weight };
        return { image: await queryImage(term.image, col, limits), crop: term.crop, weight: term.weight };
      }),
    );
    return { terms, texts: body.query.map((t) => ('text' in t ? t.text : undefined)), options: body };
  }
  const { input, options: parsed } = await readSearchRequest(c, col, limits);
  return { terms: [{ image: input, crop: parsed.crop }], texts: [undefined], options: parsed };
}

/** A query image: a public URL (fetched safely), or the id of an image of the collection. */
async function queryImage(
  image: string | number,
  col: ImageCollection,
  limits: { maxBytes: number; allowLoopbackUrls?: boolean; resolveHost?: HostResolver },
): Promise<ImageInput> {
  if (typeof image === 'string') {
    return fetchImage(image, {
      maxBytes: limits.maxBytes,
      allowLoopback: limits.allowLoopbackUrls,
      resolve: limits.resolveHost,
    });
  }
  const record = await col.get(image);
  if (!record) throw new RequestError('NOT_FOUND', `No image ${image} in ${col.name}`);
  return col.readImage(record);
}

async function readJson(c: Context): Promise<unknown> {
  const body = await c.req.text();
  if (body.trim() === '') return {};
  try {
    return JSON.parse(body);
  } catch {
    return undefined; // readSearchRequest says what is wrong with it
  }
}
