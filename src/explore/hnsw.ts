import type { HnswExplanation, HnswLevel } from '../ann/hnsw.ts';
import { Random } from '../ann/random.ts';
import { NO_ID } from '../ann/types.ts';
import { labelTable, results } from './ivf.ts';
import { roundCoordinate, roundDistance } from './layout.ts';
import { sampleIndices } from './sample.ts';
import {
  EXPLORE_CAPS,
  type ExploreImage,
  type HnswLevelTraceView,
  type HnswLevelView,
  type HnswTrace,
} from './types.ts';

/** Seed of the HNSW view's samples: the same graph draws the same picture. */
const SEED = 1;

/**
 * The graph as drawn, top level first: per level its node and link counts, and a seeded sample of at
 * most `maxNodes` live nodes with at most `maxEdges` of their links (a few per node, so the sample shows
 * the graph's texture on every level instead of only the links that happen to join two sampled nodes).
 */
export function hnswGraphView(
  levels: HnswLevel[],
  maxNodes: number = EXPLORE_CAPS.hnswNodesPerLevel,
  maxEdges: number = EXPLORE_CAPS.hnswEdgesPerLevel,
): HnswLevelView[] {
  const out: HnswLevelView[] = [];
  for (const level of levels) {
    const live: number[] = [];
    for (let i = 0; i < level.ids.length; i++)
      if (level.removed[i] === 0 && level.ids[i] !== NO_ID) live.push(i);
    const chosen = sampleIndices(live.length, maxNodes, SEED + level.level);
    const random = new Random(SEED + level.level);
    const perNode = Math.max(1, Math.floor(maxEdges / Math.max(1, chosen.length)));
    const nodes: number[] = [];
    const edges: number[] = [];
    for (const c of chosen) {
      const i = live[c]!;
      nodes.push(level.ids[i]!);
      const start = level.offsets[i]!;
      const count = level.offsets[i + 1]! - start;
      const picks = count <= perNode ? sampleIndices(count, count, 0) : random.sample(count, perNode);
      for (const p of picks) {
        if (edges.length >= maxEdges * 2) break;
        const to = level.links[start + p]!;
        if (level.removed[to] === 1 || level.ids[to] === NO_ID) continue;
        edges.push(level.ids[i]!, level.ids[to]!);
      }
    }
    out.push({ level: level.level, nodes: live.length, links: level.links.length, sample: { nodes, edges } });
  }
  return out.reverse();
}

/**
 * The query's trace as sent, top level first. The nodes visited are kept in order up to `maxVisited`
 * per level; of the links followed, every one that moved the search is kept (in order, up to
 * `maxLinks`) and a seeded sample of the others fills the rest, so the path drawn is never cut short.
 */
export function hnswTraceView(
  explanation: HnswExplanation,
  maxVisited: number = EXPLORE_CAPS.hnswVisitedPerLevel,
  maxLinks: number = EXPLORE_CAPS.hnswLinksPerLevel,
): HnswLevelTraceView[] {
  return explanation.levels.map((level) => {
    const { visited, links } = level;
    const visitedKept = Math.min(visited.ids.length, maxVisited);
    const total = links.from.length;
    let keep: Uint32Array;
    if (total <= maxLinks) keep = sampleIndices(total, total, 0);
    else {
      const accepted: number[] = [];
      const others: number[] = [];
      for (let i = 0; i < total; i++) (links.accepted[i] === 1 ? accepted : others).push(i);
      const room = Math.max(0, maxLinks - accepted.length);
      const sampled = Array.from(sampleIndices(others.length, room, SEED + level.level), (j) => others[j]!);
      keep = Uint32Array.from([...accepted.slice(0, maxLinks), ...sampled]).sort();
    }
    return {
      level: level.level,
      entry: { id: level.entryPoint.id, distance: roundDistance(level.entryPoint.distance) },
      best: { id: level.best.id, distance: roundDistance(level.best.distance) },
      visited: {
        ids: Array.from(visited.ids.subarray(0, visitedKept)),
        distances: Array.from(visited.distances.subarray(0, visitedKept), roundDistance),
        total: visited.ids.length,
      },
      links: {
        from: Array.from(keep, (i) => links.from[i]!),
        to: Array.from(keep, (i) => links.to[i]!),
        distances: Array.from(keep, (i) => roundDistance(links.distances[i]!)),
        accepted: Array.from(keep, (i) => links.accepted[i]!),
        total,
      },
    };
  });
}

/** Every id an HNSW answer names (sampled nodes, edges, the trace, the results), once each. */
export function idsNamed(
  graph: HnswLevelView[],
  trace: HnswLevelTraceView[],
  resultIds: ArrayLike<number>,
): number[] {
  const ids = new Set<number>();
  for (const level of graph) {
    for (const id of level.sample.nodes) ids.add(id);
    for (const id of level.sample.edges) ids.add(id);
  }
  for (const level of trace) {
    ids.add(level.entry.id);
    ids.add(level.best.id);
    for (const id of level.visited.ids) ids.add(id);
    for (const id of level.links.from) ids.add(id);
    for (const id of level.links.to) ids.add(id);
  }
  for (let i = 0; i < resultIds.length; i++) ids.add(resultIds[i]!);
  return [...ids].sort((a, b) => a - b);
}

export interface HnswTraceInput {
  collection: string;
  source: HnswTrace['source'];
  k: number;
  timeMs: number;
  thumbnailBase: string;
  m: number;
  efConstruction: number;
  size: number;
  graph: HnswLevelView[];
  explanation: HnswExplanation;
  /** A node's place in [0, 1]², and the query's. */
  placeOf: (id: number) => { x: number; y: number } | undefined;
  query: { x: number; y: number };
  labelsOf: (id: number) => string[] | undefined;
  imageOf: (id: number) => ExploreImage | undefined;
}

/** The answer of the HNSW trace: the graph as drawn, the query's path through it, and the results. */
export function hnswTrace(input: HnswTraceInput): HnswTrace {
  const trace = hnswTraceView(input.explanation);
  const named = idsNamed(input.graph, trace, input.explanation.results.ids);
  const positions = { ids: [] as number[], x: [] as number[], y: [] as number[] };
  for (const id of named) {
    const place = input.placeOf(id);
    if (!place) continue;
    positions.ids.push(id);
    positions.x.push(roundCoordinate(place.x));
    positions.y.push(roundCoordinate(place.y));
  }
  return {
    state: 'ready',
    collection: input.collection,
    source: input.source,
    k: input.k,
    efSearch: input.explanation.efSearch,
    timeMs: input.timeMs,
    thumbnailBase: input.thumbnailBase,
    graph: { size: input.size, m: input.m, efConstruction: input.efConstruction, levels: input.graph },
    trace,
    positions: { ...positions, labels: labelTable(positions.ids, input.labelsOf) },
    query: { x: roundCoordinate(input.query.x), y: roundCoordinate(input.query.y) },
    results: results(input.explanation.results, input.imageOf),
  };
}
