import { TRACE_ACCEPT, TRACE_ENTRY, TRACE_EXPAND } from './kernels/graph.ts';
import type { GraphKernel } from './kernels/types.ts';
import type { SearchResult } from './types.ts';

/** The steps of one level of a traced search (see HnswIndex.explainSearch). */
export interface HnswLevelTrace {
  level: number;
  /** Where the search of this level started (the previous level's best, or the entry point), with its distance. */
  entryPoint: { id: number; distance: number };
  /**
   * The nodes whose links were followed, in order, with their distance: the greedy path above level 0,
   * the beam's expansions on level 0.
   */
  visited: { ids: Uint32Array; distances: Float32Array };
  /**
   * Every link followed: from → to, the distance of `to`, and 1 where it moved the search (a nearer
   * step above level 0, a place in the beam on level 0). Level 0 skips nodes it has seen already.
   */
  links: { from: Uint32Array; to: Uint32Array; distances: Float32Array; accepted: Uint8Array };
  /** The nearest node this level reached, and its distance (on level 0, the first result). */
  best: { id: number; distance: number };
}

/** What `HnswIndex.explainSearch` returns. */
export interface HnswExplanation {
  /** The beam width used (efSearch, raised to k). */
  efSearch: number;
  /** One entry per level, the top level first, level 0 last. */
  levels: HnswLevelTrace[];
  /** Exactly what `search` returns for the same arguments. */
  results: SearchResult;
}

/** One level of the graph as `HnswIndex.levels()` gives it. */
export interface HnswLevel {
  level: number;
  /** The ids of the nodes on this level, in insertion order (a removed id reused since shows NO_ID). */
  ids: Uint32Array;
  /** 1 for a removed vector the graph still routes through (until `compact`). */
  removed: Uint8Array;
  /** Node i's links are links[offsets[i] … offsets[i + 1]): positions in `ids`. */
  offsets: Uint32Array;
  links: Uint32Array;
}

/**
 * The levels of a traced search, from the kernel's trace (events in order: each level's ENTRY, then its
 * EXPAND and link events), named by external id and public distance. On level 0 `best` is the first
 * result, so that it matches what `search` returns.
 */
export function traceLevels(
  trace: ReturnType<GraphKernel['endTrace']>,
  names: {
    idOf: (node: number) => number;
    publicOf: (internal: number) => number;
    results: SearchResult;
  },
): HnswLevelTrace[] {
  const { idOf, publicOf, results } = names;
  const kept = results.ids.length;
  const levels: HnswLevelTrace[] = [];
  let i = 0;
  while (i < trace.count) {
    // Each level starts with an ENTRY event; its steps run to the next ENTRY.
    const level = trace.levels[i]!;
    let end = i + 1;
    while (end < trace.count && trace.kinds[end] !== TRACE_ENTRY) end++;
    let expansions = 0;
    let linkCount = 0;
    for (let e = i + 1; e < end; e++) {
      if (trace.kinds[e] === TRACE_EXPAND) expansions++;
      else linkCount++;
    }
    const visited = { ids: new Uint32Array(expansions), distances: new Float32Array(expansions) };
    const links = {
      from: new Uint32Array(linkCount),
      to: new Uint32Array(linkCount),
      distances: new Float32Array(linkCount),
      accepted: new Uint8Array(linkCount),
    };
    let best = { id: idOf(trace.to[i]!), distance: publicOf(trace.distances[i]!) };
    let bestInternal = trace.distances[i]!;
    for (let e = i + 1, v = 0, l = 0; e < end; e++) {
      if (trace.kinds[e] === TRACE_EXPAND) {
        visited.ids[v] = idOf(trace.to[e]!);
        visited.distances[v++] = publicOf(trace.distances[e]!);
        continue;
      }
      links.from[l] = idOf(trace.from[e]!);
      links.to[l] = idOf(trace.to[e]!);
      links.distances[l] = publicOf(trace.distances[e]!);
      links.accepted[l++] = trace.kinds[e] === TRACE_ACCEPT ? 1 : 0;
      if (level > 0 && trace.kinds[e] === TRACE_ACCEPT && trace.distances[e]! < bestInternal) {
        bestInternal = trace.distances[e]!;
        best = { id: idOf(trace.to[e]!), distance: publicOf(bestInternal) };
      }
    }
    if (level === 0 && kept > 0) best = { id: results.ids[0]!, distance: results.distances[0]! };
    levels.push({
      level,
      entryPoint: { id: idOf(trace.to[i]!), distance: publicOf(trace.distances[i]!) },
      visited,
      links,
      best,
    });
    i = end;
  }
  return levels;
}
