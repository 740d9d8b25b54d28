import type { IvfExplanation } from '../ann/ivf.ts';
import { IvfFlatIndex } from '../ann/ivf-flat.ts';
import { IvfPqIndex } from '../ann/ivf-pq.ts';
import { IvfRabitqIndex } from '../ann/ivf-rabitq.ts';
import { DEFAULT_NPROBES, type VectorIndex } from '../ann/vector-index.ts';
import {
  type Layout,
  type LayoutFunction,
  layoutVectors,
  rankSpread,
  roundCoordinate,
  roundDistance,
  separate,
} from './layout.ts';
import { permutation, sampleKeeping } from './sample.ts';
import {
  EXPLORE_CAPS,
  type ExploreImage,
  type ExploreResult,
  type IvfTrace,
  type LabelTable,
} from './types.ts';

/** Seed of every layout and sample of the IVF views: the same collection draws the same picture. */
export const EXPLORE_SEED = 1;

export type IvfIndex = IvfPqIndex | IvfFlatIndex | IvfRabitqIndex;

export function isIvfIndex(index: VectorIndex | undefined): index is IvfIndex {
  return index instanceof IvfPqIndex || index instanceof IvfFlatIndex || index instanceof IvfRabitqIndex;
}

/** The partitions an index probes unless told: IVF-RaBitQ's own rule, else 16 (or all, when fewer). */
export function defaultProbesOf(index: IvfIndex): number {
  return index instanceof IvfRabitqIndex
    ? IvfRabitqIndex.defaultProbes(index.numPartitions)
    : Math.min(index.numPartitions, DEFAULT_NPROBES);
}

const coarseLayouts = new WeakMap<IvfIndex, Promise<Layout>>();
/**
 * How the partition map is evened out (rankSpread, then separate): Voronoi cells of clumped centroids are
 * slivers one cannot point at. Cells then are at least about this fraction of an even share of the map.
 */
const COARSE_SPREAD = 0.5;
const COARSE_SEPARATION = 0.8;

/**
 * The 2-D map of an index's partitions: a layout of its centroids (UMAP, or PCA for a few), evened out,
 * made once per index (a retrained collection has a new index, hence a new map). `layoutWith` lays them
 * out (default layoutVectors on this thread).
 */
export function coarseLayout(index: IvfIndex, layoutWith: LayoutFunction = layoutVectors): Promise<Layout> {
  let layout = coarseLayouts.get(index);
  if (!layout) {
    const centroids = index.centroids();
    const n = index.numPartitions;
    layout = layoutWith(centroids, n, centroids.length / n, EXPLORE_SEED).then((made) => ({
      ...made,
      points: separate(rankSpread(made.points, COARSE_SPREAD).points, COARSE_SEPARATION / Math.sqrt(n)),
    }));
    coarseLayouts.set(index, layout);
    layout.catch(() => coarseLayouts.delete(index));
  }
  return layout;
}

/**
 * Where the query goes on the partition map: a little way from the nearest partition's centroid towards
 * the next nearest ones (weighted by closeness), so it sits among them; on the centroid itself when that
 * step would leave the nearest partition's Voronoi cell.
 */
export function queryPlace(
  points: Float32Array,
  distances: Float32Array,
  probed: Uint32Array,
): { x: number; y: number } {
  const order =
    probed.length > 0
      ? Array.from(probed)
      : [...distances.keys()].sort((a, b) => distances[a]! - distances[b]!);
  const nearest = order[0];
  if (nearest === undefined) return { x: 0.5, y: 0.5 };
  const px = points[nearest * 2]!;
  const py = points[nearest * 2 + 1]!;
  let wx = 0;
  let wy = 0;
  let total = 0;
  for (const l of order.slice(0, 3)) {
    const w = 1 / (1e-6 + Math.max(0, distances[l]!));
    wx += w * points[l * 2]!;
    wy += w * points[l * 2 + 1]!;
    total += w;
  }
  const x = px + 0.3 * (wx / total - px);
  const y = py + 0.3 * (wy / total - py);
  const n = points.length / 2;
  let closest = nearest;
  let best = Number.POSITIVE_INFINITY;
  for (let l = 0; l < n; l++) {
    const d = (points[l * 2]! - x) ** 2 + (points[l * 2 + 1]! - y) ** 2;
    if (d < best) {
      best = d;
      closest = l;
    }
  }
  return closest === nearest ? { x, y } : { x: px, y: py };
}

/**
 * Which of the fine step's candidates to send: all of them up to `cap`, else the results and a seeded
 * sample of the others. Positions into the explanation's arrays, ascending (probe order kept).
 */
export function candidatesToSend(
  fine: IvfExplanation['fine'],
  cap: number = EXPLORE_CAPS.candidates,
): Uint32Array {
  const results = new Set(fine.results.ids);
  return sampleKeeping(fine.ids.length, cap, (i) => results.has(fine.ids[i]!), EXPLORE_SEED);
}

/** Labels of many ids as a table: each distinct label text once. */
export function labelTable(
  ids: ArrayLike<number>,
  labelsOf: (id: number) => string[] | undefined,
): LabelTable {
  const names: string[] = [];
  const index = new Map<string, number>();
  const of: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const labels = labelsOf(ids[i]!);
    if (!labels) {
      of.push(-1);
      continue;
    }
    const text = labels.join(', ');
    let at = index.get(text);
    if (at === undefined) {
      at = names.length;
      names.push(text);
      index.set(text, at);
    }
    of.push(at);
  }
  return { names, of };
}

export interface IvfTraceInput {
  collection: string;
  source: IvfTrace['source'];
  kind: string;
  size: number;
  k: number;
  nprobes: number;
  timeMs: number;
  thumbnailBase: string;
  fineDistances: IvfTrace['fineDistances'];
  explanation: IvfExplanation;
  sizes: Uint32Array;
  layout: Layout;
  /** Positions of the candidates to send (candidatesToSend). */
  shown: Uint32Array;
  labelsOf: (id: number) => string[] | undefined;
  /** An image's links and labels; undefined when it left the collection since the index was read. */
  imageOf: (id: number) => ExploreImage | undefined;
}

/** The answer of the IVF trace (coarse and fine steps) from what the index explained. */
export function ivfTrace(input: IvfTraceInput): IvfTrace {
  const { explanation, layout, sizes, shown } = input;
  const { coarse, fine } = explanation;
  const numPartitions = sizes.length;
  const x: number[] = [];
  const y: number[] = [];
  for (let l = 0; l < numPartitions; l++) {
    x.push(roundCoordinate(layout.points[l * 2]!));
    y.push(roundCoordinate(layout.points[l * 2 + 1]!));
  }
  const place = queryPlace(layout.points, coarse.distances, coarse.probed);
  const ids = Array.from(shown, (i) => fine.ids[i]!);
  const partitionOf = new Map<number, number>();
  for (let i = 0; i < fine.ids.length; i++) partitionOf.set(fine.ids[i]!, fine.partitions[i]!);
  return {
    state: 'ready',
    collection: input.collection,
    source: input.source,
    kind: input.kind,
    size: input.size,
    k: input.k,
    nprobes: input.nprobes,
    timeMs: input.timeMs,
    fineDistances: input.fineDistances,
    thumbnailBase: input.thumbnailBase,
    coarse: {
      numPartitions,
      layout: { method: layout.method, seed: layout.seed },
      x,
      y,
      sizes: Array.from(sizes),
      distances: Array.from(coarse.distances, roundDistance),
      query: { x: roundCoordinate(place.x), y: roundCoordinate(place.y) },
      probes: Array.from(coarse.probed, (partition) => ({
        partition,
        distance: roundDistance(coarse.distances[partition]!),
        size: sizes[partition]!,
      })),
    },
    fine: {
      total: fine.ids.length,
      shown: shown.length,
      omitted: fine.ids.length - shown.length,
      ids,
      partitions: Array.from(shown, (i) => fine.partitions[i]!),
      distances: Array.from(shown, (i) => roundDistance(fine.distances[i]!)),
      labels: labelTable(ids, input.labelsOf),
    },
    results: results(fine.results, input.imageOf, (id) => partitionOf.get(id)),
  };
}

/** The k results as the page shows them; one that left the collection meanwhile is left out. */
export function results(
  found: { ids: Uint32Array; distances: Float32Array },
  imageOf: (id: number) => ExploreImage | undefined,
  partitionOf: (id: number) => number | undefined = () => undefined,
): ExploreResult[] {
  const out: ExploreResult[] = [];
  for (let i = 0; i < found.ids.length; i++) {
    const image = imageOf(found.ids[i]!);
    if (!image) continue;
    const partition = partitionOf(image.id);
    out.push({
      rank: out.length + 1,
      ...image,
      distance: roundDistance(found.distances[i]!),
      ...(partition === undefined ? {} : { partition }),
    });
  }
  return out;
}

/** Page `page` of a partition's members in a seeded order (the same order on every page). */
export function partitionPageIds(
  members: Uint32Array,
  page: number,
  count: number,
): { ids: Uint32Array; hasMore: boolean } {
  const order = permutation(members.length, EXPLORE_SEED);
  const start = Math.min(members.length, page * count);
  const end = Math.min(members.length, start + count);
  return {
    ids: Uint32Array.from(order.subarray(start, end), (i) => members[i]!),
    hasMore: end < members.length,
  };
}
