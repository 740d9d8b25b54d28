import { halfvecType, vectorType } from 'pgvector/utils';
import { RIS_LOCKS } from './schema.ts';

/** pgvector's HNSW indexes `vector` up to 2,000 dimensions and `halfvec` up to 4,000. */
const HNSW_VECTOR_MAX = 2000;
const HNSW_HALFVEC_MAX = 4000;

/** HNSW build settings (pgvector's defaults) and the search breadth used unless a search asks for more. */
export const HNSW_DEFAULTS = { m: 16, efConstruction: 64, efSearch: 40 } as const;
/** pgvector's ceiling for hnsw.ef_search. */
const EF_SEARCH_MAX = 1000;

/**
 * A vector as a query parameter, in pgvector's text form. Nine significant digits give back every float32
 * exactly (pgvector reads them with strtof) in two thirds of the text of pgvector.toSql's doubles, which
 * the server has to parse: `[0.0123456789,…]`.
 */
export function vectorParam(vector: Float32Array): string {
  let text = '[';
  for (let i = 0; i < vector.length; i++) text += (i ? ',' : '') + Number(vector[i]!.toPrecision(9));
  return `${text}]`;
}

/**
 * Vectors read with `vector_send(embedding)`: pgvector's binary form (int16 dimension, int16 unused, then
 * big-endian float32s), a third of the text form's size and no number parsing, written into `out` at row
 * `row`.
 */
export function readVector(bytes: Uint8Array, out: Float32Array, row: number, dimension: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const d = view.getInt16(0);
  if (d !== dimension)
    throw new Error(`a stored vector has ${d} dimensions where the collection has ${dimension}`);
  const base = row * dimension;
  for (let j = 0; j < dimension; j++) out[base + j] = view.getFloat32(4 + 4 * j);
}

/** How a collection of `dimension` is indexed by HNSW: the cast its index and searches use, or none. */
export function hnswCast(dimension: number): { cast: string; ops: string } | undefined {
  if (dimension <= HNSW_VECTOR_MAX)
    return { cast: vectorType(dimension) as string, ops: 'vector_cosine_ops' };
  if (dimension <= HNSW_HALFVEC_MAX)
    return { cast: halfvecType(dimension) as string, ops: 'halfvec_cosine_ops' };
  return undefined;
}

/** The name of a collection's HNSW index (from its numeric id: nothing a user typed reaches SQL text). */
export function hnswIndexName(collectionId: number): string {
  return `ris_images_hnsw_${checkedId(collectionId)}`;
}

/**
 * The partial expression index of one collection. DDL takes no parameters, so the collection id, the
 * dimension and the build settings are written into the text: all of them integers checked here.
 */
export function hnswIndexSql(
  collectionId: number,
  dimension: number,
  settings: { m: number; efConstruction: number },
): string | undefined {
  const how = hnswCast(dimension);
  if (!how) return undefined;
  const id = checkedId(collectionId);
  const m = checkedId(settings.m);
  const ef = checkedId(settings.efConstruction);
  return (
    `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${hnswIndexName(id)} ON ris_images ` +
    `USING hnsw ((embedding::${how.cast}) ${how.ops}) WITH (m = ${m}, ef_construction = ${ef}) ` +
    `WHERE collection_id = ${id}`
  );
}

/**
 * The k nearest by the collection's HNSW index. Its expression and predicate are written out as the index
 * has them (the collection id and dimension as literals): the planner uses a partial expression index only
 * for a query it can match, and a parameter would be matched only in custom plans.
 */
export function hnswSearchSql(collectionId: number, dimension: number, columns: string): string | undefined {
  const how = hnswCast(dimension);
  if (!how) return undefined;
  const id = checkedId(collectionId);
  const distance = `(embedding::${how.cast} <=> $1::${how.cast})`;
  return `SELECT ${columns}, ${distance} AS distance FROM ris_images WHERE collection_id = ${id} ORDER BY ${distance} LIMIT $2`;
}

/** Exact search: the plain column never matches the index expression, so every row is compared. */
export function exactSearchSql(columns: string): string {
  return `SELECT ${columns}, (embedding <=> $1::vector) AS distance FROM ris_images WHERE collection_id = $3 ORDER BY distance, id LIMIT $2`;
}

/**
 * The search breadth for k results: at least `efSearch`, `kFactor` × k (2 by default: room for what the
 * index misses) and what the caller asked.
 */
export function efSearchFor(k: number, efSearch: number, requested?: number, kFactor = 2): number {
  return Math.min(EF_SEARCH_MAX, Math.max(efSearch, kFactor * k, requested ?? 0));
}

/** The advisory lock that lets one process at a time build a collection's index. */
export function buildLockKey(collectionId: number): [number, number] {
  return [RIS_LOCKS, checkedId(collectionId)];
}

function checkedId(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new Error(`expected a non-negative integer, got ${value}`);
  return value;
}
