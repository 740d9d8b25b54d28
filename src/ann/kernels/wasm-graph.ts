import { ArgumentError } from '../../errors.ts';
import { base64ToBytes } from './base64.ts';
import { blockLayout, candidateCapacity } from './graph.ts';
import type { GraphKernel, GraphShape, GraphTrace, Kernels, SharedGraph } from './types.ts';
import { kernelsSharedWasmBase64 } from './wasm-bytes.generated.ts';

/** The graph functions of assembly/kernels.ts. */
export interface GraphExports {
  memory?: WebAssembly.Memory;
  graphInit(desc: number): void;
  graphTrace(at: number, cap: number): number;
  graphPrepareQuery(slot: number, src: number): void;
  graphDistance(slot: number, node: number): number;
  graphPrepareRow(slot: number, node: number): void;
  graphCandidates(
    node: number,
    level: number,
    entry: number,
    maxLevel: number,
    efConstruction: number,
    anyDeleted: number,
    out: number,
  ): void;
  graphLink(
    node: number,
    level: number,
    maxLevel: number,
    neighbours: number,
    batchFirst: number,
    jobs: number,
    efConstruction: number,
  ): void;
  graphInsert(
    node: number,
    level: number,
    entry: number,
    maxLevel: number,
    efConstruction: number,
    anyDeleted: number,
    out: number,
  ): void;
  graphSearch(ef: number, entry: number, maxLevel: number, anyDeleted: number): number;
  graphRepair(node: number, level: number, efConstruction: number): number;
}

const PAGE = 65536;
/** A 32-bit WebAssembly memory holds at most 4 GiB. */
const MAX_PAGES = 65536;
const ALIGN = 64;
/** The module's own data keeps the first page; the graph follows. */
const BASE = PAGE;
const TRACE_RECORD = 16;
/** Threads a graph lays out scratch for at most (descriptors are kept in one fixed area). */
export const MAX_GRAPH_THREADS = 64;
const DESCRIPTOR_BYTES = 128;
/** Levels a node may have (see MAX_LEVEL in src/ann/hnsw.ts), for the candidate lists of an insertion. */
const MAX_LEVELS = 32;

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/** Prepared-query slots of a thread: two, then one per node the heuristic keeps (see KEPT_SLOT in assembly/kernels.ts). */
function slotCount(m0: number): number {
  return 2 + m0;
}

let sharedModule: WebAssembly.Module | null | undefined;

/** The shared-memory build of the kernels, or null where shared WebAssembly memory is not available. */
function sharedGraphModule(): WebAssembly.Module | null {
  if (sharedModule === undefined) {
    try {
      new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
      sharedModule = new WebAssembly.Module(base64ToBytes(kernelsSharedWasmBase64));
    } catch {
      sharedModule = null;
    }
  }
  return sharedModule;
}

/** Byte addresses of the graph itself: fixed for the life of one memory. */
interface GraphRegions {
  blocks: number;
  terms: number;
  quant: number;
  upperOffset: number;
  upperRegion: number;
  deleted: number;
  /** Where the descriptors start; the threads' scratch and the batch area follow them. */
  tail: number;
}

/** One thread's scratch. */
interface ThreadRegions {
  desc: number;
  raw: number;
  slots: number;
  visited: number;
  candD: number;
  candN: number;
  resD: number;
  resN: number;
  selD: number;
  selN: number;
  listD: number;
  listN: number;
  gather: number;
  /** Neighbour lists of one insertion, every level (see graphCandidates). */
  insertOut: number;
  trace: number;
}

/** What the tail is laid out for. */
interface TailShape {
  ef: number;
  traceCap: number;
  threads: number;
  batchJobs: number;
  batchWords: number;
}

/**
 * One HNSW graph in its own WebAssembly instance of the kernels: the graph and the scratch of every
 * thread that searches it fill that instance's memory, so the hot loops copy nothing in, and the memory
 * goes when the graph does. Where the platform allows, the memory is shared, so worker threads can run
 * the searches of a build side by side (see SharedGraph). Growing the node or link capacity moves the
 * graph into a fresh memory; growing the scratch grows the memory in place.
 */
export class WasmGraph implements GraphKernel {
  nodeCapacity = 0;
  upperCapacity = 0;
  readonly blockBytes: number;
  readonly linkOffset: number;
  /** The shared-memory module, when the graph lives in shared memory. */
  readonly sharedModule: WebAssembly.Module | null;
  private exports!: GraphExports;
  private memory!: WebAssembly.Memory;
  private graph!: GraphRegions;
  private tailShape: TailShape = { ef: 16, traceCap: 0, threads: 1, batchJobs: 0, batchWords: 0 };
  private threadRegions: ThreadRegions[] = [];
  private batch = { jobs: 0, outputs: 0 };
  /** Bumped whenever the tail moves: threads re-read their descriptors. */
  private version = 0;
  private readonly d: number;
  private rawView = new Float32Array(0);
  private tracing = false;
  private views!: {
    blocks: Uint8Array;
    words: Uint32Array;
    terms: Float32Array;
    quant: Float32Array;
    upperOffset: Uint32Array;
    upper: Uint32Array;
    deleted: Uint8Array;
  };

  constructor(
    readonly owner: Kernels,
    private readonly module: WebAssembly.Module,
    readonly shape: GraphShape,
    nodes: number,
    upper: number,
  ) {
    const { blockBytes, linkOffset } = blockLayout(shape);
    this.blockBytes = blockBytes;
    this.linkOffset = linkOffset;
    this.d = shape.dimension;
    this.sharedModule = sharedGraphModule();
    this.place(Math.max(1, nodes), Math.max(1, upper));
  }

  /** Lays the graph out for these capacities in a fresh memory and instance, copying what the old one held. */
  private place(nodes: number, upper: number): void {
    const d = this.d;
    let at = BASE;
    const take = (bytes: number) => {
      const start = at;
      at = align(at + bytes);
      return start;
    };
    const graph: GraphRegions = {
      blocks: take(nodes * this.blockBytes),
      terms: take(this.shape.storage === 'int8' ? nodes * 4 : 4),
      quant: take(2 * d * 4),
      upperOffset: take(nodes * 4),
      upperRegion: take(upper * 4),
      deleted: take(nodes),
      tail: 0,
    };
    graph.tail = at;
    const old = this.exports
      ? { memory: this.memory, graph: this.graph, nodes: this.nodeCapacity, upper: this.upperCapacity }
      : undefined;
    const tailBytes = this.tailBytes(nodes, this.tailShape);
    const pages = Math.ceil((graph.tail + tailBytes) / PAGE);
    if (pages > MAX_PAGES) {
      const gib = ((pages * PAGE) / 2 ** 30).toFixed(1);
      throw new ArgumentError(
        'OUT_OF_RANGE',
        `Expected an HNSW graph to fit in 4 GiB of WebAssembly memory but ${nodes} vectors of ${this.d} ` +
          `dimensions as ${this.shape.storage} need ${gib} GiB; use storage: 'int8' (or 'float16'), or split the collection`,
      );
    }
    if (this.sharedModule) {
      // Shared memory cannot move, so its maximum is reserved up front: room for the scratch to grow.
      this.memory = new WebAssembly.Memory({
        initial: pages,
        maximum: Math.min(MAX_PAGES, pages + Math.max(256, pages >> 2)),
        shared: true,
      });
      const instance = new WebAssembly.Instance(this.sharedModule, { env: { memory: this.memory } });
      this.exports = instance.exports as unknown as GraphExports;
    } else {
      const instance = new WebAssembly.Instance(this.module, {});
      this.exports = instance.exports as unknown as GraphExports;
      this.memory = this.exports.memory!;
      this.memory.grow(pages - this.memory.buffer.byteLength / PAGE);
    }
    this.graph = graph;
    this.nodeCapacity = nodes;
    this.upperCapacity = upper;
    if (old) {
      const from = new Uint8Array(old.memory.buffer);
      const to = new Uint8Array(this.memory.buffer);
      const copy = (src: number, dst: number, bytes: number) => {
        to.set(from.subarray(src, src + bytes), dst);
      };
      const n = Math.min(nodes, old.nodes);
      copy(old.graph.blocks, graph.blocks, n * this.blockBytes);
      if (this.shape.storage === 'int8') copy(old.graph.terms, graph.terms, n * 4);
      copy(old.graph.quant, graph.quant, 2 * d * 4);
      copy(old.graph.upperOffset, graph.upperOffset, n * 4);
      copy(old.graph.upperRegion, graph.upperRegion, Math.min(upper, old.upper) * 4);
      copy(old.graph.deleted, graph.deleted, n);
    }
    this.layTail(this.tailShape);
  }

  /** Bytes of one thread's scratch for beams up to `ef`. */
  private threadBytes(nodes: number, ef: number, traceCap: number): number {
    const m0 = 2 * this.shape.m;
    const candCap = candidateCapacity(ef, this.shape.m);
    const slotBytes = 64 + align(this.d * 4);
    return (
      align(this.d * 4) +
      slotCount(m0) * slotBytes +
      align(nodes * 2) +
      2 * align(candCap * 4) +
      2 * align((ef + 1) * 4) +
      2 * align(2 * (m0 + 2) * 4) +
      2 * align((m0 + 2) * 4) +
      align(m0 * 4) +
      align(MAX_LEVELS * (1 + 2 * this.shape.m) * 4) +
      align(traceCap * TRACE_RECORD)
    );
  }

  private tailBytes(nodes: number, shape: TailShape): number {
    let bytes = MAX_GRAPH_THREADS * DESCRIPTOR_BYTES;
    for (let t = 0; t < shape.threads; t++)
      bytes += this.threadBytes(nodes, shape.ef, t === 0 ? shape.traceCap : 0);
    return bytes + align(shape.batchJobs * 8) + align(shape.batchWords * 4) + ALIGN;
  }

  /** Lays out the descriptors, each thread's scratch and the batch area after the graph; writes the descriptors. */
  private layTail(shape: TailShape): void {
    const end = this.graph.tail + this.tailBytes(this.nodeCapacity, shape);
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      try {
        this.memory.grow(pages);
      } catch {
        // A shared memory at its maximum: move to a bigger one.
        this.tailShape = shape;
        this.place(this.nodeCapacity, this.upperCapacity);
        return;
      }
    }
    this.tailShape = shape;
    let at = this.graph.tail + MAX_GRAPH_THREADS * DESCRIPTOR_BYTES;
    const take = (bytes: number) => {
      const start = at;
      at = align(at + bytes);
      return start;
    };
    const m0 = 2 * this.shape.m;
    const slotBytes = 64 + align(this.d * 4);
    const candCap = candidateCapacity(shape.ef, this.shape.m);
    this.threadRegions = [];
    for (let t = 0; t < shape.threads; t++) {
      const regions: ThreadRegions = {
        desc: this.graph.tail + t * DESCRIPTOR_BYTES,
        raw: take(this.d * 4),
        slots: take(slotCount(m0) * slotBytes),
        visited: take(this.nodeCapacity * 2),
        candD: take(candCap * 4),
        candN: take(candCap * 4),
        resD: take((shape.ef + 1) * 4),
        resN: take((shape.ef + 1) * 4),
        selD: take(2 * (m0 + 2) * 4),
        selN: take(2 * (m0 + 2) * 4),
        listD: take((m0 + 2) * 4),
        listN: take((m0 + 2) * 4),
        gather: take(m0 * 4),
        insertOut: take(MAX_LEVELS * (1 + 2 * this.shape.m) * 4),
        trace: take(t === 0 ? shape.traceCap * TRACE_RECORD : 0),
      };
      this.threadRegions.push(regions);
      const { graph } = this;
      const fields = [
        this.d,
        0,
        this.shape.storage === 'float32' ? 0 : this.shape.storage === 'float16' ? 1 : 2,
        this.shape.dot ? 1 : 0,
        this.shape.m,
        m0,
        this.nodeCapacity,
        graph.blocks,
        graph.terms,
        graph.quant,
        this.blockBytes,
        graph.upperOffset,
        graph.upperRegion,
        graph.deleted,
        regions.visited,
        regions.slots,
        slotBytes,
        regions.candD,
        regions.candN,
        candCap,
        regions.resD,
        regions.resN,
        regions.selD,
        regions.selN,
        regions.listD,
        regions.listN,
        regions.gather,
        this.linkOffset,
      ];
      new Uint32Array(this.memory.buffer, regions.desc, fields.length).set(fields);
    }
    this.batch = { jobs: take(shape.batchJobs * 8), outputs: take(shape.batchWords * 4) };
    this.version++;
    this.exports.graphInit(this.threadRegions[0]!.desc);
    // graphInit stops any recording; a trace started before the scratch moved goes on in the new place.
    if (this.tracing) this.exports.graphTrace(this.threadRegions[0]!.trace, shape.traceCap);
    this.refreshViews();
  }

  private refreshViews(): void {
    const buffer = this.memory.buffer as ArrayBuffer;
    const { graph, nodeCapacity: n, d } = this;
    this.rawView = new Float32Array(buffer, this.threadRegions[0]!.raw, d);
    this.views = {
      blocks: new Uint8Array(buffer, graph.blocks, n * this.blockBytes),
      words: new Uint32Array(buffer, graph.blocks, (n * this.blockBytes) / 4),
      terms: new Float32Array(buffer, graph.terms, this.shape.storage === 'int8' ? n : 0),
      quant: new Float32Array(buffer, graph.quant, 2 * d),
      upperOffset: new Uint32Array(buffer, graph.upperOffset, n),
      upper: new Uint32Array(buffer, graph.upperRegion, this.upperCapacity),
      deleted: new Uint8Array(buffer, graph.deleted, n),
    };
  }

  reserve(nodes: number, upper: number): void {
    if (nodes <= this.nodeCapacity && upper <= this.upperCapacity) return;
    this.place(Math.max(nodes, this.nodeCapacity), Math.max(upper, this.upperCapacity));
  }

  private ensureTail(change: Partial<TailShape>): void {
    const shape = this.tailShape;
    const next = {
      ef: Math.max(shape.ef, change.ef ?? 0),
      traceCap: Math.max(shape.traceCap, change.traceCap ?? 0),
      threads: Math.max(shape.threads, change.threads ?? 0),
      batchJobs: Math.max(shape.batchJobs, change.batchJobs ?? 0),
      batchWords: Math.max(shape.batchWords, change.batchWords ?? 0),
    };
    if (
      next.ef === shape.ef &&
      next.traceCap === shape.traceCap &&
      next.threads === shape.threads &&
      next.batchJobs === shape.batchJobs &&
      next.batchWords === shape.batchWords
    ) {
      return;
    }
    this.layTail(next);
  }

  blocks(): Uint8Array {
    return this.views.blocks;
  }
  words(): Uint32Array {
    return this.views.words;
  }
  terms(): Float32Array {
    return this.views.terms;
  }
  quantizer(): Float32Array {
    return this.views.quant;
  }
  upperOffset(): Uint32Array {
    return this.views.upperOffset;
  }
  upper(): Uint32Array {
    return this.views.upper;
  }
  deleted(): Uint8Array {
    return this.views.deleted;
  }

  insert(
    node: number,
    level: number,
    entry: number,
    maxLevel: number,
    efConstruction: number,
    anyDeleted: boolean,
  ): void {
    this.ensureTail({ ef: efConstruction });
    this.exports.graphInsert(
      node,
      level,
      entry,
      maxLevel,
      efConstruction,
      anyDeleted ? 1 : 0,
      this.threadRegions[0]!.insertOut,
    );
  }

  search(query: Float32Array, ef: number, entry: number, maxLevel: number, anyDeleted: boolean): number {
    this.ensureTail({ ef });
    this.rawView.set(query);
    this.exports.graphPrepareQuery(0, this.threadRegions[0]!.raw);
    return this.exports.graphSearch(ef, entry, maxLevel, anyDeleted ? 1 : 0);
  }

  resultNodes(found: number): Uint32Array {
    return new Uint32Array(this.memory.buffer, this.threadRegions[0]!.resN, found);
  }

  resultDistances(found: number): Float32Array {
    return new Float32Array(this.memory.buffer, this.threadRegions[0]!.resD, found);
  }

  repair(node: number, level: number, efConstruction: number): number {
    this.ensureTail({ ef: efConstruction });
    return this.exports.graphRepair(node, level, efConstruction);
  }

  distance(query: Float32Array, node: number): number {
    this.rawView.set(query);
    this.exports.graphPrepareQuery(0, this.threadRegions[0]!.raw);
    return this.exports.graphDistance(0, node);
  }

  nodeDistance(from: number, to: number): number {
    this.exports.graphPrepareRow(0, from);
    return this.exports.graphDistance(0, to);
  }

  startTrace(capacity: number): void {
    this.tracing = true;
    this.ensureTail({ traceCap: capacity });
    this.exports.graphTrace(this.threadRegions[0]!.trace, capacity);
  }

  endTrace(): GraphTrace {
    this.tracing = false;
    const count = this.exports.graphTrace(0, 0);
    const kept = Math.min(count, this.tailShape.traceCap);
    const buffer = this.memory.buffer as ArrayBuffer;
    const at = this.threadRegions[0]!.trace;
    const records = new Uint32Array(buffer, at, kept * 4);
    const distances = new Float32Array(buffer, at, kept * 4);
    const trace = {
      count,
      levels: new Uint8Array(kept),
      kinds: new Uint8Array(kept),
      from: new Uint32Array(kept),
      to: new Uint32Array(kept),
      distances: new Float32Array(kept),
    };
    for (let i = 0; i < kept; i++) {
      const head = records[i * 4]!;
      trace.levels[i] = head >>> 8;
      trace.kinds[i] = head & 0xff;
      trace.from[i] = records[i * 4 + 1]!;
      trace.to[i] = records[i * 4 + 2]!;
      trace.distances[i] = distances[i * 4 + 3]!;
    }
    return trace;
  }

  /** Present when the graph lives in shared memory: then threads can share its builds. */
  get shared(): SharedGraph | undefined {
    if (!this.sharedModule) return undefined;
    const graph = this;
    return {
      get memory() {
        return graph.memory;
      },
      module: this.sharedModule,
      get version() {
        return graph.version;
      },
      prepare(threads: number, jobs: number, words: number, efConstruction: number) {
        graph.ensureTail({ threads, batchJobs: jobs, batchWords: words, ef: efConstruction });
        return {
          descriptors: graph.threadRegions.slice(0, threads).map((r) => r.desc),
          jobs: graph.batch.jobs,
          outputs: graph.batch.outputs,
        };
      },
      jobs(count: number) {
        return new Uint32Array(graph.memory.buffer as ArrayBuffer, graph.batch.jobs, count * 2);
      },
      candidates(node, level, entry, maxLevel, efConstruction, anyDeleted, out) {
        graph.exports.graphCandidates(node, level, entry, maxLevel, efConstruction, anyDeleted ? 1 : 0, out);
      },
      link(node, level, maxLevel, out, batchFirst, efConstruction) {
        graph.exports.graphLink(node, level, maxLevel, out, batchFirst, graph.batch.jobs, efConstruction);
      },
    };
  }

  dispose(): void {
    // The instance and its memory go with this object; nothing is shared to give back.
  }
}
