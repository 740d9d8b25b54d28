import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  ArgumentError,
  CollectionError,
  ERROR_CODES,
  type ErrorClassName,
  type ErrorCode,
  errorClassOf,
  FileFormatError,
  ImageError,
  ModelError,
  RequestError,
  RisError,
  StateError,
  StorageError,
} from '../src/errors.ts';

const CLASSES = {
  ArgumentError,
  StateError,
  FileFormatError,
  StorageError,
  ImageError,
  ModelError,
  CollectionError,
  RequestError,
} as const;

import { HTTP_STATUS, statusFor } from '../src/server/http-errors.ts';

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.generated.ts')) out.push(path);
  }
  return out;
}

/** Where the library throws what: every `new SomeError('CODE'` in src/, outside errors.ts. */
async function thrown(): Promise<Map<ErrorCode, Set<string>>> {
  const found = new Map<ErrorCode, Set<string>>();
  const src = join(import.meta.dirname, '..', 'src');
  for (const file of await sources(src)) {
    if (file.endsWith('errors.ts')) continue;
    const text = await readFile(file, 'utf8');
    for (const match of text.matchAll(/new (\w+Error)\(\s*'([A-Z_]+)'/g)) {
      const code = match[2] as ErrorCode;
      if (!found.has(code)) found.set(code, new Set());
      found.get(code)!.add(match[1]!);
    }
  }
  return found;
}

/** The HTTP status family each class answers with: the caller's fault, ours, or not now. */
const FAMILY: Record<ErrorClassName, (status: number) => boolean> = {
  ArgumentError: (s) => s === 400 || s === 409,
  StateError: (s) => s === 409 || s === 500,
  FileFormatError: (s) => s === 500,
  StorageError: (s) => s === 507,
  ImageError: (s) => (s >= 400 && s < 500) || s === 500,
  ModelError: (s) => s === 503,
  CollectionError: (s) => (s >= 400 && s < 500) || s === 502 || s === 503,
  RequestError: (s) => (s >= 400 && s < 500) || s === 503,
};

describe('error codes', () => {
  it('every code is thrown somewhere, always by its own class, and maps to an HTTP status of its kind', async () => {
    const found = await thrown();
    const all = Object.values(ERROR_CODES).flat() as ErrorCode[];
    assert.equal(new Set(all).size, all.length, 'no code belongs to two classes');
    for (const code of all) {
      const className = errorClassOf(code);
      assert.deepEqual(
        [...(found.get(code) ?? [])],
        [className],
        `${code} is thrown in src/, and only as a ${className}`,
      );
      const ErrorClass = CLASSES[className] as unknown as new (code: ErrorCode, message: string) => RisError;
      const instance = new ErrorClass(code, 'message');
      assert.ok(instance instanceof RisError);
      assert.equal(instance.name, className);
      assert.equal(statusFor(instance), HTTP_STATUS[code]);
      assert.ok(FAMILY[className](HTTP_STATUS[code]), `${code} (${className}) answers ${HTTP_STATUS[code]}`);
    }
    for (const code of found.keys()) assert.ok(all.includes(code), `${code} is declared in src/errors.ts`);
    assert.equal(statusFor(new Error('a bug')), 500);
  });

  it('the codes users meet most answer what HTTP means by them', () => {
    const expected: Partial<Record<ErrorCode, number>> = {
      INVALID_ARGUMENT: 400,
      COLLECTION_NOT_FOUND: 404,
      NOT_FOUND: 404,
      IMAGE_NOT_FOUND: 404,
      URL_NOT_ALLOWED: 403,
      UPLOAD_TOO_LARGE: 413,
      IMAGE_TOO_LARGE: 413,
      UNSUPPORTED_IMAGE: 415,
      URL_FETCH_FAILED: 422,
      URL_TIMEOUT: 422,
      EMPTY_COLLECTION: 409,
      BUSY: 503,
      COLLECTION_BROKEN: 503,
      COLLECTION_PREPARING: 503,
      DISK_FULL: 507,
    };
    for (const [code, status] of Object.entries(expected))
      assert.equal(HTTP_STATUS[code as ErrorCode], status, code);
  });
});
