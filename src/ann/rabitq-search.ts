import type { ScanRecorder } from './ivf.ts';
import type { RabitqKernel } from './kernels/types.ts';
import { BOUND_EPSILON, type RabitqBits, type Rotation } from './rabitq.ts';
import type { RabitqLists } from './rabitq-lists.ts';
import type { RowStore } from './row-store.ts';
import { TopK } from './topk.ts';

/** What a search needs of a trained IvfRabitqIndex. */
export interface RabitqState {
  rotation: Rotation;
  bits: RabitqBits;
  /** Kernel address of the signs (rounds × 2 × D f32). */
  signs: number;
  /** Kernel address of the rotated centroids (L × D f32). */
  centroidsAt: number;
  /**
   * Kernel address of the rotated centroids as i16 (L × D), each scaled by its own factor: centroid l
   * times centroidInverseScales[l] is the f32 one, within rounding.
   */
  centroids16At: number;
  centroidInverseScales: Float32Array;
  centroidNorms: Float32Array;
  lists: RabitqLists;
}

/** A search's shape: probes, k, and how many candidates it may re-rank. */
export interface SearchPlan {
  nprobes: number;
  k: number;
  /** Re-rank at most this many candidates (k × refineFactor; Infinity when unset; 0: none). */
  cap: number;
}

/**
 * An upper bound is trusted further than a lower one: it only shrinks the set of candidates (a wrong
 * one could drop a true neighbour of any candidate scanned, and thousands are), while the lower bound
 * decides each read.
 */
const UPPER_EPSILON = 2 * BOUND_EPSILON;

/**
 * The search of an IvfRabitqIndex, with its scratch (in the kernel's memory, and typed arrays here)
 * kept from one query to the next.
 */
export class RabitqSearcher {
  private scratchBytes = 0;
  private at = {
    query: 0,
    query16: 0,
    original: 0,
    lut: 0,
    params: 0,
    products: 0,
    row: 0,
    upper: 0,
    estimates: 0,
    found: 0,
  };
  private estimateCapacity = -1;
  private upperCapacity = -1;
  private views: { f32: Float32Array; u32: Uint32Array; u8: Uint8Array; row: Uint8Array } = {
    f32: new Float32Array(0),
    u32: new Uint32Array(0),
    u8: new Uint8Array(0),
    row: new Uint8Array(0),
  };
  private heaps = { probes: new TopK(1), top: new TopK(1) };
  private readonly candidates = {
    lower: new Float32Array(256),
    estimate: new Float32Array(256),
    list: new Uint32Array(256),
    position: new Uint32Array(256),
    order: new Uint32Array(256),
  };

  constructor(
    private readonly kernel: RabitqKernel,
    private readonly dimension: number,
    private readonly dot: boolean,
    private readonly rows: RowStore,
  ) {}

  /**
   * Room for a list's scan (estimates and what it found: six arrays of its capacity), k upper bounds and
   * everything else a query needs.
   */
  private prepare(state: RabitqState, k: number): void {
    const capacity = state.lists.maxCapacity;
    if (this.estimateCapacity < capacity || this.upperCapacity < k) {
      const { D } = state.rotation;
      const up = (n: number) => Math.ceil(n / 64) * 64;
      const L = state.lists.numPartitions;
      const parts = [
        D * 4,
        up(D * 2),
        up(this.dimension * 4),
        D * 4,
        64,
        up(L * 4),
        up(this.rows.rowBytes),
        up(k * 4),
        capacity * 12,
        capacity * 12,
      ];
      if (this.scratchBytes > 0) this.kernel.free(this.at.query, this.scratchBytes);
      this.scratchBytes = parts.reduce((a, b) => a + b, 0);
      let next = this.kernel.alloc(this.scratchBytes);
      const [query, query16, original, lut, params, products, row, upper, estimates, found] = parts.map(
        (size) => {
          const start = next;
          next += size;
          return start;
        },
      ) as [number, number, number, number, number, number, number, number, number, number];
      this.at = { query, query16, original, lut, params, products, row, upper, estimates, found };
      this.estimateCapacity = capacity;
      this.upperCapacity = k;
    }
    const u8 = this.kernel.bytes();
    if (this.views.u8.buffer !== u8.buffer || this.views.row.byteOffset !== this.at.row) {
      this.views = {
        u8,
        f32: new Float32Array(u8.buffer),
        u32: new Uint32Array(u8.buffer),
        row: new Uint8Array(u8.buffer, this.at.row, this.rows.rowBytes),
      };
    }
  }

  /** Gives back the scratch (the lists it was sized for are gone). */
  reset(): void {
    if (this.scratchBytes > 0) this.kernel.free(this.at.query, this.scratchBytes);
    this.scratchBytes = 0;
    this.estimateCapacity = -1;
    this.upperCapacity = -1;
  }

  private heapsFor(plan: SearchPlan): { probes: TopK; top: TopK } {
    const h = this.heaps;
    if (h.probes.k !== plan.nprobes) h.probes = new TopK(plan.nprobes);
    if (h.top.k !== plan.k) h.top = new TopK(plan.k);
    return h;
  }

  /**
   * One query (q: `dimension` values, normalized already for cosine): rotate it, build its table, rank
   * the partitions and scan the nprobes nearest. Each vector's one-bit estimate comes with RaBitQ's
   * error bound; with an extended code, those the one-bit bound cannot rule out get the finer estimate
   * and bound. A candidate is kept while its lower bound is below the k-th smallest upper bound seen
   * (which no true neighbour exceeds), and the kept ones are re-ranked from their full vectors in order
   * of lower bound until the next lower bound cannot beat the k-th exact distance found. Returns the k
   * best, sorted, as (internal distance, partition, position); with cap 0, the k best estimates.
   * A `recorder` (explainSearch) gets the partitions probed and every vector's one-bit estimate.
   */
  search(state: RabitqState, q: Float32Array, plan: SearchPlan, recorder?: ScanRecorder): TopK {
    this.prepare(state, plan.k);
    const { probes, top } = this.heapsFor(plan);
    const K = this.kernel;
    const at = this.at;
    const { f32, u32 } = this.views;
    const { D, P, rounds } = state.rotation;
    const L = state.lists.numPartitions;
    const dot = this.dot;
    f32.fill(0, at.query / 4, at.query / 4 + D);
    f32.set(q, at.query / 4);
    f32.set(q, at.original / 4);
    K.rotate(at.query, 1, D, P, state.signs, rounds);
    K.lut(at.query, D, at.lut, at.params);
    // The partitions are ranked by products in i16 (a third of the time of f32 at 256 dimensions, half
    // at 1,280), then the probed ones' are computed again in f32 for their estimates.
    K.quantize(at.query, 1, D, at.query16, at.params + 12);
    K.productsI16(at.query16, state.centroids16At, L, D, at.products);
    const delta = f32[at.params / 4]!;
    const offset = f32[at.params / 4 + 1]!;
    const sumQ = f32[at.params / 4 + 2]!;
    const queryScale = f32[at.params / 4 + 3]!;
    let queryNorm = 0;
    for (let j = 0; j < q.length; j++) queryNorm += q[j]! * q[j]!;
    probes.reset();
    // Once per partition (3,906 at a million): the bound is kept here, not asked of the heap each time.
    const products = at.products / 4;
    const inverse = 1 / queryScale;
    const { centroidNorms, centroidInverseScales } = state;
    let bound = Number.POSITIVE_INFINITY;
    for (let l = 0; l < L; l++) {
      const ip = f32[products + l]! * inverse * centroidInverseScales[l]!;
      const d = dot ? -ip : queryNorm + centroidNorms[l]! - 2 * ip;
      if (d < bound) {
        probes.push(d, l, 0);
        bound = probes.bound;
      }
    }
    const probed = probes.sort();
    for (let p = 0; p < probed; p++) {
      const l = probes.a[p]!;
      K.products(at.query, state.centroidsAt + l * D * 4, 1, D, at.products + 4 * p);
      const ip = f32[at.products / 4 + p]!;
      probes.distances[p] = dot ? -ip : queryNorm + state.centroidNorms[l]! - 2 * ip;
    }
    // Nearest first by the exact distances (i16 may swap near ties): the k-th upper bound tightens soonest.
    sortPairs(probes.distances, probes.a, probed);
    recorder?.probes(probes.a, probed);
    const lists = state.lists;
    const M = 1 << (state.bits - 1);
    const exBytes = state.bits > 1 ? lists.exBytes : 0;
    f32.fill(Number.POSITIVE_INFINITY, at.upper / 4, at.upper / 4 + plan.k);
    top.reset();
    const found = at.found / 4;
    let count = 0;
    for (let p = 0; p < probed; p++) {
      const l = probes.a[p]!;
      const size = lists.size(l);
      if (size === 0) continue;
      const base = probes.distances[p]!;
      const stride = lists.capacity(l);
      // ‖q'‖ = ‖P(q − c)‖: the bound's scale in this partition.
      const residual = Math.sqrt(Math.max(0, dot ? queryNorm + state.centroidNorms[l]! + 2 * base : base));
      const kept = K.scan(
        lists.codesOf(l),
        size,
        D / 4,
        at.lut,
        lists.factorsOf(l),
        stride,
        base,
        delta,
        offset,
        sumQ,
        BOUND_EPSILON * residual,
        at.estimates,
        lists.exCodesOf(l),
        exBytes,
        at.query,
        M,
        UPPER_EPSILON / BOUND_EPSILON,
        at.upper,
        plan.k,
        at.found,
      );
      recorder?.scanned(l, lists.ids(l), f32.subarray(at.estimates / 4, at.estimates / 4 + size), size);
      if (plan.cap === 0) {
        for (let j = 0; j < kept; j++) {
          const e = f32[found + stride + j]!;
          if (e < top.bound) top.push(e, l, u32[found + 2 * stride + j]!);
        }
        continue;
      }
      if (count + kept > this.candidates.lower.length) this.grow(count, count + kept);
      const c = this.candidates;
      for (let j = 0; j < kept; j++) {
        c.lower[count] = f32[found + j]!;
        c.estimate[count] = f32[found + stride + j]!;
        c.list[count] = l;
        c.position[count++] = u32[found + 2 * stride + j]!;
      }
    }
    if (plan.cap === 0) {
      top.sort();
      return top;
    }
    this.rerank(state, count, f32[at.upper / 4 + plan.k - 1]!, plan.cap, top);
    top.sort();
    return top;
  }

  /**
   * Reads the candidates still below `threshold` (at most `cap`, by estimate) in order of lower bound,
   * until the next one's bound cannot beat the k-th exact distance in `top`. The order comes from a
   * binary min-heap: a few of the candidates are read, so sorting them all would be mostly wasted.
   */
  private rerank(state: RabitqState, count: number, threshold: number, cap: number, top: TopK): void {
    const c = this.candidates;
    const lower = c.lower;
    let kept = 0;
    for (let j = 0; j < count; j++) if (lower[j]! < threshold) c.order[kept++] = j;
    let heap = c.order;
    if (kept > cap) {
      heap = c.order.subarray(0, kept).sort((a, b) => c.estimate[a]! - c.estimate[b]!);
      kept = cap;
    }
    for (let at = (kept >> 1) - 1; at >= 0; at--) siftDown(heap, lower, at, kept);
    const f16 = this.rows.storage === 'float16';
    const { row } = this.views;
    while (kept > 0) {
      const j = heap[0]!;
      if (lower[j]! >= top.bound) break;
      heap[0] = heap[--kept]!;
      siftDown(heap, lower, 0, kept);
      const l = c.list[j]!;
      const i = c.position[j]!;
      this.rows.read(state.lists.rowAt(l, i), row);
      top.push(this.kernel.rowDistance(this.at.original, this.at.row, this.dimension, f16, this.dot), l, i);
    }
  }

  /** Room for `needed` candidates (at least twice as much), keeping the first `count`. */
  private grow(count: number, needed: number): void {
    const c = this.candidates;
    const size = Math.max(needed, 2 * c.lower.length);
    const keep = <T extends Float32Array | Uint32Array>(from: T, make: (n: number) => T): T => {
      const to = make(size);
      to.set(from.subarray(0, count));
      return to;
    };
    c.lower = keep(c.lower, (n) => new Float32Array(n));
    c.estimate = keep(c.estimate, (n) => new Float32Array(n));
    c.list = keep(c.list, (n) => new Uint32Array(n));
    c.position = keep(c.position, (n) => new Uint32Array(n));
    c.order = new Uint32Array(size);
  }
}

/** Moves heap[at] down to its place in the min-heap of `size` indices keyed by key[index]. */
function siftDown(heap: Uint32Array, key: Float32Array, at: number, size: number): void {
  const moving = heap[at]!;
  const value = key[moving]!;
  for (;;) {
    let child = 2 * at + 1;
    if (child >= size) break;
    if (child + 1 < size && key[heap[child + 1]!]! < key[heap[child]!]!) child++;
    if (key[heap[child]!]! >= value) break;
    heap[at] = heap[child]!;
    at = child;
  }
  heap[at] = moving;
}

/** Sorts the first n (key, value) pairs by key, in place: insertion, as they come nearly sorted. */
function sortPairs(keys: Float32Array, values: Uint32Array, n: number): void {
  for (let i = 1; i < n; i++) {
    const key = keys[i]!;
    const value = values[i]!;
    let j = i - 1;
    for (; j >= 0 && keys[j]! > key; j--) {
      keys[j + 1] = keys[j]!;
      values[j + 1] = values[j]!;
    }
    keys[j + 1] = key;
    values[j + 1] = value;
  }
}
