import { float16Table } from '../float16.ts';
import {
  blockLayout,
  candidateCapacity,
  TRACE_ACCEPT,
  TRACE_ENTRY,
  TRACE_EXPAND,
  TRACE_REJECT,
} from './graph.ts';
import type { GraphKernel, GraphShape, GraphTrace, Kernels } from './types.ts';

/** Slots 0 and 1 hold an insertion's query and a neighbour; the heuristic's kept nodes follow. */
const KEPT_SLOT = 2;

/**
 * A prepared query: f32 data (a copy, or for float32 rows the row itself) at `offset`, and a base; an
 * int8 row prepared as a query has integer weights (the kernels' i16), each unit standing for `unit`
 * (0: f32 weights, a user's query).
 */
interface Slot {
  data: Float32Array;
  offset: number;
  base: number;
  unit: number;
  /** The slot's own buffer (data points at a row instead for float32 rows). */
  readonly own: Float32Array;
}

/**
 * The HNSW graph kernel in plain TypeScript: the fallback where WebAssembly SIMD is missing, and the
 * tests' oracle. The same algorithm, step for step, as the graph functions of assembly/kernels.ts.
 */
export class JsGraph implements GraphKernel {
  nodeCapacity = 0;
  upperCapacity = 0;
  readonly blockBytes: number;
  readonly linkOffset: number;
  private readonly d: number;
  private readonly m0: number;
  /** Element strides of a block in the f32 / u16 / u32 views, and where the links start in words. */
  private readonly f32Stride: number;
  private readonly u16Stride: number;
  private readonly wordStride: number;
  private readonly linkWord: number;
  private bytes = new Uint8Array(0);
  private f32 = new Float32Array(0);
  private u16 = new Uint16Array(0);
  private u32 = new Uint32Array(0);
  private termsArray = new Float32Array(0);
  private readonly quant: Float32Array;
  private offsets = new Uint32Array(0);
  private upperLinks = new Uint32Array(0);
  private tombstones = new Uint8Array(0);
  private visits = new Uint16Array(0);
  private tag = 0;
  private readonly slots: Slot[];
  private candD = new Float32Array(0);
  private candN = new Uint32Array(0);
  private candSize = 0;
  private resD = new Float32Array(0);
  private resN = new Uint32Array(0);
  private resSize = 0;
  private readonly selD: Float32Array;
  private readonly selN: Uint32Array;
  private readonly listD: Float32Array;
  private readonly listN: Uint32Array;
  private readonly gather: Uint32Array;
  private greedyDist = 0;
  private traceCap = 0;
  private traceCount = 0;
  private traceRecords = new Uint32Array(0);
  private traceDistances = new Float32Array(0);

  constructor(
    readonly owner: Kernels,
    readonly shape: GraphShape,
    nodes: number,
    upper: number,
  ) {
    this.d = shape.dimension;
    this.m0 = 2 * shape.m;
    const { blockBytes, linkOffset } = blockLayout(shape);
    this.blockBytes = blockBytes;
    this.linkOffset = linkOffset;
    this.f32Stride = blockBytes / 4;
    this.u16Stride = blockBytes / 2;
    this.wordStride = blockBytes / 4;
    this.linkWord = linkOffset / 4;
    this.quant = new Float32Array(2 * this.d);
    this.slots = Array.from({ length: KEPT_SLOT + this.m0 }, () => {
      const own = new Float32Array(this.d);
      return { data: own, offset: 0, base: 0, unit: 1, own };
    });
    this.selD = new Float32Array(2 * (this.m0 + 2));
    this.selN = new Uint32Array(2 * (this.m0 + 2));
    this.listD = new Float32Array(this.m0 + 2);
    this.listN = new Uint32Array(this.m0 + 2);
    this.gather = new Uint32Array(this.m0);
    this.reserve(nodes, upper);
  }

  reserve(nodes: number, upper: number): void {
    if (nodes > this.nodeCapacity) {
      const n = nodes;
      const bytes = new Uint8Array(n * this.blockBytes);
      bytes.set(this.bytes);
      this.bytes = bytes;
      this.f32 = new Float32Array(bytes.buffer);
      this.u16 = new Uint16Array(bytes.buffer);
      this.u32 = new Uint32Array(bytes.buffer);
      this.termsArray = grown(this.termsArray, this.shape.storage === 'int8' ? n : 0, Float32Array);
      this.offsets = grown(this.offsets, n, Uint32Array);
      this.tombstones = grown(this.tombstones, n, Uint8Array);
      this.visits = new Uint16Array(n);
      this.tag = 0;
      this.nodeCapacity = n;
    }
    if (upper > this.upperCapacity) {
      this.upperLinks = grown(this.upperLinks, upper, Uint32Array);
      this.upperCapacity = upper;
    }
  }

  blocks(): Uint8Array {
    return this.bytes;
  }
  words(): Uint32Array {
    return this.u32;
  }
  terms(): Float32Array {
    return this.termsArray;
  }
  quantizer(): Float32Array {
    return this.quant;
  }
  upperOffset(): Uint32Array {
    return this.offsets;
  }
  upper(): Uint32Array {
    return this.upperLinks;
  }
  deleted(): Uint8Array {
    return this.tombstones;
  }

  private ensureScratch(ef: number): void {
    if (this.resD.length >= ef + 1) return;
    this.resD = new Float32Array(ef + 1);
    this.resN = new Uint32Array(ef + 1);
    const cap = candidateCapacity(ef, this.shape.m);
    this.candD = new Float32Array(cap);
    this.candN = new Uint32Array(cap);
  }

  private trace(kind: number, level: number, from: number, to: number, d: number): void {
    if (this.traceCount < this.traceCap) {
      const at = this.traceCount * 4;
      this.traceRecords[at] = (level << 8) | kind;
      this.traceRecords[at + 1] = from;
      this.traceRecords[at + 2] = to;
      this.traceDistances[this.traceCount] = d;
    }
    this.traceCount++;
  }

  startTrace(capacity: number): void {
    this.traceCap = capacity;
    this.traceCount = 0;
    this.traceRecords = new Uint32Array(capacity * 4);
    this.traceDistances = new Float32Array(capacity);
  }

  endTrace(): GraphTrace {
    const count = this.traceCount;
    const kept = Math.min(count, this.traceCap);
    const trace = {
      count,
      levels: new Uint8Array(kept),
      kinds: new Uint8Array(kept),
      from: new Uint32Array(kept),
      to: new Uint32Array(kept),
      distances: this.traceDistances.slice(0, kept),
    };
    for (let i = 0; i < kept; i++) {
      const head = this.traceRecords[i * 4]!;
      trace.levels[i] = head >>> 8;
      trace.kinds[i] = head & 0xff;
      trace.from[i] = this.traceRecords[i * 4 + 1]!;
      trace.to[i] = this.traceRecords[i * 4 + 2]!;
    }
    this.traceCap = 0;
    this.traceCount = 0;
    return trace;
  }

  /** Where node's links on `level` start in the array `linksArray(level)` (the count first). */
  private linksStart(node: number, level: number): number {
    if (level === 0) return node * this.wordStride + this.linkWord;
    return this.offsets[node]! + (level - 1) * (this.shape.m + 1);
  }

  private linksArray(level: number): Uint32Array {
    return level === 0 ? this.u32 : this.upperLinks;
  }

  /** As the WebAssembly kernel computes it: rounded to f32. */
  private dist(slot: Slot, node: number): number {
    return Math.fround(this.exactDist(slot, node));
  }

  private exactDist(slot: Slot, node: number): number {
    const d = this.d;
    const q = slot.data;
    const qo = slot.offset;
    const dot = this.shape.dot;
    const storage = this.shape.storage;
    if (storage === 'float32') {
      const x = this.f32;
      const xo = node * this.f32Stride;
      return dot ? -dotRows(q, qo, x, xo, d) : l2Rows(q, qo, x, xo, d);
    }
    if (storage === 'float16') {
      const x = this.u16;
      const xo = node * this.u16Stride;
      const t = float16Table;
      let s = 0;
      if (dot) for (let j = 0; j < d; j++) s -= q[qo + j]! * t[x[xo + j]!]!;
      else
        for (let j = 0; j < d; j++) {
          const v = q[qo + j]! - t[x[xo + j]!]!;
          s += v * v;
        }
      return s;
    }
    const x = this.bytes;
    const xo = node * this.blockBytes;
    let s = 0;
    for (let j = 0; j < d; j++) s += q[qo + j]! * x[xo + j]!;
    if (slot.unit !== 0) s = Math.fround(Math.fround(s) * slot.unit);
    return dot ? slot.base - s : slot.base - 2 * s + this.termsArray[node]!;
  }

  private prepareQuery(slot: Slot, src: Float32Array): void {
    const d = this.d;
    slot.data = slot.own;
    slot.offset = 0;
    const data = slot.data;
    if (this.shape.storage !== 'int8') {
      data.set(src);
      return;
    }
    const lo = this.quant;
    let base = 0;
    for (let j = 0; j < d; j++) {
      const q = src[j]!;
      const scale = lo[d + j]!;
      if (this.shape.dot) {
        data[j] = q * scale;
        base -= q * lo[j]!;
      } else {
        const r = q - lo[j]!;
        data[j] = r * scale;
        base += r * r;
      }
    }
    slot.base = base;
    slot.unit = 0;
  }

  private prepareRow(slot: Slot, node: number): void {
    const d = this.d;
    if (this.shape.storage === 'float32') {
      slot.data = this.f32;
      slot.offset = node * this.f32Stride;
      return;
    }
    slot.data = slot.own;
    slot.offset = 0;
    const data = slot.data;
    if (this.shape.storage === 'float16') {
      const t = float16Table;
      for (let j = 0; j < d; j++) data[j] = t[this.u16[node * this.u16Stride + j]!]!;
      return;
    }
    const q = this.quant;
    const at = node * this.blockBytes;
    if (!this.shape.dot) {
      // As the kernels do: w_j = scale_j² c_j on a unit common to every row, in f32 steps.
      const f = Math.fround;
      let largest = 0;
      for (let j = 0; j < d; j++) largest = Math.max(largest, f(q[d + j]! * q[d + j]!));
      const unit = largest > 0 ? f(f(largest * 255) / weightLimit(d)) : 1;
      const inverse = f(1 / unit);
      for (let j = 0; j < d; j++) {
        data[j] = roundHalfEven(f(f(f(q[d + j]! * q[d + j]!) * inverse) * this.bytes[at + j]!));
      }
      slot.base = this.termsArray[node]!;
      slot.unit = unit;
      return;
    }
    let base = 0;
    for (let j = 0; j < d; j++) {
      const scale = q[d + j]!;
      const value = q[j]! + scale * this.bytes[at + j]!;
      data[j] = value * scale;
      base -= value * q[j]!;
    }
    slot.base = base;
    slot.unit = weightsToIntegers(data, d);
  }

  distance(query: Float32Array, node: number): number {
    const slot = this.slots[0]!;
    this.prepareQuery(slot, query);
    return this.dist(slot, node);
  }

  nodeDistance(from: number, to: number): number {
    const slot = this.slots[0]!;
    this.prepareRow(slot, from);
    return this.dist(slot, to);
  }

  private newTag(): number {
    this.tag++;
    if (this.tag > 0xffff) {
      this.visits.fill(0);
      this.tag = 1;
    }
    return this.tag;
  }

  private candPush(d: number, n: number): void {
    const D = this.candD;
    const N = this.candN;
    let i = this.candSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (D[parent]! <= d) break;
      D[i] = D[parent]!;
      N[i] = N[parent]!;
      i = parent;
    }
    D[i] = d;
    N[i] = n;
  }

  private candPop(): void {
    const D = this.candD;
    const N = this.candN;
    const size = --this.candSize;
    if (size === 0) return;
    const d = D[size]!;
    const n = N[size]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      let cd = D[child]!;
      if (child + 1 < size && D[child + 1]! < cd) {
        child++;
        cd = D[child]!;
      }
      if (cd >= d) break;
      D[i] = cd;
      N[i] = N[child]!;
      i = child;
    }
    D[i] = d;
    N[i] = n;
  }

  private candPrune(bound: number): void {
    const size = this.candSize;
    this.candSize = 0;
    for (let i = 0; i < size; i++) {
      const d = this.candD[i]!;
      if (d < bound) this.candPush(d, this.candN[i]!);
    }
  }

  private resPush(d: number, n: number): void {
    const D = this.resD;
    const N = this.resN;
    let i = this.resSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (D[parent]! >= d) break;
      D[i] = D[parent]!;
      N[i] = N[parent]!;
      i = parent;
    }
    D[i] = d;
    N[i] = n;
  }

  private resSiftDown(size: number, d: number, n: number): void {
    const D = this.resD;
    const N = this.resN;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      let cd = D[child]!;
      if (child + 1 < size && D[child + 1]! > cd) {
        child++;
        cd = D[child]!;
      }
      if (cd <= d) break;
      D[i] = cd;
      N[i] = N[child]!;
      i = child;
    }
    D[i] = d;
    N[i] = n;
  }

  private resSort(): number {
    const n = this.resSize;
    for (let end = n - 1; end > 0; end--) {
      const d = this.resD[end]!;
      const node = this.resN[end]!;
      this.resD[end] = this.resD[0]!;
      this.resN[end] = this.resN[0]!;
      this.resSiftDown(end, d, node);
    }
    return n;
  }

  private greedy(slot: Slot, node: number, nodeDist: number, level: number): number {
    const tracing = this.traceCap > 0;
    if (tracing) this.trace(TRACE_ENTRY, level, node, node, nodeDist);
    const links = this.linksArray(level);
    let changed = true;
    while (changed) {
      changed = false;
      const from = node;
      if (tracing) this.trace(TRACE_EXPAND, level, from, from, nodeDist);
      const start = this.linksStart(from, level);
      const count = links[start]!;
      for (let i = 1; i <= count; i++) {
        const n = links[start + i]!;
        const d = this.dist(slot, n);
        if (d < nodeDist) {
          if (tracing) this.trace(TRACE_ACCEPT, level, from, n, d);
          nodeDist = d;
          node = n;
          changed = true;
        } else if (tracing) this.trace(TRACE_REJECT, level, from, n, d);
      }
    }
    this.greedyDist = nodeDist;
    return node;
  }

  private searchLayer(
    slot: Slot,
    entry: number,
    entryDist: number,
    ef: number,
    level: number,
    anyDeleted: boolean,
  ): number {
    this.ensureScratch(ef);
    const tracing = this.traceCap > 0;
    const tag = this.newTag();
    const visits = this.visits;
    const deleted = this.tombstones;
    const links = this.linksArray(level);
    const gather = this.gather;
    const cap = this.candD.length;
    visits[entry] = tag;
    this.candSize = 0;
    this.resSize = 0;
    if (tracing) this.trace(TRACE_ENTRY, level, entry, entry, entryDist);
    this.candPush(entryDist, entry);
    let bound = Number.POSITIVE_INFINITY;
    if (deleted[entry] === 0) {
      this.resPush(entryDist, entry);
      bound = entryDist;
    }
    while (this.candSize > 0) {
      const cd = this.candD[0]!;
      if (cd > bound && (this.resSize >= ef || !anyDeleted)) break;
      const c = this.candN[0]!;
      this.candPop();
      if (tracing) this.trace(TRACE_EXPAND, level, c, c, cd);
      const start = this.linksStart(c, level);
      const count = links[start]!;
      let m = 0;
      for (let i = 1; i <= count; i++) {
        const n = links[start + i]!;
        if (visits[n] !== tag) {
          visits[n] = tag;
          gather[m++] = n;
        }
      }
      if (this.candSize + m > cap) this.candPrune(bound);
      for (let i = 0; i < m; i++) {
        const n = gather[i]!;
        const d = this.dist(slot, n);
        if (this.resSize < ef || d < bound) {
          if (tracing) this.trace(TRACE_ACCEPT, level, c, n, d);
          if (this.candSize < cap) this.candPush(d, n);
          if (deleted[n] === 0) {
            if (this.resSize < ef) this.resPush(d, n);
            else this.resSiftDown(this.resSize, d, n);
            bound = this.resD[0]!;
          }
        } else if (tracing) this.trace(TRACE_REJECT, level, c, n, d);
      }
    }
    return this.resSort();
  }

  private heuristic(
    inD: Float32Array,
    inN: Uint32Array,
    count: number,
    max: number,
    outD: Float32Array,
    outN: Uint32Array,
    out: number,
    skip: number,
  ): number {
    let kept = 0;
    if (count < max) {
      for (let i = 0; i < count; i++) {
        const n = inN[i]!;
        if (n === skip) continue;
        outD[out + kept] = inD[i]!;
        outN[out + kept] = n;
        kept++;
      }
      return kept;
    }
    // Kept nodes are prepared (once each, when first compared), not candidates: fewer preparations.
    let prepared = 0;
    for (let i = 0; i < count && kept < max; i++) {
      const e = inN[i]!;
      if (e === skip) continue;
      const de = inD[i]!;
      let good = true;
      for (let j = 0; j < kept; j++) {
        const slot = this.slots[KEPT_SLOT + j]!;
        if (j === prepared) {
          this.prepareRow(slot, outN[out + j]!);
          prepared++;
        }
        if (this.dist(slot, e) < de) {
          good = false;
          break;
        }
      }
      if (good) {
        outD[out + kept] = de;
        outN[out + kept] = e;
        kept++;
      }
    }
    return kept;
  }

  private connect(e: number, q: number, dq: number, level: number): void {
    const max = level === 0 ? this.m0 : this.shape.m;
    const links = this.linksArray(level);
    const start = this.linksStart(e, level);
    const count = links[start]!;
    for (let i = 1; i <= count; i++) if (links[start + i] === q) return;
    if (count < max) {
      links[start + count + 1] = q;
      links[start] = count + 1;
      return;
    }
    const slot = this.slots[1]!;
    this.prepareRow(slot, e);
    const D = this.listD;
    const N = this.listN;
    let size = 0;
    for (let i = 0; i <= count; i++) {
      const n = i === count ? q : links[start + i + 1]!;
      const d = i === count ? dq : this.dist(slot, n);
      let j = size++;
      while (j > 0 && D[j - 1]! > d) {
        D[j] = D[j - 1]!;
        N[j] = N[j - 1]!;
        j--;
      }
      D[j] = d;
      N[j] = n;
    }
    const out = this.m0 + 2;
    const kept = this.heuristic(D, N, size, max, this.selD, this.selN, out, e);
    for (let i = 0; i < kept; i++) links[start + i + 1] = this.selN[out + i]!;
    links[start] = kept;
  }

  insert(
    q: number,
    level: number,
    entry: number,
    maxLevel: number,
    efConstruction: number,
    anyDeleted: boolean,
  ): void {
    this.ensureScratch(efConstruction);
    const slot = this.slots[0]!;
    this.prepareRow(slot, q);
    let node = entry;
    let nodeDist = this.dist(slot, node);
    for (let lc = maxLevel; lc > level; lc--) {
      node = this.greedy(slot, node, nodeDist, lc);
      nodeDist = this.greedyDist;
    }
    for (let lc = Math.min(level, maxLevel); lc >= 0; lc--) {
      const found = this.searchLayer(slot, node, nodeDist, efConstruction, lc, anyDeleted);
      const kept = this.heuristic(this.resD, this.resN, found, this.shape.m, this.selD, this.selN, 0, q);
      const links = this.linksArray(lc);
      const start = this.linksStart(q, lc);
      for (let i = 0; i < kept; i++) links[start + i + 1] = this.selN[i]!;
      links[start] = kept;
      for (let i = 0; i < kept; i++) this.connect(this.selN[i]!, q, this.selD[i]!, lc);
      if (kept > 0) {
        node = this.selN[0]!;
        nodeDist = this.selD[0]!;
      }
    }
  }

  search(query: Float32Array, ef: number, entry: number, maxLevel: number, anyDeleted: boolean): number {
    const slot = this.slots[0]!;
    this.prepareQuery(slot, query);
    let node = entry;
    let nodeDist = this.dist(slot, node);
    for (let lc = maxLevel; lc > 0; lc--) {
      node = this.greedy(slot, node, nodeDist, lc);
      nodeDist = this.greedyDist;
    }
    return this.searchLayer(slot, node, nodeDist, ef, 0, anyDeleted);
  }

  resultNodes(found: number): Uint32Array {
    return this.resN.subarray(0, found);
  }

  resultDistances(found: number): Float32Array {
    return this.resD.subarray(0, found);
  }

  repair(v: number, level: number, efConstruction: number): number {
    this.ensureScratch(efConstruction);
    const max = level === 0 ? this.m0 : this.shape.m;
    const links = this.linksArray(level);
    const start = this.linksStart(v, level);
    const count = links[start]!;
    const slot = this.slots[1]!;
    this.prepareRow(slot, v);
    const tag = this.newTag();
    this.visits[v] = tag;
    this.resSize = 0;
    const consider = (n: number) => {
      if (this.visits[n] === tag) return;
      this.visits[n] = tag;
      const d = this.dist(slot, n);
      if (this.resSize < efConstruction) this.resPush(d, n);
      else if (d < this.resD[0]!) this.resSiftDown(this.resSize, d, n);
    };
    for (let i = 1; i <= count; i++) {
      const u = links[start + i]!;
      if (this.tombstones[u] === 0) consider(u);
      const second = this.linksStart(u, level);
      const size = links[second]!;
      for (let j = 1; j <= size; j++) {
        const w = links[second + j]!;
        if (this.tombstones[w] === 0) consider(w);
      }
    }
    const found = this.resSort();
    const kept = this.heuristic(this.resD, this.resN, found, max, this.selD, this.selN, 0, v);
    for (let i = 0; i < kept; i++) links[start + i + 1] = this.selN[i]!;
    links[start] = kept;
    for (let i = 0; i < kept; i++) this.connect(this.selN[i]!, v, this.selD[i]!, level);
    return kept;
  }

  dispose(): void {}
}

/** The largest integer weight for which the kernels' 32-bit sums cannot overflow (see dotU8I16 there). */
function weightLimit(d: number): number {
  return Math.min(32767, Math.floor(2147483647 / (1020 * Math.max(1, d >> 4))));
}

/** Rounds to the nearest integer, ties to even (as WebAssembly's nearest). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Rounds the d weights in place to the integers the WebAssembly kernels keep as i16 (the largest at
 * weightLimit); returns what one unit stands for.
 */
function weightsToIntegers(data: Float32Array, d: number): number {
  let largest = 0;
  for (let j = 0; j < d; j++) largest = Math.max(largest, Math.abs(data[j]!));
  const unit = largest > 0 ? Math.fround(largest / weightLimit(d)) : 1;
  const inverse = Math.fround(1 / unit);
  for (let j = 0; j < d; j++) data[j] = roundHalfEven(Math.fround(data[j]! * inverse));
  return unit;
}

function grown<T extends Float32Array | Uint32Array | Uint8Array>(
  old: T,
  length: number,
  type: { new (length: number): T },
): T {
  if (old.length >= length) return old;
  const next = new type(length);
  next.set(old);
  return next;
}

/** ‖q − x‖² over d values; four sums in flight. */
function l2Rows(q: Float32Array, qo: number, x: Float32Array, xo: number, d: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = 0;
  for (; j + 4 <= d; j += 4) {
    const t0 = q[qo + j]! - x[xo + j]!;
    const t1 = q[qo + j + 1]! - x[xo + j + 1]!;
    const t2 = q[qo + j + 2]! - x[xo + j + 2]!;
    const t3 = q[qo + j + 3]! - x[xo + j + 3]!;
    s0 += t0 * t0;
    s1 += t1 * t1;
    s2 += t2 * t2;
    s3 += t3 * t3;
  }
  let s = s0 + s1 + (s2 + s3);
  for (; j < d; j++) {
    const t = q[qo + j]! - x[xo + j]!;
    s += t * t;
  }
  return s;
}

function dotRows(q: Float32Array, qo: number, x: Float32Array, xo: number, d: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = 0;
  for (; j + 4 <= d; j += 4) {
    s0 += q[qo + j]! * x[xo + j]!;
    s1 += q[qo + j + 1]! * x[xo + j + 1]!;
    s2 += q[qo + j + 2]! * x[xo + j + 2]!;
    s3 += q[qo + j + 3]! * x[xo + j + 3]!;
  }
  let s = s0 + s1 + (s2 + s3);
  for (; j < d; j++) s += q[qo + j]! * x[xo + j]!;
  return s;
}
