import type { Context } from 'hono';
import { z } from 'zod';
import type { ImageCollection } from '../collection/store.ts';
import type { ImageInput } from '../embed/image.ts';
import { ArgumentError, RequestError } from '../errors.ts';
import { fetchImage, type HostResolver, tooLarge } from './fetch-image.ts';

const cropSchema = z.object({
  left: z.coerce.number().int().min(0),
  top: z.coerce.number().int().min(0),
  width: z.coerce.number().int().min(1),
  height: z.coerce.number().int().min(1),
});
const searchOptions = z.object({
  k: z.coerce.number().int().min(1).max(50).default(5),
  nprobes: z.coerce.number().int().min(1).max(4096).optional(),
  efSearch: z.coerce.number().int().min(1).max(4096).optional(),
  minSimilarity: z.coerce.number().min(-1).max(1).optional(),
  crop: cropSchema.optional(),
});
/** A multipart `crop` field: JSON {"left","top","width","height"}, or x,y,width,height as the CLI takes it. */
function parseCropField(value: unknown): unknown {
  if (typeof value !== 'string') return undefined;
  const parts = value.split(',');
  if (parts.length === 4 && !value.trim().startsWith('{')) {
    const [left, top, width, height] = parts;
    return { left, top, width, height };
  }
  try {
    return JSON.parse(value);
  } catch {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Invalid crop: expected {"left","top","width","height"} in JSON or x,y,width,height in pixels but received "${value.slice(0, 60)}"`,
    );
  }
}

/**
 * A multipart body, or a 400 that says what is wrong with it: no boundary in the Content-Type, or a body
 * that does not match the boundary it names (set by hand instead of by the client's FormData, say).
 */
export async function readMultipart(
  c: Context,
  type: string,
  options: { all?: boolean } = {},
): Promise<Record<string, string | File | (string | File)[]>> {
  const boundary = /;\s*boundary=(?:"([^"]*)"|([^\s;]*))/i.exec(type);
  if (!(boundary?.[1] || boundary?.[2]))
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      'The multipart body has no boundary in its Content-Type (multipart/form-data; boundary=…); let the client write that header for its FormData',
    );
  try {
    return await c.req.parseBody(options);
  } catch (error) {
    // A body cut off by a client that went away is not the client's mistake to report: passed on as is.
    if (!(error instanceof TypeError) || c.req.raw.signal.aborted) throw error;
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `The multipart body does not match its boundary "${(boundary[1] ?? boundary[2])!.slice(0, 70)}" (${error.message}); send the body the client's FormData makes with its own Content-Type`,
    );
  }
}

/**
 * The query of a search-like request: a multipart upload (field "image", with k, nprobes, efSearch, crop), or JSON
 * with a public `url` (fetched safely) or the `id` of an image of the collection. Options are checked;
 * `extra` adds the fields a route takes besides k, nprobes and crop.
 */
export async function readSearchRequest<Extra extends z.ZodRawShape = Record<never, never>>(
  c: Context,
  col: ImageCollection,
  limits: { maxBytes: number; allowLoopbackUrls?: boolean; resolveHost?: HostResolver },
  extra?: Extra,
): Promise<{ input: ImageInput; options: z.infer<typeof searchOptions> & z.infer<z.ZodObject<Extra>> }> {
  const schema = extra ? searchOptions.extend(extra) : searchOptions;
  const type = c.req.header('content-type') ?? '';
  if (type.startsWith('multipart/form-data')) {
    const form = await readMultipart(c, type);
    const file = form.image;
    if (!(file instanceof File))
      throw new ArgumentError('INVALID_ARGUMENT', 'Send the image in a multipart field named "image"');
    if (file.size > limits.maxBytes) throw tooLarge(limits.maxBytes);
    const fields = Object.fromEntries(
      Object.entries(form).filter(([key]) => key !== 'image' && key !== 'crop'),
    );
    const options = schema.parse({ ...fields, crop: parseCropField(form.crop) });
    return { input: Buffer.from(await file.arrayBuffer()), options: options as never };
  }
  const text = await c.req.text();
  let json: unknown = {};
  if (text.trim() !== '') {
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `The request body is not valid JSON (${(error as Error).message}); send {"url": "…"} or {"id": …}, or upload the image as multipart field "image"`,
      );
    }
  }
  const body = schema
    .extend({ url: z.string().max(2048).optional(), id: z.coerce.number().int().min(0).optional() })
    .parse(json);
  let input: ImageInput;
  if (body.url !== undefined)
    input = await fetchImage(body.url, {
      maxBytes: limits.maxBytes,
      allowLoopback: limits.allowLoopbackUrls,
      resolve: limits.resolveHost,
    });
  else if (body.id !== undefined) {
    const record = await col.get(body.id);
    if (!record) throw new RequestError('NOT_FOUND', `No image ${body.id} in ${col.name}`);
    input = await col.readImage(record);
  } else
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      'Send an image upload (multipart field "image"), or JSON with "url" or "id"',
    );
  return { input, options: body as never };
}
