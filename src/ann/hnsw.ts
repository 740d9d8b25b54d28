import { ArgumentError, StateError } from '../errors.ts';
import {
  type DecodedIndexFile,
  damaged,
  decodeIndex,
  distanceTypeOf,
  encodeIndex,
  type IndexHeader,
  type ReadIndexOptions,
  readIndexFile,
  requireKind,
  type Section,
  streamIndex,
} from './format.ts';
import { type HnswExplanation, type HnswLevel, traceLevels } from './hnsw-explain.ts';
import { checkedGraphSections } from './hnsw-file.ts';
import type { HnswBuilder } from './hnsw-parallel.ts';
import { HnswRerank } from './hnsw-rerank.ts';
import { computeTerms, gatherRows, scatterRows, writeRows } from './hnsw-storage.ts';
import { IdMap } from './id-map.ts';
import { duplicateId, idsToRemove } from './id-set.ts';
import { GRAPH_STORAGES } from './kernels/graph.ts';
import { type Kernels, kernels } from './kernels/index.ts';
import type { GraphKernel, GraphShape, GraphStorage, SharedGraph } from './kernels/types.ts';
import { checkDistanceType, type DistanceType, normalizeRows, publicDistance } from './metric.ts';
import { REFINE_STORAGES } from './refine-store.ts';
import type { RowStorage } from './row-store.ts';
import { fileStore } from './storage.ts';
import { TopK } from './topk.ts';
import { type BatchSearchResult, NO_ID, type SearchResult } from './types.ts';
import { checkIds, checkInteger, checkOneOf, checkQuery, checkVectors } from './validate.ts';
import {
  checkSearchOptions,
  describeIndex,
  type IndexDescription,
  MAX_K,
  type SearchOptions,
  type VectorIndex,
} from './vector-index.ts';

export type { HnswExplanation, HnswLevel, HnswLevelTrace } from './hnsw-explain.ts';

/** How an HNSW index keeps its vectors; see HnswOptions.storage. */
export type HnswStorage = GraphStorage;

export interface HnswOptions {
  /** Length of every vector. */
  dimension: number;
  /** Distance measure; see {@link DistanceType}. Default 'l2'. */
  distanceType?: DistanceType;
  /**
   * Links per node on the upper levels; level 0 keeps up to 2·m. More links reach a given recall with a
   * narrower beam, at 8·m bytes more per vector and a longer build. Default 16 (as hnswlib and LanceDB);
   * 8 suits small low-dimensional sets, 32–48 high recall on hard data. 2 to 128.
   */
  m?: number;
  /**
   * Beam width while inserting. Wider builds a better graph (more recall at the same efSearch) and takes
   * longer, about in proportion. Default 200 (as hnswlib's examples); on bench (a) 100 builds twice as
   * fast, with 10-recall@10 0.942 instead of 0.949 at efSearch 16. 1 to 10,000.
   */
  efConstruction?: number;
  /**
   * How vectors are kept: 'float32' (exact, 4 bytes per dimension), 'float16' (2 bytes, a tiny loss) or
   * 'int8' (1 byte: each dimension scalar-quantized to 256 steps over the range seen so far; the query
   * stays float32 and distances to the quantized rows rank the results, so 10-recall@10 tops out a
   * little lower: 0.997 on bench (a), 0.989 on (b)). Default 'float32'.
   */
  storage?: HnswStorage;
  /** Seed of the level draws: the same seed and the same insertions give the same graph and file. Default 1. */
  seed?: number;
  /**
   * Fraction of removed vectors at which `remove` compacts the graph (see `compact`). Tombstones cost
   * search time and some recall; compaction costs about one insertion per vector that linked to one.
   * Default 0.2; 1 never compacts on its own.
   */
  compactAt?: number;
  /**
   * Spreads the searches of large adds over threads (see createHnswBuilder; Node: one worker per extra
   * core). Adds then insert in batches, so the graph differs a little from a one-thread build (it is the
   * same whatever the number of threads). Not saved with the index. Default: this thread alone.
   */
  builder?: HnswBuilder;
  /**
   * A full copy of every vector to re-rank the best of the beam exactly (`refineFactor`): kept in the
   * index file and read a row at a time when a search needs it (after `loadIndex` it is not in memory),
   * so with storage 'int8' recall goes past int8's ceiling for 4 bytes per vector in memory. 'float16'
   * (2 bytes per dimension on disk), 'float32' or 'none'. Default 'none'.
   */
  rerankStorage?: 'none' | RowStorage;
}

/** How many of the beam's best a search re-ranks, in multiples of k, where the index keeps a copy. */
export const DEFAULT_HNSW_REFINE_FACTOR = 2;

/**
 * The beam width of a search unless `efSearch` says otherwise: 64. On bench (a) (Caltech101
 * MobileNetV2, m 16, efConstruction 200, float32) 10-recall@10 is 0.90 at efSearch 10, 0.95 at 16, 0.99
 * at 40 and 0.995 at 64 (about 3,000 single queries a second); each doubling costs nearly twice the time.
 */
export const DEFAULT_EF_SEARCH = 64;

/** Levels above this are never drawn (a node's level is kept in one byte; the kernels plan for 32 levels). */
const MAX_LEVEL = 31;

/**
 * With a builder, nodes go in batches of 1/32 of the graph so far, at most 256: nodes of one batch do not
 * see each other while searching (each one's earlier batch mates join its candidates when it is linked),
 * and each batch is long enough (tens of milliseconds) for the threads' hand-over not to count. The first
 * 1,024 go one by one.
 */
function batchSize(nodes: number): number {
  return nodes < 1024 ? 1 : Math.min(256, nodes >> 5);
}
/** Words of the PARM section, in order. */
const PARAMETERS = [
  'm',
  'efConstruction',
  'storage',
  'entry',
  'maxLevel',
  'inserted',
  'tombstones',
  'upperUsed',
  'compactAt',
] as const;

/**
 * HNSW (hierarchical navigable small world graph, Malkov & Yashunin): every vector is a node linked to
 * near ones on level 0, and a geometrically thinning sample of nodes forms the upper levels, each a
 * coarser graph. A search descends greedily from the top and ends in a beam search of width efSearch on
 * level 0. No training: vectors are added one by one or in batches at any time; removed ones stay as
 * tombstones (routed through, never returned) until compaction repairs the links around them.
 *
 * Distances run in the WebAssembly SIMD kernels of src/ann/kernels (graph, heaps and vectors live in
 * the index's own WebAssembly memory), or in the TypeScript fallback.
 */
export class HnswIndex implements VectorIndex {
  readonly kind = 'hnsw' as const;
  readonly dimension: number;
  readonly distanceType: DistanceType;
  readonly m: number;
  readonly efConstruction: number;
  readonly storage: HnswStorage;
  readonly seed: number;
  readonly compactAt: number;
  readonly rerankStorage: 'none' | RowStorage;
  private readonly builder: HnswBuilder | undefined;
  private rerank: HnswRerank | undefined;
  private rerankTop = new TopK(1);
  private readonly shape: GraphShape;
  private graph: GraphKernel;
  /** Node → external id (NO_ID: a tombstone whose id was added again). */
  private nodeIds = new Uint32Array(0);
  private nodeLevels = new Uint8Array(0);
  /** Nodes, tombstones included. */
  private count = 0;
  private tombstones = 0;
  private entry = -1;
  private maxLevel = -1;
  /** Words of upper-level links in use. */
  private upperUsed = 0;
  /** Insertions ever made: the sequence number that seeds the next level draw. */
  private inserted = 0;
  private idMap = new IdMap();
  private nextId = 0;

  constructor(options: HnswOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new ArgumentError('INVALID_ARGUMENT', 'Expected an options object such as { dimension: 128 }');
    }
    this.dimension = checkInteger(options.dimension, 'dimension', 1, 65536);
    this.distanceType = checkDistanceType(options.distanceType);
    this.m = checkInteger(options.m ?? 16, 'm', 2, 128);
    this.efConstruction = checkInteger(options.efConstruction ?? 200, 'efConstruction', 1, 10_000);
    this.storage = checkOneOf(options.storage ?? 'float32', 'storage', GRAPH_STORAGES);
    this.seed = checkInteger(options.seed ?? 1, 'seed', 0, 0xffffffff);
    const compactAt = options.compactAt ?? 0.2;
    if (typeof compactAt !== 'number' || !(compactAt > 0 && compactAt <= 1)) {
      throw new ArgumentError(
        'OUT_OF_RANGE',
        `Expected compactAt to be a fraction in (0, 1] but received ${String(compactAt)}`,
      );
    }
    this.compactAt = compactAt;
    this.rerankStorage = checkOneOf(options.rerankStorage ?? 'none', 'rerankStorage', [
      'none',
      'float32',
      'float16',
    ] as const);
    if (this.rerankStorage !== 'none') this.rerank = new HnswRerank(this.dimension, this.rerankStorage);
    this.builder = options.builder;
    this.shape = {
      dimension: this.dimension,
      storage: this.storage,
      dot: this.distanceType === 'dot',
      m: this.m,
    };
    this.graph = kernels().graph(this.shape, 0, 0);
  }

  /** Vectors in the index (removed ones not counted). */
  get size(): number {
    return this.count - this.tombstones;
  }

  /** HNSW needs no training. */
  get trained(): boolean {
    return true;
  }

  /** Removed vectors still in the graph, until the next compaction. */
  get removedCount(): number {
    return this.tombstones;
  }

  /** HNSW needs no training; present so every index can be driven the same way. */
  async train(_vectors?: Float32Array): Promise<void> {}

  /** The graph on the kernels in use (after `useKernels` it moves to the new ones). */
  private kernel(): GraphKernel {
    const K = kernels();
    if (this.graph.owner !== K) this.graph = this.copyGraph(K, this.count, this.upperUsed);
    return this.graph;
  }

  /** A graph on kernels K with room for `nodes` and `upper`, holding what this one holds. */
  private copyGraph(K: Kernels, nodes: number, upper: number): GraphKernel {
    const from = this.graph;
    const to = K.graph(this.shape, Math.max(1, nodes), Math.max(1, upper));
    const n = this.count;
    to.blocks().set(from.blocks().subarray(0, n * from.blockBytes));
    to.terms().set(from.terms().subarray(0, this.storage === 'int8' ? n : 0));
    to.quantizer().set(from.quantizer());
    to.upperOffset().set(from.upperOffset().subarray(0, n));
    to.upper().set(from.upper().subarray(0, this.upperUsed));
    to.deleted().set(from.deleted().subarray(0, n));
    return to;
  }

  /** Room for `nodes` nodes and `upper` words of upper links, growing by half again at least. */
  private reserve(nodes: number, upper: number): GraphKernel {
    const graph = this.kernel();
    if (nodes > graph.nodeCapacity || upper > graph.upperCapacity) {
      graph.reserve(
        nodes > graph.nodeCapacity ? Math.max(nodes, Math.ceil(graph.nodeCapacity * 1.5), 64) : 0,
        upper > graph.upperCapacity ? Math.max(upper, Math.ceil(graph.upperCapacity * 1.5), 256) : 0,
      );
    }
    if (nodes > this.nodeIds.length) {
      const capacity = Math.max(nodes, Math.ceil(this.nodeIds.length * 1.5), 64);
      const ids = new Uint32Array(capacity);
      ids.set(this.nodeIds.subarray(0, this.count));
      const levels = new Uint8Array(capacity);
      levels.set(this.nodeLevels.subarray(0, this.count));
      this.nodeIds = ids;
      this.nodeLevels = levels;
    }
    return graph;
  }

  /**
   * The level of insertion number `sequence`: ⌊−ln(u) / ln(m)⌋ with u uniform in (0, 1] drawn from a
   * hash of the seed and the sequence number, so the draws do not depend on how adds are batched or on a
   * save and load in between.
   */
  private drawLevel(sequence: number): number {
    let z = (Math.imul(this.seed ^ 0x5bd1e995, 0x9e3779b9) + Math.imul(sequence + 1, 0x85ebca6b)) >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
    z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    const u = (z + 1) / 4294967296;
    return Math.min(MAX_LEVEL, Math.floor(-Math.log(u) / Math.log(this.m)));
  }

  /** The ids for n vectors about to be added: `ids` once checked, or the next free ones. */
  private idsForAdd(ids: Uint32Array | undefined, n: number): Uint32Array {
    if (ids === undefined) {
      if (this.nextId + n > NO_ID) {
        throw new ArgumentError(
          'OUT_OF_RANGE',
          'The index ran out of 32-bit ids; pass explicit ids to add()',
        );
      }
      return Uint32Array.from({ length: n }, (_, i) => this.nextId + i);
    }
    checkIds(ids, n);
    const fresh = new IdMap(n);
    const deleted = this.graph.deleted();
    for (const id of ids) {
      if (id === NO_ID) {
        throw new ArgumentError('OUT_OF_RANGE', `Id ${NO_ID} is reserved for "no result"; use a smaller id`);
      }
      if (fresh.get(id) >= 0) throw duplicateId(id, 'twice in this call');
      fresh.set(id, 0);
      const node = this.idMap.get(id);
      if (node >= 0 && deleted[node] === 0) throw duplicateId(id, 'already in the index');
    }
    return ids;
  }

  /**
   * Adds n vectors (n × dimension, row-major) with the given ids, or with the next free ids. Each is
   * linked into the graph at once: searches see it as soon as add returns. Returns the ids.
   */
  add(vectors: Float32Array, ids?: Uint32Array): Uint32Array {
    const d = this.dimension;
    const n = checkVectors(vectors, d);
    const assigned = this.idsForAdd(ids, n);
    if (n === 0) return assigned;
    const data = this.distanceType === 'cosine' ? normalizeRows(vectors, d) : vectors;
    const levels = new Uint8Array(n);
    let upperWords = 0;
    for (let i = 0; i < n; i++) {
      levels[i] = this.drawLevel(this.inserted + i);
      upperWords += levels[i]! * (this.m + 1);
    }
    const graph = this.reserve(this.count + n, this.upperUsed + upperWords);
    writeRows(graph, this.storage, this.count, this.count, data, n, d);
    this.rerank?.add(data, n, this.count);
    this.inserted += n;
    const first = this.count;
    for (let i = 0; i < n; i++) {
      const node = first + i;
      const level = levels[i]!;
      const id = assigned[i]!;
      const [words, start] = this.linksOf(graph, node, 0);
      words[start] = 0;
      graph.deleted()[node] = 0;
      graph.upperOffset()[node] = this.upperUsed;
      const upper = graph.upper();
      for (let l = 0; l < level; l++) upper[this.upperUsed + l * (this.m + 1)] = 0;
      this.upperUsed += level * (this.m + 1);
      this.nodeLevels[node] = level;
      this.nodeIds[node] = id;
      const previous = this.idMap.get(id);
      if (previous >= 0) this.nodeIds[previous] = NO_ID; // a tombstone of this id gives it up
      this.idMap.set(id, node);
      if (id >= this.nextId) this.nextId = id + 1;
    }
    this.count += n;
    // Unlinked nodes are unreachable, so searches during the insertions below never meet them.
    let shared = this.builder ? graph.shared : undefined;
    let failure: unknown;
    for (let node = first; node < first + n; ) {
      const size = shared && this.entry >= 0 ? Math.min(batchSize(node), first + n - node) : 1;
      if (size > 1) {
        try {
          this.insertBatch(shared!, node, size);
          node += size;
          continue;
        } catch (error) {
          // The batch's searches may be incomplete, but nothing was linked yet: finish on this thread.
          if (!(error instanceof StateError)) throw error;
          failure = error;
          shared = undefined;
        }
      }
      const level = this.nodeLevels[node]!;
      if (this.entry < 0) {
        this.entry = node;
        this.maxLevel = level;
      } else {
        graph.insert(node, level, this.entry, this.maxLevel, this.efConstruction, this.tombstones > 0);
        if (level > this.maxLevel) {
          this.entry = node;
          this.maxLevel = level;
        }
      }
      node++;
    }
    if (failure) {
      throw new StateError(
        'WORKER_FAILED',
        `${(failure as Error).message.replace(/;.*$/, '')}; the ${n} vectors were added on this thread instead (the index is complete). ` +
          'Close the builder and create the index without it, or with a new builder',
        { cause: failure },
      );
    }
    return assigned;
  }

  /**
   * Inserts nodes [first, first + count) with the builder: their searches and choices of neighbours on
   * every thread, then their links here.
   */
  private insertBatch(shared: SharedGraph, first: number, count: number): void {
    const { entry, maxLevel, efConstruction } = this;
    const perLevel = 1 + 2 * this.m;
    let words = 0;
    for (let v = first; v < first + count; v++)
      words += (Math.min(this.nodeLevels[v]!, maxLevel) + 1) * perLevel;
    const builder = this.builder!;
    const area = shared.prepare(builder.threads, count, words, efConstruction);
    const table = shared.jobs(count);
    for (let i = 0, at = area.outputs; i < count; i++) {
      const level = this.nodeLevels[first + i]!;
      table[2 * i] = level;
      table[2 * i + 1] = at;
      at += (Math.min(level, maxLevel) + 1) * perLevel * 4;
    }
    builder.run(shared, {
      descriptors: area.descriptors,
      jobs: area.jobs,
      first,
      count,
      entry,
      maxLevel,
      efConstruction,
      anyDeleted: this.tombstones > 0,
    });
    const outputs = shared.jobs(count);
    for (let i = 0; i < count; i++) {
      const node = first + i;
      const level = this.nodeLevels[node]!;
      shared.link(node, level, maxLevel, outputs[2 * i + 1]!, first, efConstruction);
      if (level > this.maxLevel) {
        this.entry = node;
        this.maxLevel = level;
      }
    }
  }

  /**
   * Removes the vectors with these ids (ids not in the index are ignored); returns how many were
   * removed. They stay in the graph as tombstones that searches route through but never return; once
   * they reach `compactAt` of the nodes, the graph is compacted.
   */
  remove(ids: Uint32Array | readonly number[]): number {
    const gone = idsToRemove(ids);
    const deleted = this.kernel().deleted();
    let removed = 0;
    for (const id of gone) {
      const node = this.idMap.get(id);
      if (node < 0 || deleted[node] !== 0) continue;
      deleted[node] = 1;
      removed++;
    }
    this.tombstones += removed;
    if (removed > 0 && this.tombstones >= this.compactAt * this.count) this.compact();
    return removed;
  }

  /**
   * Takes the tombstones out of the graph: every live node that links to one gets new links, chosen by
   * the neighbour heuristic among the live nodes within two links of it, which link back as in an
   * insertion (a node left without any is inserted again); then the nodes are renumbered without gaps.
   * After 20 % removed, recall is that of a fresh build of the rest, at about a third of its time.
   * Returns how many tombstones went. `remove` calls it when tombstones reach `compactAt`.
   */
  compact(): number {
    const graph = this.kernel();
    const removed = this.tombstones;
    if (removed === 0) return 0;
    const n = this.count;
    const deleted = graph.deleted();
    const live = n - removed;
    if (live === 0) {
      this.clear();
      return removed;
    }
    // A live entry point: the first live node of the highest level.
    let entry = -1;
    for (let v = 0; v < n; v++)
      if (deleted[v] === 0 && (entry < 0 || this.nodeLevels[v]! > this.nodeLevels[entry]!)) entry = v;
    this.entry = entry;
    this.maxLevel = this.nodeLevels[entry]!;
    const orphans: number[] = [];
    for (let v = 0; v < n; v++) {
      if (deleted[v] !== 0) continue;
      for (let level = 0; level <= this.nodeLevels[v]!; level++) {
        const [links, start] = this.linksOf(graph, v, level);
        let touched = false;
        for (let i = 1; i <= links[start]!; i++) if (deleted[links[start + i]!] !== 0) touched = true;
        if (!touched) continue;
        const kept = graph.repair(v, level, this.efConstruction);
        if (kept === 0 && level === 0 && v !== entry) orphans.push(v);
      }
    }
    for (const v of orphans) {
      graph.insert(v, this.nodeLevels[v]!, this.entry, this.maxLevel, this.efConstruction, true);
    }
    // Renumber without the tombstones, into a graph of just the right size.
    const renumber = new Int32Array(n).fill(-1);
    let upperWords = 0;
    for (let v = 0, next = 0; v < n; v++) {
      if (deleted[v] !== 0) continue;
      renumber[v] = next++;
      upperWords += this.nodeLevels[v]! * (this.m + 1);
    }
    const from = graph;
    const to = kernels().graph(this.shape, live, Math.max(1, upperWords));
    const block = from.blockBytes;
    const ids = new Uint32Array(live);
    const levels = new Uint8Array(live);
    const idMap = new IdMap(live);
    let upperAt = 0;
    for (let v = 0; v < n; v++) {
      const w = renumber[v]!;
      if (w < 0) continue;
      to.blocks().set(from.blocks().subarray(v * block, v * block + from.linkOffset), w * block);
      if (this.storage === 'int8') to.terms()[w] = from.terms()[v]!;
      ids[w] = this.nodeIds[v]!;
      levels[w] = this.nodeLevels[v]!;
      idMap.set(ids[w]!, w);
      to.upperOffset()[w] = upperAt;
      for (let level = 0; level <= levels[w]!; level++) {
        const [links, start] = this.linksOf(from, v, level);
        const [out, outStart] = this.linksOf(to, w, level);
        let kept = 0;
        for (let i = 1; i <= links[start]!; i++) {
          const target = renumber[links[start + i]!]!;
          if (target >= 0) out[outStart + 1 + kept++] = target;
        }
        out[outStart] = kept;
      }
      upperAt += levels[w]! * (this.m + 1);
    }
    to.quantizer().set(from.quantizer());
    this.rerank?.renumber(renumber, live);
    from.dispose();
    this.graph = to;
    this.nodeIds = ids;
    this.nodeLevels = levels;
    this.idMap = idMap;
    this.count = live;
    this.tombstones = 0;
    this.upperUsed = upperAt;
    this.entry = renumber[this.entry]!;
    return removed;
  }

  /** Forgets every node (ids go on from nextId). */
  private clear(): void {
    this.graph.dispose();
    this.graph = kernels().graph(this.shape, 0, 0);
    this.nodeIds = new Uint32Array(0);
    this.nodeLevels = new Uint8Array(0);
    this.idMap = new IdMap();
    this.count = 0;
    this.tombstones = 0;
    this.entry = -1;
    this.maxLevel = -1;
    this.upperUsed = 0;
    if (this.rerank) this.rerank = new HnswRerank(this.dimension, this.rerank.storage);
  }

  /** The array holding node v's links on `level` and where they start (the count first). */
  private linksOf(graph: GraphKernel, v: number, level: number): [Uint32Array, number] {
    if (level === 0) return [graph.words(), (v * graph.blockBytes + graph.linkOffset) / 4];
    return [graph.upper(), graph.upperOffset()[v]! + (level - 1) * (this.m + 1)];
  }

  private efFor(k: number, options: SearchOptions): number {
    const { efSearch } = checkSearchOptions(options);
    return Math.max(k, efSearch ?? DEFAULT_EF_SEARCH);
  }

  /** How many of the beam's best to re-rank exactly: 0 without a copy to re-rank from. */
  private rerankCount(k: number, options: SearchOptions): number {
    if (!this.rerank) return 0;
    const factor =
      options.refineFactor === undefined
        ? DEFAULT_HNSW_REFINE_FACTOR
        : checkSearchOptions(options).refineFactor;
    return k * factor;
  }

  search(query: Float32Array, k: number, options: SearchOptions = {}): SearchResult {
    checkQuery(query, this.dimension);
    checkInteger(k, 'k', 1, MAX_K);
    const ef = this.efFor(k, options);
    const q = this.distanceType === 'cosine' ? normalizeRows(query, this.dimension) : query;
    const found = this.searchOne(q, ef);
    const kept = Math.min(k, found);
    const ids = new Uint32Array(kept);
    const distances = new Float32Array(kept);
    this.readResults(found, kept, ids, distances, 0, q, this.rerankCount(k, options));
    return { ids, distances };
  }

  /**
   * `efSearch` sets the beam; with `rerankStorage`, `refineFactor` (default 2) re-ranks the beam's best
   * k × refineFactor exactly from the copy in the file (0: the graph's own distances). `nprobes` is
   * checked and ignored.
   */
  searchBatch(queries: Float32Array, k: number, options: SearchOptions = {}): BatchSearchResult {
    const d = this.dimension;
    const nq = checkVectors(queries, d, 'queries');
    checkInteger(k, 'k', 1, MAX_K);
    const ef = this.efFor(k, options);
    const q = this.distanceType === 'cosine' ? normalizeRows(queries, d) : queries;
    const ids = new Uint32Array(nq * k).fill(NO_ID);
    const distances = new Float32Array(nq * k).fill(Number.POSITIVE_INFINITY);
    const rerank = this.rerankCount(k, options);
    for (let row = 0; row < nq; row++) {
      const query = q.subarray(row * d, (row + 1) * d);
      const found = this.searchOne(query, ef);
      this.readResults(found, Math.min(k, found), ids, distances, row * k, query, rerank);
    }
    return { ids, distances };
  }

  /** Runs one search of a checked (and for cosine normalized) query; returns the results found. */
  private searchOne(q: Float32Array, ef: number): number {
    if (this.size === 0) return 0;
    return this.kernel().search(q, ef, this.entry, this.maxLevel, this.tombstones > 0);
  }

  /** The k best of the last search: the graph's, or (rerank > 0) the best `rerank` re-ranked exactly. */
  private readResults(
    found: number,
    kept: number,
    ids: Uint32Array,
    distances: Float32Array,
    at: number,
    query?: Float32Array,
    rerank = 0,
  ): void {
    const nodes = this.graph.resultNodes(found);
    if (rerank > 0 && this.rerank && query) {
      let top = this.rerankTop;
      if (top.k !== kept) top = this.rerankTop = new TopK(kept);
      this.rerank.rerank(query, nodes, Math.min(found, Math.max(rerank, kept)), this.distanceType, top);
      for (let i = 0; i < top.size; i++) {
        ids[at + i] = this.nodeIds[top.a[i]!]!;
        distances[at + i] = publicDistance(this.distanceType, top.distances[i]!);
      }
      return;
    }
    const dist = this.graph.resultDistances(found);
    for (let i = 0; i < kept; i++) {
      ids[at + i] = this.nodeIds[nodes[i]!]!;
      distances[at + i] = publicDistance(this.distanceType, dist[i]!);
    }
  }

  /**
   * Searches as `search` does and records every step: per level (top first) the entry point, the nodes
   * whose links were followed, every link followed with the distance it found, and the best node. The
   * results are exactly `search`'s.
   */
  explainSearch(query: Float32Array, k: number, options: SearchOptions = {}): HnswExplanation {
    checkQuery(query, this.dimension);
    checkInteger(k, 'k', 1, MAX_K);
    const ef = this.efFor(k, options);
    const q = this.distanceType === 'cosine' ? normalizeRows(query, this.dimension) : query;
    const graph = this.kernel();
    let capacity = 4096;
    let trace = undefined as ReturnType<GraphKernel['endTrace']> | undefined;
    let found = 0;
    for (;;) {
      graph.startTrace(capacity);
      found = this.searchOne(q, ef);
      trace = graph.endTrace();
      if (trace.count <= capacity) break;
      capacity = trace.count;
    }
    const kept = Math.min(k, found);
    const results = { ids: new Uint32Array(kept), distances: new Float32Array(kept) };
    this.readResults(found, kept, results.ids, results.distances, 0, q, this.rerankCount(k, options));
    const levels = traceLevels(trace, {
      idOf: (node) => this.nodeIds[node]!,
      publicOf: (internal) => publicDistance(this.distanceType, internal),
      results,
    });
    return { efSearch: ef, levels, results };
  }

  /**
   * The graph, level by level (levels()[0] is level 0): the ids of each level's nodes and their links as
   * positions among them (compressed sparse rows), tombstones flagged.
   */
  levels(): HnswLevel[] {
    const graph = this.kernel();
    const deleted = graph.deleted();
    const out: HnswLevel[] = [];
    const position = new Int32Array(this.count);
    for (let level = 0; level <= this.maxLevel; level++) {
      let nodes = 0;
      let linkCount = 0;
      for (let v = 0; v < this.count; v++) {
        if (this.nodeLevels[v]! < level) continue;
        position[v] = nodes++;
        const [links, start] = this.linksOf(graph, v, level);
        linkCount += links[start]!;
      }
      const result: HnswLevel = {
        level,
        ids: new Uint32Array(nodes),
        removed: new Uint8Array(nodes),
        offsets: new Uint32Array(nodes + 1),
        links: new Uint32Array(linkCount),
      };
      let at = 0;
      for (let v = 0, i = 0; v < this.count; v++) {
        if (this.nodeLevels[v]! < level) continue;
        result.ids[i] = this.nodeIds[v]!;
        result.removed[i] = deleted[v]!;
        const [links, start] = this.linksOf(graph, v, level);
        for (let j = 1; j <= links[start]!; j++) result.links[at++] = position[links[start + j]!]!;
        result.offsets[++i] = at;
      }
      out.push(result);
    }
    return out;
  }

  /** The id of the entry point (the node searches start from), or undefined when the index is empty. */
  entryPoint(): number | undefined {
    return this.entry < 0 ? undefined : this.nodeIds[this.entry];
  }

  /** Every id in the index (removed ones not), in insertion order. */
  ids(): Uint32Array {
    const deleted = this.kernel().deleted();
    const out = new Uint32Array(this.size);
    for (let v = 0, at = 0; v < this.count; v++) if (deleted[v] === 0) out[at++] = this.nodeIds[v]!;
    return out;
  }

  /**
   * Memory held by the index, in bytes: vectors (rows, with int8's per-row terms and ranges), links
   * (level 0 with its block padding, and the upper levels), ids (node ids and the id lookup), per-node
   * bookkeeping (level, upper offset, tombstone flag) and the search scratch (2 bytes a node of visited
   * marks). Room reserved for growth is not counted. With `rerankStorage`: `rerank` (each node's row
   * number and the copies added since the file was written) counts; `onDisk` (the copies read on demand
   * from the file) does not.
   */
  memoryUsage(): {
    vectors: number;
    links: number;
    ids: number;
    nodes: number;
    scratch: number;
    rerank: number;
    total: number;
    onDisk: number;
  } {
    const n = this.count;
    const { blockBytes, linkOffset } = this.graph;
    const vectors = n * linkOffset + (this.storage === 'int8' ? n * 4 + 2 * this.dimension * 4 : 0);
    const links = n * (blockBytes - linkOffset) + this.upperUsed * 4;
    const ids = n * 4 + this.idMap.byteLength;
    const nodes = n * (1 + 4 + 1);
    const scratch = n * 2;
    const rerank = this.rerank?.memoryBytes ?? 0;
    const total = vectors + links + ids + nodes + scratch + rerank;
    return { vectors, links, ids, nodes, scratch, rerank, total, onDisk: this.rerank?.rows.onDiskBytes ?? 0 };
  }

  describe(): IndexDescription {
    return describeIndex(this, {
      m: this.m,
      efConstruction: this.efConstruction,
      storage: this.storage,
      seed: this.seed,
      compactAt: this.compactAt,
      levels: this.maxLevel + 1,
      removed: this.tombstones,
      rerankStorage: this.rerankStorage === 'none' ? undefined : this.rerankStorage,
    });
  }

  toBytes(): Uint8Array {
    const { header, sections } = this.fileSections();
    return encodeIndex('hnsw', header, sections, this.rerank ? ON_DEMAND : undefined);
  }

  private fileSections(): { header: IndexHeader; sections: Map<string, Section> } {
    const graph = this.kernel();
    const n = this.count;
    const d = this.dimension;
    const vectors = gatherRows(graph, this.storage, n, d);
    const stride = 2 * this.m + 1;
    const level0 = new Uint32Array(n * stride);
    for (let v = 0; v < n; v++) {
      const [words, start] = this.linksOf(graph, v, 0);
      level0.set(words.subarray(start, start + stride), v * stride);
    }
    const parameters = new Uint32Array(PARAMETERS.length);
    const values: Record<(typeof PARAMETERS)[number], number> = {
      m: this.m,
      efConstruction: this.efConstruction,
      storage: GRAPH_STORAGES.indexOf(this.storage),
      entry: this.entry < 0 ? NO_ID : this.entry,
      maxLevel: this.maxLevel < 0 ? NO_ID : this.maxLevel,
      inserted: this.inserted,
      tombstones: this.tombstones,
      upperUsed: this.upperUsed,
      compactAt: Math.round(this.compactAt * 1e6),
    };
    PARAMETERS.forEach((name, i) => {
      parameters[i] = values[name];
    });
    const sections = new Map<string, Section>([
      ['PARM', parameters],
      ['IDS ', this.nodeIds.subarray(0, n)],
      ['LEVL', this.nodeLevels.subarray(0, n)],
      ['VECS', vectors],
      ['LNK0', level0],
      ['LNKU', graph.upper().subarray(0, this.upperUsed)],
      ['DELS', graph.deleted().subarray(0, n)],
    ]);
    if (this.storage === 'int8') sections.set('QUNT', graph.quantizer());
    if (this.rerank) sections.set('RVEC', this.rerank.section(n));
    const header: IndexHeader = {
      dimension: d,
      distanceType: this.distanceType,
      count: n,
      nextId: this.nextId,
      seed: this.seed,
      refineStorage: REFINE_STORAGES.indexOf(this.rerankStorage === 'none' ? 'none' : this.rerankStorage),
    };
    return { header, sections };
  }

  /** Reads an index from its file bytes (copied into the index's own memory). */
  static fromBytes(bytes: Uint8Array, name = 'index file'): HnswIndex {
    return HnswIndex.fromFile(decodeIndex(bytes, name, 'hnsw'));
  }

  /** @internal From a decoded file of this kind (see openIndex). */
  static fromFile(file: DecodedIndexFile): HnswIndex {
    const f = file.fields;
    const words = file.section('PARM', Uint32Array, PARAMETERS.length);
    const p = Object.fromEntries(PARAMETERS.map((name, i) => [name, words[i]!])) as Record<
      (typeof PARAMETERS)[number],
      number
    >;
    const storage = GRAPH_STORAGES[p.storage];
    if (!storage) throw damaged(file.name, `its storage code (${p.storage})`);
    const rerankStorage = REFINE_STORAGES[f.refineStorage];
    if (!rerankStorage) throw damaged(file.name, `its re-rank storage code (${f.refineStorage})`);
    let index: HnswIndex;
    try {
      index = new HnswIndex({
        dimension: f.dimension,
        distanceType: distanceTypeOf(file),
        m: p.m,
        efConstruction: p.efConstruction,
        storage,
        seed: f.seed,
        compactAt: p.compactAt / 1e6,
        rerankStorage,
      });
    } catch {
      throw damaged(file.name, 'its parameters');
    }
    const n = f.count;
    const d = f.dimension;
    const { ids, levels, level0, upper, deleted, vectors, offsets, tombstones } = checkedGraphSections(
      file,
      p,
      { n, d, m: index.m, storage, maxLevel: MAX_LEVEL },
    );
    const stride = 2 * index.m + 1;
    const graph = index.reserve(n, p.upperUsed);
    scatterRows(graph, storage, vectors, n, d);
    for (let v = 0; v < n; v++) {
      const [words, start] = index.linksOf(graph, v, 0);
      words.set(level0.subarray(v * stride, (v + 1) * stride), start);
    }
    graph.upper().set(upper);
    graph.upperOffset().set(offsets);
    graph.deleted().set(deleted);
    if (storage === 'int8') {
      graph.quantizer().set(file.section('QUNT', Float32Array, 2 * d));
      computeTerms(graph, n, d);
    }
    index.nodeIds.set(ids);
    index.nodeLevels.set(levels);
    index.count = n;
    index.tombstones = tombstones;
    index.entry = n > 0 ? p.entry : -1;
    index.maxLevel = n > 0 ? p.maxLevel : -1;
    index.upperUsed = p.upperUsed;
    index.inserted = p.inserted;
    index.nextId = f.nextId;
    index.idMap = new IdMap(n);
    for (let v = 0; v < n; v++) {
      const id = ids[v]!;
      if (id === NO_ID) continue;
      const other = index.idMap.get(id);
      if (other >= 0 && deleted[v] === 0 && deleted[other] === 0) throw damaged(file.name, 'an id');
      // The live node of an id wins over its tombstone.
      if (other < 0 || deleted[v] === 0) index.idMap.set(id, v);
    }
    index.rerank?.attach(file, n);
    return index;
  }

  /**
   * Writes the index to `path` atomically (temp file, fsync, rename). With `rerankStorage`, the copies
   * stream from the file they were loaded from (and from memory) into the new one, and from then on are
   * read from it.
   */
  async save(path: string): Promise<void> {
    const { header, sections } = this.fileSections();
    const store = fileStore();
    if (!this.rerank) return store.write(path, encodeIndex('hnsw', header, sections));
    await store.write(path, streamIndex('hnsw', header, sections, ON_DEMAND));
    const file = await store.open(path);
    try {
      this.rerank.attach(readIndexFile(file, path, { verify: false }), this.count);
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /** Opens a file written by `save` (the re-rank copy, if any, stays on disk; see loadIndex). */
  static async load(path: string, options: ReadIndexOptions = {}): Promise<HnswIndex> {
    const file = await fileStore().open(path);
    try {
      const decoded = requireKind(readIndexFile(file, path, options), 'hnsw');
      const index = HnswIndex.fromFile(decoded);
      if (!decoded.leftOnDisk) file.close();
      return index;
    } catch (error) {
      file.close();
      throw error;
    }
  }
}

/** The section an HnswIndex leaves on disk: its re-rank copy. */
const ON_DEMAND: ReadonlySet<string> = new Set(['RVEC']);
