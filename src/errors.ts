/**
 * The errors ris throws on purpose. Each has a stable `code` that callers (the CLI, the HTTP server)
 * switch on, and a message that says what to do about it. Anything else that escapes is a bug.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'DIMENSION_MISMATCH'
  | 'NON_FINITE_VALUE'
  | 'OUT_OF_RANGE'
  | 'NOT_TRAINED'
  | 'ALREADY_TRAINED'
  | 'TOO_FEW_TRAINING_VECTORS'
  | 'DUPLICATE_ID'
  | 'INCOMPATIBLE_INDEX'
  | 'CORRUPT_FILE'
  | 'TRUNCATED_FILE'
  | 'UNSUPPORTED_VERSION'
  | 'NOT_AN_INDEX_FILE'
  | 'NO_FILE_STORE'
  | 'EMPTY_IMAGE'
  | 'UNSUPPORTED_IMAGE'
  | 'CORRUPT_IMAGE'
  | 'IMAGE_TOO_LARGE'
  | 'CROP_OUT_OF_BOUNDS'
  | 'UNKNOWN_MODEL'
  | 'INVALID_MODEL'
  | 'DOWNLOAD_FAILED'
  | 'CHECKSUM_MISMATCH'
  | 'COLLECTION_NOT_FOUND'
  | 'COLLECTION_EXISTS'
  | 'MODEL_MISMATCH'
  | 'EMPTY_COLLECTION'
  | 'UNKNOWN_DATASET'
  | 'DATASET_FAILED'
  | 'URL_NOT_ALLOWED'
  | 'URL_FETCH_FAILED'
  | 'UPLOAD_TOO_LARGE'
  | 'NOT_FOUND'
  | 'BUSY'
  | 'PORT_IN_USE';

export class RisError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A caller passed something the function cannot use: fix the call. */
export class ArgumentError extends RisError {}

/** The object is not in a state that allows the call (for example: search before train). */
export class StateError extends RisError {}

/** An image cannot be used: empty, corrupt, not an image, a vector format, too large, or a bad crop. */
export class ImageError extends RisError {}

/** A model cannot be loaded: unknown name, bad config, missing tensor, failed download or checksum. */
export class ModelError extends RisError {}

/** A collection or dataset cannot be used as asked (missing, already there, built with another model). */
export class CollectionError extends RisError {}

/** A request to the server cannot be served as made (a refused URL, an oversized upload, a full queue). */
export class RequestError extends RisError {}

/** A file on disk cannot be read as what it claims to be. */
export class FileFormatError extends RisError {}

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
