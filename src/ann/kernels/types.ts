/** The kernels' interfaces: what src/ann asks of the WebAssembly and TypeScript kernels, graphs included. */
/**
 * An operand of a kernel: a Float32Array, or a long-lived matrix made resident with
 * `Kernels.resident` (in the WebAssembly build it is copied into the module's memory once,
 * instead of on every call). Rows start at `offset` and are `stride` elements apart.
 */
export interface Operand {
  readonly source: Float32Array | ResidentMatrix;
  readonly offset?: number;
  readonly stride?: number;
}

/**
 * A matrix the kernels keep close at hand. Treat its `data` as read-only while it is resident. It belongs
 * to the kernels that made it (`owner`): after `useKernels` the new kernels copy it in like a plain array,
 * so holders of a long-lived one re-make it with `residentOn`.
 */
export interface ResidentMatrix {
  readonly data: Float32Array;
  readonly owner: Kernels;
  /** Gives back the memory now rather than when the object is collected. */
  dispose(): void;
}

/**
 * Ranks one query's product-quantized codes (8-bit: 256 table entries per sub-space), list by list.
 * Created per index: it keeps the partition terms and the current query's table at hand.
 */
export interface CodeScanner {
  /** The kernels that made it (and whose memory it uses). */
  readonly owner: Kernels;
  /** The query's table, numSubVectors × 256 (for L2: −2⟨q_m, codeword⟩). */
  setQuery(table: Float32Array): void;
  /**
   * out[i] = base + Σ_m T[m][codes[i·M + m]] for the n codes, where T is the query's table plus row
   * `termsRow` of the partition terms (−1: the query's table alone).
   */
  scan(codes: Uint8Array, n: number, termsRow: number, base: number, out: Float32Array): void;
  dispose(): void;
}

export interface Kernels {
  readonly name: 'wasm-simd' | 'js';
  /** The memory and hot loops of one HNSW graph with room for `nodes` nodes and `upper` words of upper links. */
  graph(shape: GraphShape, nodes: number, upper: number): GraphKernel;
  /** A fresh memory and the hot loops of one RaBitQ index (see RabitqKernel). */
  rabitq(): RabitqKernel;
  /** A scanner for codes of `numSubVectors` bytes; `partitionTerms` has one numSubVectors × 256 row per partition. */
  codeScanner(numSubVectors: number, partitionTerms: Float32Array | undefined): CodeScanner;
  resident(data: Float32Array): ResidentMatrix;
  /** out[i·outStride + j] = A_i · B_j for i < m, j < n, over d elements. */
  gemmNT(
    a: Operand,
    m: number,
    b: Operand,
    n: number,
    d: number,
    out: Float32Array,
    outStride?: number,
  ): void;
  /**
   * For each of the m rows x_i of X: labels[i] = argmin_j ‖c_j‖² − 2 x_i·c_j and values[i] that minimum.
   * `centroidNorms[j]` = ‖c_j‖². Add ‖x_i‖² to get the squared distance.
   */
  nearest(
    x: Operand,
    m: number,
    centroids: Operand,
    n: number,
    d: number,
    centroidNorms: Float32Array,
    labels: Int32Array,
    values: Float32Array,
  ): void;
  /** The k-means update's sums (k × d, overwritten): sums[labels[i]] += x_i over the m rows of X, in f64. */
  clusterSums(x: Operand, m: number, d: number, labels: Int32Array, sums: Float64Array): void;
}

/**
 * The memory and hot loops of one RaBitQ index (src/ann/ivf-rabitq.ts): a linear memory of its own (a
 * WebAssembly instance, or an ArrayBuffer in the TypeScript kernels) holding the index's lists, and the
 * functions of assembly/rabitq.ts on byte addresses in it. Views go stale when `alloc` grows the memory.
 */
export interface RabitqKernel {
  readonly owner: Kernels;
  /** Bytes of memory held. */
  readonly byteLength: number;
  /** Reserves `bytes` (64-byte aligned) and returns their address; may grow the memory. */
  alloc(bytes: number): number;
  free(address: number, bytes: number): void;
  /** The whole memory as bytes (a fresh view). */
  bytes(): Uint8Array;
  /** `length` f32 from `address` (a fresh view). */
  floats(address: number, length: number): Float32Array;
  /** Rotates `rows` rows of D f32 in place (see rabitqRotate). */
  rotate(x: number, rows: number, D: number, P: number, signs: number, rounds: number): void;
  /** The fast-scan table of a rotated query, and at `params` Δ, Σ min, Σ q (see rabitqLut). */
  lut(query: number, D: number, lut: number, params: number): void;
  /**
   * Scans one partition's `size` one-bit codes: estimates, lower bounds and ⟨b, Pq⟩ to `out` (three
   * arrays of `stride` f32), and the vectors the bounds cannot rule out against the k ascending upper
   * bounds at `upper` (which it updates; with exBytes > 0, after the finer estimate of the extended
   * codes at `exCodes` against the rotated query at `query`) to `found` (lower bound, estimate,
   * position: three arrays of `stride`). Returns how many were found (see rabitqScan).
   */
  scan(
    codes: number,
    size: number,
    G: number,
    lut: number,
    factors: number,
    stride: number,
    base: number,
    delta: number,
    offset: number,
    sumQ: number,
    bound: number,
    out: number,
    exCodes: number,
    exBytes: number,
    query: number,
    M: number,
    highScale: number,
    upper: number,
    k: number,
    found: number,
  ): number;
  /** ‖q − x‖² (dot: −⟨q, x⟩) of d values, x as f32 or float16 bits. */
  rowDistance(query: number, row: number, d: number, f16: boolean, dot: boolean): number;
  /** out[j] = ⟨q, c_j⟩ for the n rows of D f32 at `rows`. */
  products(query: number, rows: number, n: number, D: number, out: number): void;
  /**
   * The `rows` rows of D f32 at x as i16 at `out`, row j scaled by its own s_j (written to `scales` as
   * f32) so that its largest magnitude is the most productsI16 can sum over D dimensions in i32 (2,590
   * at 1,280 dimensions, 5,792 at 256; at most 32,767). See quantizeRows.
   */
  quantize(x: number, rows: number, D: number, out: number, scales: number): void;
  /** out[j] = Σ q·c_j as f32 for the n rows of D i16 at `rows` and the i16 query at `query` (exact sums). */
  productsI16(query: number, rows: number, n: number, D: number, out: number): void;
  dispose(): void;
}

export function operandArray(source: Float32Array | ResidentMatrix): Float32Array {
  return source instanceof Float32Array ? source : source.data;
}

/** How an HNSW graph keeps its vectors: 4, 2 or 1 byte per dimension. */
export type GraphStorage = 'float32' | 'float16' | 'int8';

/** What a graph kernel needs to know of its index. */
export interface GraphShape {
  readonly dimension: number;
  readonly storage: GraphStorage;
  /** Distances are −⟨q, x⟩ (the index's 'dot'); otherwise ‖q − x‖² ('l2', and 'cosine' on unit vectors). */
  readonly dot: boolean;
  /** Links per node above level 0; level 0 holds up to 2m. */
  readonly m: number;
}

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
  /** Internal distance between stored rows `from` and `to` as an insertion computes it (for tests). */
  nodeDistance(from: number, to: number): number;
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
