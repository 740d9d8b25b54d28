/**
 * The errors ris throws on purpose. Each has a stable `code` that callers (the CLI, the HTTP server)
 * switch on, and a message that says what to do about it. Anything else that escapes is a bug.
 *
 * Every code belongs to exactly one class (the constructors only accept their own codes), so a caller can
 * catch by class or switch on the code and get the same answer.
 */
export const ERROR_CODES = {
  /** A caller passed something the function cannot use: fix the call. */
  ArgumentError: [
    'INVALID_ARGUMENT',
    'DIMENSION_MISMATCH',
    'NON_FINITE_VALUE',
    'OUT_OF_RANGE',
    'TOO_FEW_TRAINING_VECTORS',
    'DUPLICATE_ID',
  ],
  /** The object or the machine is not in a state that allows the call (search before train, a busy port). */
  StateError: [
    'NOT_TRAINED',
    'ALREADY_TRAINED',
    'INCOMPATIBLE_INDEX',
    'NO_FILE_STORE',
    'PORT_IN_USE',
    'WORKER_FAILED',
  ],
  /** A file on disk cannot be read as what it claims to be. */
  FileFormatError: [
    'CORRUPT_FILE',
    'TRUNCATED_FILE',
    'UNSUPPORTED_VERSION',
    'NOT_AN_INDEX_FILE',
    'WRONG_INDEX_KIND',
    'UNKNOWN_INDEX_KIND',
  ],
  /** Writing to disk failed for want of space or permission. */
  StorageError: ['DISK_FULL'],
  /** An image cannot be used: missing, empty, corrupt, not an image, a vector format, too large, or a bad crop. */
  ImageError: [
    'IMAGE_NOT_FOUND',
    'IMAGE_UNREADABLE',
    'EMPTY_IMAGE',
    'UNSUPPORTED_IMAGE',
    'CORRUPT_IMAGE',
    'IMAGE_TOO_LARGE',
    'CROP_OUT_OF_BOUNDS',
    'IMAGE_CHANGED',
  ],
  /** A model cannot be loaded or run: unknown name, missing file, bad config, failed download or forward pass. */
  ModelError: [
    'UNKNOWN_MODEL',
    'MODEL_NOT_FOUND',
    'INVALID_MODEL',
    'DOWNLOAD_FAILED',
    'CHECKSUM_MISMATCH',
    'INFERENCE_FAILED',
  ],
  /** A collection or dataset cannot be used as asked (missing, broken, already there, another model). */
  CollectionError: [
    'COLLECTION_NOT_FOUND',
    'COLLECTION_EXISTS',
    'COLLECTION_BROKEN',
    'COLLECTION_BUSY',
    'COLLECTION_PREPARING',
    'MODEL_MISMATCH',
    'EMPTY_COLLECTION',
    'NO_IMAGES',
    'NO_FOLDER',
    'UNKNOWN_DATASET',
    'DATASET_FAILED',
    'DATABASE_UNREACHABLE',
    'DATABASE_AUTH_FAILED',
    'DATABASE_UNUSABLE',
  ],
  /** A request to the server cannot be served as made (a refused URL, an oversized upload, a full queue). */
  RequestError: [
    'URL_NOT_ALLOWED',
    'URL_FETCH_FAILED',
    'URL_TIMEOUT',
    'UPLOAD_TOO_LARGE',
    'NOT_FOUND',
    'BUSY',
    'RUN_FROM_CLI',
    'EXPERIMENT_RUNNING',
    'NO_PARTITIONS',
    'HNSW_UNAVAILABLE',
    'UNAUTHORIZED',
    'HOST_NOT_ALLOWED',
    'ORIGIN_NOT_ALLOWED',
    'UNSUPPORTED_CONTENT_TYPE',
  ],
} as const;

type Codes = typeof ERROR_CODES;
export type ErrorClassName = keyof Codes;
export type ErrorCode = Codes[ErrorClassName][number];

export abstract class RisError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  /** Facts a program can act on (the command to run instead, the id of a run), sent along by the server. */
  readonly details: Record<string, string | number> | undefined;
  constructor(
    code: C,
    message: string,
    options?: ErrorOptions & { details?: Record<string, string | number> },
  ) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
    this.details = options?.details;
  }
}

export class ArgumentError extends RisError<Codes['ArgumentError'][number]> {}
export class StateError extends RisError<Codes['StateError'][number]> {}
export class FileFormatError extends RisError<Codes['FileFormatError'][number]> {}
export class StorageError extends RisError<Codes['StorageError'][number]> {}
export class ImageError extends RisError<Codes['ImageError'][number]> {}
export class ModelError extends RisError<Codes['ModelError'][number]> {}
export class CollectionError extends RisError<Codes['CollectionError'][number]> {}
export class RequestError extends RisError<Codes['RequestError'][number]> {}

/** The class each code belongs to. */
export function errorClassOf(code: ErrorCode): ErrorClassName {
  for (const [name, codes] of Object.entries(ERROR_CODES) as [ErrorClassName, readonly ErrorCode[]][])
    if (codes.includes(code)) return name;
  throw new Error(`unknown error code ${code}`);
}

/** Describes a value the way sharp's argument errors do: "Expected … but received …". */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : `${typeof value} ${value}`;
  if (typeof value === 'string')
    return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (ArrayBuffer.isView(value)) {
    return `${value.constructor.name} of length ${(value as unknown as { length: number }).length}`;
  }
  if (Array.isArray(value)) return `Array of length ${value.length}`;
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}
