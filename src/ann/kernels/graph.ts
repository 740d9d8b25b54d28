import type { GraphShape, GraphStorage } from './types.ts';

/** In file order: the storage code saved with an index is the position. */
export const GRAPH_STORAGES: readonly GraphStorage[] = ['float32', 'float16', 'int8'];

/** One recorded step of a traced search (see GraphKernel.startTrace). */
export const TRACE_ENTRY = 0;
export const TRACE_EXPAND = 1;
export const TRACE_REJECT = 2;
export const TRACE_ACCEPT = 3;

export function rowBytesOf(shape: GraphShape): number {
  const perValue = shape.storage === 'float32' ? 4 : shape.storage === 'float16' ? 2 : 1;
  return shape.dimension * perValue;
}

/**
 * The node block of a shape: the row padded to 4 bytes, then 2m + 1 words of links; the whole padded to
 * 64 bytes (rows start on a cache line) unless that wastes more than a sixteenth, else to 16 (so no
 * 16-byte load straddles a cache line).
 */
export function blockLayout(shape: GraphShape): { blockBytes: number; linkOffset: number } {
  const linkOffset = Math.ceil(rowBytesOf(shape) / 4) * 4;
  const raw = linkOffset + 4 * (2 * shape.m + 1);
  const line = Math.ceil(raw / 64) * 64;
  return { blockBytes: line - raw <= raw / 16 ? line : Math.ceil(raw / 16) * 16, linkOffset };
}

/** Candidates a beam of width ef keeps: the bound above which pruning starts (see candPrune). */
export function candidateCapacity(ef: number, m: number): number {
  return 2 * ef + 2 * m + 2;
}
