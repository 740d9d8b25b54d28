import type { Context, ErrorHandler } from 'hono';
import { z } from 'zod';
import { ArgumentError, type ErrorCode, RisError } from '../errors.ts';
import { withoutServerPaths } from './public-text.ts';

/** HTTP status of every error code: the one place where library errors meet HTTP. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  DIMENSION_MISMATCH: 400,
  NON_FINITE_VALUE: 400,
  OUT_OF_RANGE: 400,
  TOO_FEW_TRAINING_VECTORS: 400,
  DUPLICATE_ID: 409,
  NOT_TRAINED: 409,
  ALREADY_TRAINED: 409,
  INCOMPATIBLE_INDEX: 409,
  NO_FILE_STORE: 500,
  PORT_IN_USE: 500,
  WORKER_FAILED: 500,
  CORRUPT_FILE: 500,
  TRUNCATED_FILE: 500,
  UNSUPPORTED_VERSION: 500,
  NOT_AN_INDEX_FILE: 500,
  WRONG_INDEX_KIND: 500,
  UNKNOWN_INDEX_KIND: 500,
  DISK_FULL: 507,
  IMAGE_NOT_FOUND: 404,
  IMAGE_UNREADABLE: 500,
  EMPTY_IMAGE: 400,
  UNSUPPORTED_IMAGE: 415,
  CORRUPT_IMAGE: 400,
  IMAGE_TOO_LARGE: 413,
  CROP_OUT_OF_BOUNDS: 400,
  IMAGE_CHANGED: 409,
  UNKNOWN_MODEL: 503,
  MODEL_NOT_FOUND: 503,
  INVALID_MODEL: 503,
  DOWNLOAD_FAILED: 503,
  CHECKSUM_MISMATCH: 503,
  INFERENCE_FAILED: 503,
  COLLECTION_NOT_FOUND: 404,
  COLLECTION_EXISTS: 409,
  COLLECTION_BROKEN: 503,
  COLLECTION_BUSY: 503,
  COLLECTION_PREPARING: 503,
  DATABASE_UNREACHABLE: 503,
  DATABASE_AUTH_FAILED: 503,
  DATABASE_UNUSABLE: 503,
  MODEL_MISMATCH: 503,
  EMPTY_COLLECTION: 409,
  NO_IMAGES: 400,
  NO_FOLDER: 409,
  UNKNOWN_DATASET: 404,
  DATASET_FAILED: 502,
  URL_NOT_ALLOWED: 403,
  URL_FETCH_FAILED: 422,
  URL_TIMEOUT: 422,
  UPLOAD_TOO_LARGE: 413,
  NOT_FOUND: 404,
  BUSY: 503,
  RUN_FROM_CLI: 409,
  EXPERIMENT_RUNNING: 409,
  NO_PARTITIONS: 409,
  HNSW_UNAVAILABLE: 409,
  UNAUTHORIZED: 401,
  HOST_NOT_ALLOWED: 403,
  ORIGIN_NOT_ALLOWED: 403,
  UNSUPPORTED_CONTENT_TYPE: 415,
};

export function statusFor(error: unknown): number {
  return error instanceof RisError ? HTTP_STATUS[error.code as ErrorCode] : 500;
}

/** Bad input caught by zod becomes an ArgumentError naming the field, so the table above covers it. */
function asRisError(error: unknown): unknown {
  if (error instanceof z.ZodError) {
    const issue = error.issues[0]!;
    return new ArgumentError(
      'INVALID_ARGUMENT',
      `Invalid ${issue.path.join('.') || 'request'}: ${issue.message}`,
    );
  }
  return error;
}

/** A client that went away mid-request: nothing to answer, nothing broken on our side. */
function clientGone(error: unknown, c: Context): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return (
    c.req.raw.signal.aborted ||
    code === 'ECONNRESET' ||
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    (error instanceof Error && /^(aborted|request aborted)$/i.test(error.message))
  );
}

/**
 * The app's one error handler: a ris error answers its status with `{ error: { code, message } }` (and
 * the facts in its details); anything else is a bug, logged, and answered as INTERNAL without details.
 */
export function errorHandler(log: (line: string) => void): ErrorHandler {
  return (thrown, c) => {
    if (clientGone(thrown, c)) {
      log(`client closed the connection during ${c.req.method} ${c.req.path}`);
      return c.body(null, 499 as 400);
    }
    const error = asRisError(thrown);
    const status = statusFor(error);
    const body =
      error instanceof RisError ? publicError(error) : { code: 'INTERNAL', message: 'Internal error' };
    if (status === 503) c.header('Retry-After', '1');
    // A refused request's body may not have been read (401 before it, 413 part way): the connection
    // cannot carry another request, and a client told so does not try.
    if (c.req.header('content-length') !== undefined || c.req.header('transfer-encoding') !== undefined)
      c.header('Connection', 'close');
    // Cache headers set for the answer that failed (an image's, immutable) must not keep the error.
    c.header('Cache-Control', 'no-store');
    c.header('ETag', undefined);
    if (!(error instanceof RisError)) console.error(error);
    return c.json({ error: body }, status as 400);
  };
}

/** A ris error as a client sees it: code, message and details, with no path of this machine in them. */
function publicError(error: RisError): Record<string, string | number> {
  const details = Object.entries(error.details ?? {}).map(([key, value]) => [
    key,
    typeof value === 'string' ? withoutServerPaths(value) : value,
  ]);
  return { ...Object.fromEntries(details), code: error.code, message: withoutServerPaths(error.message) };
}
