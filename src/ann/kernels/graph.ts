import type { Kernels } from './types.ts';

/** How an HNSW graph keeps its vectors: 4, 2 or 1 byte per dimension. */
export type GraphStorage = 'float32' | 'float16' | 'int8';
/** In file order: the storage code saved with an index is the position. */
export const GRAPH_STORAGES: readonly GraphStorage[] = ['float32', 'float16', 'int8'];

/** What a graph kernel needs to know of its index. */
export interface GraphShape {
  readonly dimension: number;
  readonly storage: GraphStorage;
  /** Distances are −⟨q, x⟩ (the index's 'dot'); otherwise ‖q − x‖² ('l2', and 'cosine' on unit vectors). */
  readonly dot: boolean;
  /** Links per node above level 0; level 0 holds up to 2m. */
  readonly m: number;
}

/** One recorded step of a traced search (see GraphKernel.startTrace). */
export const TRACE_ENTRY = 0;
export const TRACE_EXPAND = 1;
export const TRACE_REJECT = 2;
export const TRACE_ACCEPT = 3;

/** The recorded steps: per event level, kind, from, to (node numbers) and the distance found. */
export interface GraphTrace {
  count: number;
  levels: Uint8Array;
  kinds: Uint8Array;
  from: Uint32Array;
  to: Uint32Array;
  distances: Float32Array;
}

/**
 * The memory and hot loops of one HNSW graph (see src/ann/hnsw.ts), in WebAssembly (one module instance
 * per graph) or in TypeScript. Node n owns block n of `blockBytes` bytes: its row (float32, float16 bits
 * or int8 codes), then at `linkOffset` its level-0 links (the count, then up to 2m node numbers), as
 * hnswlib keeps them, so that reading a row brings the links it will follow into the cache too. Its
 * upper-level links start at `upperOffset[n]` in `upper` (per level the count, then up to m). The index
 * keeps ids and levels itself. Views are valid until the next `reserve`.
 */
export interface GraphKernel {
  readonly owner: Kernels;
  readonly shape: GraphShape;
  readonly nodeCapacity: number;
  readonly upperCapacity: number;
  /** Bytes per node block, and where in it the level-0 links start (both multiples of 4). */
  readonly blockBytes: number;
  readonly linkOffset: number;
  /** Room for `nodes` nodes and `upper` words of upper-level links; keeps the content. */
  reserve(nodes: number, upper: number): void;
  /** The node blocks, as bytes and as 32-bit words. */
  blocks(): Uint8Array;
  words(): Uint32Array;
  /** int8: Σ_j (scale_j c_j)² of each row. */
  terms(): Float32Array;
  /** int8: lo (d values), then scale (d values). */
  quantizer(): Float32Array;
  upperOffset(): Uint32Array;
  upper(): Uint32Array;
  deleted(): Uint8Array;
  /** Links `node` into the graph (or re-links it); see graphInsert in assembly/kernels.ts. */
  insert(
    node: number,
    level: number,
    entry: number,
    maxLevel: number,
    efConstruction: number,
    anyDeleted: boolean,
  ): void;
  /** Searches for `query` (d raw values); returns how many results `resultNodes` / `resultDistances` hold. */
  search(query: Float32Array, ef: number, entry: number, maxLevel: number, anyDeleted: boolean): number;
  /** The last search's results, nearest first (views: read them before the next call). */
  resultNodes(found: number): Uint32Array;
  resultDistances(found: number): Float32Array;
  /** Replaces `node`'s links to tombstones on `level`; returns how many links it keeps. */
  repair(node: number, level: number, efConstruction: number): number;
  /** Internal distance between a raw query and stored row `node` (for tests and traces). */
  distance(query: Float32Array, node: number): number;
  /** Records the steps of the following searches (at most `capacity`) until `endTrace`. */
  startTrace(capacity: number): void;
  /** Stops recording; `count` may exceed what was kept (then search again with more capacity). */
  endTrace(): GraphTrace;
  /** Present when the graph lives in shared WebAssembly memory, so other threads can search it. */
  readonly shared?: SharedGraph;
  dispose(): void;
}

/**
 * A graph in shared WebAssembly memory, for builds spread over threads (see src/ann/hnsw-parallel.ts):
 * each thread instantiates `module` over `memory` and runs graphCandidates (beam searches and the
 * choice of neighbours) for its share of a batch from its own descriptor; this thread then links the
 * batch in order.
 */
export interface SharedGraph {
  readonly memory: WebAssembly.Memory;
  readonly module: WebAssembly.Module;
  /** Changes whenever the scratch moves: threads re-read their descriptors. */
  readonly version: number;
  /**
   * Scratch for `threads` threads and a batch of `jobs` nodes whose neighbour lists take `words` words
   * (per node and level 1 + 2m); returns each thread's descriptor and where the job table (per node:
   * level, output address) and the outputs are. May move the graph to another memory.
   */
  prepare(
    threads: number,
    jobs: number,
    words: number,
    efConstruction: number,
  ): { descriptors: number[]; jobs: number; outputs: number };
  /** The job table (two words per node), a fresh view. */
  jobs(count: number): Uint32Array;
  /** graphCandidates on this thread. */
  candidates(
    node: number,
    level: number,
    entry: number,
    maxLevel: number,
    efConstruction: number,
    anyDeleted: boolean,
    out: number,
  ): void;
  /**
   * graphLink on this thread; nodes [batchFirst, node) of the batch, linked before it, join its
   * candidates (up to efConstruction of them in all).
   */
  link(
    node: number,
    level: number,
    maxLevel: number,
    out: number,
    batchFirst: number,
    efConstruction: number,
  ): void;
}

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
