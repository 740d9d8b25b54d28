// What the Explore endpoints answer (src/server/explore.ts), as plain JSON for the page (web/src/api.ts
// mirrors these types). Many points travel as struct-of-arrays: one array per field, the same length.

import type { LayoutMethod } from './layout.ts';

/** Caps that keep every answer small whatever the collection's size (see the tests for the bytes). */
export const EXPLORE_CAPS = {
  /** Candidates of the fine step sent; past it a seeded sample (the results always in it). */
  candidates: 2_000,
  /** Points of a projection (UMAP costs some 2 ms a point). */
  projectionPoints: 1_500,
  /** Thumbnails of one page of a partition's gallery. */
  galleryPage: 60,
  /** HNSW: nodes drawn per level, links drawn per level. */
  hnswNodesPerLevel: 300,
  hnswEdgesPerLevel: 600,
  /** HNSW trace: nodes visited and links followed sent per level. */
  hnswVisitedPerLevel: 1_000,
  hnswLinksPerLevel: 1_500,
} as const;

/** An image of the collection, with links that name its content (never another picture from a cache). */
export interface ExploreImage {
  id: number;
  labels: string[];
  width: number;
  height: number;
  imageUrl: string;
  thumbnailUrl: string;
}

/** One of the k results the trace ends with. */
export interface ExploreResult extends ExploreImage {
  rank: number;
  distance: number;
  /** IVF: the partition it was found in. */
  partition?: number;
}

/** Labels of many points: names once, then per point an index into them (−1: no longer in the collection). */
export interface LabelTable {
  names: string[];
  of: number[];
}

export interface IvfTrace {
  state: 'ready';
  collection: string;
  /** 'collection': the collection's own IVF index; 'explore': an IVF-Flat built for this view. */
  source: 'collection' | 'explore';
  /** The kind of the index traced (ivf-pq, ivf-flat): for source 'explore', not the collection's. */
  kind: string;
  /** Images in the index. */
  size: number;
  k: number;
  nprobes: number;
  timeMs: number;
  /** How the fine step ranked: exact distances, or product-quantized estimates (then re-ranked exactly). */
  fineDistances: 'exact' | 'estimated';
  /** `${thumbnailBase}${id}` is any image's thumbnail (revalidated by its ETag). */
  thumbnailBase: string;
  coarse: {
    numPartitions: number;
    layout: { method: LayoutMethod; seed: number };
    /** By partition: the centroid's place in [0, 1]², the partition's size and its distance to the query. */
    x: number[];
    y: number[];
    sizes: number[];
    distances: number[];
    /** Where the query falls on the map: inside the cell of the nearest partition. */
    query: { x: number; y: number };
    /** The partitions probed, in probe order (nearest centroid first). */
    probes: { partition: number; distance: number; size: number }[];
  };
  fine: {
    /** Candidates scanned: the probed partitions' sizes summed. */
    total: number;
    /** Candidates sent (at most EXPLORE_CAPS.candidates), and how many were left out. */
    shown: number;
    omitted: number;
    ids: number[];
    partitions: number[];
    distances: number[];
    labels: LabelTable;
  };
  results: ExploreResult[];
}

export interface PartitionPage {
  collection: string;
  partition: number;
  size: number;
  page: number;
  count: number;
  hasMore: boolean;
  images: ExploreImage[];
}

export interface ProjectionTrace {
  state: 'ready';
  collection: string;
  /** 'partitions': the members of the probed partitions; 'collection': a sample of the whole collection. */
  mode: 'partitions' | 'collection';
  /** Mode 'partitions': whose partitions and their index kind, as IvfTrace's; null in mode 'collection'. */
  source: 'collection' | 'explore' | null;
  kind: string | null;
  /** Why a collection without IVF views (too large, or empty) shows the collection instead. */
  note: string | null;
  k: number;
  nprobes: number | null;
  timeMs: number;
  layout: { method: LayoutMethod; seed: number };
  thumbnailBase: string;
  /** Points that could be drawn, sent, and left out. */
  total: number;
  shown: number;
  omitted: number;
  points: {
    ids: number[];
    /** The partition of each point (mode 'partitions'), −1 otherwise. */
    partitions: number[];
    x: number[];
    y: number[];
    labels: LabelTable;
  };
  /** The query, laid out with the points. */
  query: { x: number; y: number };
  /** Partitions in probe order (mode 'partitions'): their colours follow this order. */
  probes: number[];
  results: ExploreResult[];
}

/** One level of the graph as drawn: its counts, and a sample of its nodes and links. */
export interface HnswLevelView {
  level: number;
  nodes: number;
  links: number;
  sample: {
    nodes: number[];
    /** Pairs of ids: edges[2i] → edges[2i + 1]. */
    edges: number[];
  };
}

/** One level of the query's trace (top level first). */
export interface HnswLevelTraceView {
  level: number;
  entry: { id: number; distance: number };
  best: { id: number; distance: number };
  /** The nodes whose links were followed, in order; `total` before the cap. */
  visited: { ids: number[]; distances: number[]; total: number };
  /** The links followed, in order: 1 in `accepted` where the step moved the search. */
  links: { from: number[]; to: number[]; distances: number[]; accepted: number[]; total: number };
}

export interface HnswTrace {
  state: 'ready';
  collection: string;
  /** 'collection': the collection's own HNSW index; 'explore': one built for this view. */
  source: 'collection' | 'explore';
  k: number;
  efSearch: number;
  timeMs: number;
  thumbnailBase: string;
  graph: { size: number; m: number; efConstruction: number; levels: HnswLevelView[] };
  trace: HnswLevelTraceView[];
  /** The place of every node named above, in [0, 1]² (the same on every level), and its label. */
  positions: { ids: number[]; x: number[]; y: number[]; labels: LabelTable };
  /** The query's place among them. */
  query: { x: number; y: number };
  results: ExploreResult[];
}

/** What the HNSW view of a collection is doing now. */
export type HnswStatus =
  | { state: 'ready'; source: 'collection' | 'explore'; size: number }
  | { state: 'building'; percent: number; images: number }
  | { state: 'idle' }
  | { state: 'unavailable'; reason: string }
  | { state: 'failed'; reason: string };

/** The answer while the HNSW graph is being built: the page polls until it is ready. */
export interface HnswBuilding {
  state: 'building';
  percent: number;
  images: number;
  message: string;
}

/**
 * What the IVF views of a collection are doing now: ready (its own IVF index, or the IVF-Flat built for
 * the view), idle or building one (with the partitions it will have), or unavailable with the reason.
 */
export type IvfStatus =
  | {
      state: 'ready';
      source: 'collection' | 'explore';
      kind: string;
      size: number;
      numPartitions: number;
      defaultNprobes: number;
    }
  | { state: 'building'; percent: number; images: number; numPartitions: number; defaultNprobes: number }
  | { state: 'idle'; numPartitions: number; defaultNprobes: number }
  | { state: 'unavailable'; reason: string }
  | { state: 'failed'; reason: string };

/** The answer (202) of the IVF endpoints while the IVF-Flat of the view is being built: ask again later. */
export interface IvfBuilding {
  state: 'building';
  percent: number;
  images: number;
  numPartitions: number;
  message: string;
}

/** What the Explore tab can show for a collection. */
export interface ExploreOverview {
  collection: string;
  size: number;
  /** The collection's own index kind (flat, hnsw, ivf-pq, or where it lives). */
  indexKind: string;
  /** The IVF views (coarse, distance, projection by partitions): whose partitions, and their state. */
  ivf: IvfStatus;
  /** What the IVF views show when not the collection's own index, or why there are none; else null. */
  ivfNote: string | null;
  hnsw: HnswStatus;
  defaults: { k: number; efSearch: number };
  caps: typeof EXPLORE_CAPS;
}
