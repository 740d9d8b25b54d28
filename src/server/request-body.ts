import type { Context } from 'hono';
import { ArgumentError, RequestError } from '../errors.ts';

/** A JSON body (empty: {}); a body that is not JSON is INVALID_ARGUMENT, another content type 415. */
export async function jsonBody(c: Context): Promise<unknown> {
  const type = c.req.header('content-type') ?? '';
  const text = await c.req.text();
  if (text.trim() === '') return {};
  if (!/^application\/json\b/i.test(type))
    throw new RequestError(
      'UNSUPPORTED_CONTENT_TYPE',
      `Send JSON with Content-Type: application/json, not ${JSON.stringify(type.slice(0, 60) || 'none')}`,
    );
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `The request body is not valid JSON (${(error as Error).message})`,
    );
  }
}

/** An image id as a path names it: digits only (`0x1f`, `1e1` or ` 12` name no image). */
export function imageIdOf(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,15}$/.test(text)) return undefined;
  return Number(text);
}
