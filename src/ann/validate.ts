import { ArgumentError, describe } from '../errors.ts';

/** Checks a row-major matrix of `dimension`-long rows; returns the number of rows. */
export function checkVectors(vectors: unknown, dimension: number, name = 'vectors'): number {
  if (!(vectors instanceof Float32Array)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected ${name} to be a Float32Array (rows of ${dimension} values, row-major) but received ${describe(vectors)}`,
    );
  }
  if (vectors.length % dimension !== 0) {
    throw new ArgumentError(
      'DIMENSION_MISMATCH',
      `Expected ${name} to hold whole rows of ${dimension} values but received ${vectors.length} values ` +
        `(${vectors.length % dimension} left over); check the index dimension and how the rows were packed`,
    );
  }
  checkFinite(vectors, name);
  return vectors.length / dimension;
}

/** Checks one query vector. */
export function checkQuery(query: unknown, dimension: number): Float32Array {
  if (!(query instanceof Float32Array)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected query to be a Float32Array of length ${dimension} but received ${describe(query)}`,
    );
  }
  if (query.length !== dimension) {
    throw new ArgumentError(
      'DIMENSION_MISMATCH',
      `Expected query to have length ${dimension} (the index dimension) but received length ${query.length}`,
    );
  }
  checkFinite(query, 'query');
  return query;
}

export function checkFinite(values: Float32Array, name: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is NaN exactly when v is NaN or ±Infinity.
    if (v - v !== 0) {
      throw new ArgumentError(
        'NON_FINITE_VALUE',
        `Expected ${name} to hold finite numbers but value ${i} is ${v}; remove or repair that vector first`,
      );
    }
  }
}

export function checkInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected ${name} to be an integer between ${min} and ${max} but received ${describe(value)}`,
    );
  }
  if (value < min || value > max) {
    throw new ArgumentError(
      'OUT_OF_RANGE',
      `Expected ${name} to be an integer between ${min} and ${max} but received ${value}`,
    );
  }
  return value;
}

export function checkIds(ids: unknown, count: number, name = 'ids'): Uint32Array {
  if (!(ids instanceof Uint32Array)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected ${name} to be a Uint32Array but received ${describe(ids)}`,
    );
  }
  if (ids.length !== count) {
    throw new ArgumentError(
      'DIMENSION_MISMATCH',
      `Expected ${name} to have one id per vector (${count}) but received ${ids.length}`,
    );
  }
  return ids;
}

export function checkOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected ${name} to be one of ${allowed.map((a) => `'${a}'`).join(', ')} but received ${describe(value)}`,
    );
  }
  return value as T;
}
