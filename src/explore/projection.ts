import { EXPLORE_SEED, labelTable } from './ivf.ts';
import { type LayoutFunction, layoutVectors, roundCoordinate } from './layout.ts';
import { sampleKeeping } from './sample.ts';
import type { VectorSnapshot } from './snapshots.ts';
import { EXPLORE_CAPS, type ExploreResult, type ProjectionTrace } from './types.ts';

export interface ProjectionInput {
  collection: string;
  mode: ProjectionTrace['mode'];
  source: ProjectionTrace['source'];
  kind: ProjectionTrace['kind'];
  note: string | null;
  k: number;
  nprobes: number | null;
  thumbnailBase: string;
  snapshot: VectorSnapshot;
  /** The points that could be drawn (the probed partitions' members, or every image), and their partitions. */
  memberIds: Uint32Array;
  memberPartitions: Uint32Array | null;
  probes: number[];
  /** The query, as the stored vectors are (the model's vector). */
  query: Float32Array;
  /** Model vectors → what the index compares (the collection's projection, if any). */
  toIndexSpace: (vectors: Float32Array) => Float32Array;
  results: ExploreResult[];
  maxPoints?: number;
  /** How the points are laid out: default layoutVectors on this thread (a server passes another thread's). */
  layout?: LayoutFunction;
}

/**
 * A UMAP of the candidate points with the query among them (one joint, seeded fit), capped at
 * `maxPoints` (a seeded sample, the results always in it). Points whose image left the collection since
 * the trace are left out.
 */
export async function projectionTrace(input: ProjectionInput): Promise<Omit<ProjectionTrace, 'timeMs'>> {
  const { snapshot, memberIds } = input;
  const cap = (input.maxPoints ?? EXPLORE_CAPS.projectionPoints) - 1; // one place for the query
  const resultIds = new Set(input.results.map((r) => r.id));
  const present: number[] = [];
  for (let i = 0; i < memberIds.length; i++) if (snapshot.rowOf.has(memberIds[i]!)) present.push(i);
  const chosen = sampleKeeping(
    present.length,
    cap,
    (j) => resultIds.has(memberIds[present[j]!]!),
    EXPLORE_SEED,
  );
  const d = snapshot.dimension;
  const m = chosen.length;
  const rows = new Float32Array((m + 1) * d);
  const ids: number[] = [];
  const partitions: number[] = [];
  chosen.forEach((j, r) => {
    const i = present[j]!;
    const id = memberIds[i]!;
    const row = snapshot.rowOf.get(id)!;
    rows.set(snapshot.vectors.subarray(row * d, (row + 1) * d), r * d);
    ids.push(id);
    partitions.push(input.memberPartitions ? input.memberPartitions[i]! : -1);
  });
  rows.set(input.query, m * d);
  const mapped = input.toIndexSpace(rows);
  const layout = await (input.layout ?? layoutVectors)(mapped, m + 1, mapped.length / (m + 1), EXPLORE_SEED);
  const x: number[] = [];
  const y: number[] = [];
  for (let r = 0; r < m; r++) {
    x.push(roundCoordinate(layout.points[r * 2]!));
    y.push(roundCoordinate(layout.points[r * 2 + 1]!));
  }
  return {
    state: 'ready',
    collection: input.collection,
    mode: input.mode,
    source: input.source,
    kind: input.kind,
    note: input.note,
    k: input.k,
    nprobes: input.nprobes,
    layout: { method: layout.method, seed: layout.seed },
    thumbnailBase: input.thumbnailBase,
    total: memberIds.length,
    shown: m,
    omitted: memberIds.length - m,
    points: {
      ids,
      partitions,
      x,
      y,
      labels: labelTable(ids, (id) => snapshot.labels[snapshot.rowOf.get(id)!]),
    },
    query: { x: roundCoordinate(layout.points[m * 2]!), y: roundCoordinate(layout.points[m * 2 + 1]!) },
    probes: input.probes,
    results: input.results,
  };
}
