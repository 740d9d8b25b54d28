import { useEffect, useMemo, useState } from 'preact/hooks';
import type { ImageRef, ProjectionTrace } from '../api.ts';
import {
  colourOf,
  distanceText,
  ExploreCanvas,
  ExplorePointDetail,
  ExploreResults,
  labelOf,
  ordinal,
  ResultMarks,
} from './ExploreParts.tsx';

const SIZE = 1000;
const PAD = 24;

/**
 * The fine step as a map: a UMAP projection (made on the server, seeded) of the probed partitions'
 * images, or of a sample of the collection when it has no partitions, with the query among them; points
 * coloured by partition (or by label), the results marked with their rank.
 */
export function ExploreProjection({
  trace,
  origin,
  onEnlarge,
}: {
  trace: ProjectionTrace;
  /** Mode 'partitions': whose partitions these are, in words (see partitionsOrigin). */
  origin: string | null;
  onEnlarge: (image: ImageRef) => void;
}) {
  const { points } = trace;
  const scale = (v: number) => PAD + v * (SIZE - 2 * PAD);
  const xs = useMemo(() => points.x.map(scale), [points]);
  const ys = useMemo(() => points.y.map(scale), [points]);
  const rankOf = useMemo(() => new Map(trace.probes.map((p, rank) => [p, rank])), [trace]);
  const resultRank = useMemo(() => new Map(trace.results.map((r) => [r.id, r])), [trace]);
  const colour = (i: number) =>
    trace.mode === 'partitions'
      ? colourOf(rankOf.get(points.partitions[i]!) ?? 0)
      : colourOf(Math.max(0, points.labels.of[i] ?? 0));
  // The keyboard starts with the results, then goes from left to right.
  const order = useMemo(() => {
    const all = [...points.ids.keys()];
    const rank = (i: number) => resultRank.get(points.ids[i]!)?.rank ?? Number.POSITIVE_INFINITY;
    return all.sort((a, b) => rank(a) - rank(b) || xs[a]! - xs[b]!);
  }, [points, xs, resultRank]);
  const [selected, setSelected] = useState<number | null>(order[0] ?? null);
  // A new trace has other points: start again from its first.
  useEffect(() => setSelected(order[0] ?? null), [order]);
  const current = selected !== null && selected < points.ids.length ? selected : null;

  let title = 'Point at an image, or focus the map and use the arrow keys.';
  let lines: string[] = [];
  if (current !== null) {
    const id = points.ids[current]!;
    const result = resultRank.get(id);
    const partition = points.partitions[current]!;
    title = `#${id} · ${labelOf(points.labels, current)}`;
    lines = [
      ...(partition >= 0
        ? [`partition ${partition}, probed ${ordinal((rankOf.get(partition) ?? 0) + 1)}`]
        : []),
      ...(result ? [`result ${result.rank}, distance ${distanceText(result.distance)}`] : []),
    ];
  }

  return (
    <div class="explore-stage">
      <ExploreCanvas
        label={`Projection: ${trace.shown.toLocaleString('en')} images laid out by UMAP with the query among them. Arrow keys step through them, results first.`}
        describedBy="explore-projection-detail"
        width={SIZE}
        height={SIZE}
        xs={xs}
        ys={ys}
        order={order}
        selected={current}
        onSelect={setSelected}
        reach={30}
      >
        {xs.map((x, i) => (
          <circle
            key={points.ids[i]}
            class="explore-point"
            data-point={points.ids[i]}
            cx={x}
            cy={ys[i]}
            r={5}
            fill={colour(i)}
          />
        ))}
        <ResultMarks results={trace.results} ids={points.ids} xs={xs} ys={ys} />
        {current !== null && <circle class="explore-selected" cx={xs[current]} cy={ys[current]} r={9} />}
        <circle class="explore-query-ring" cx={scale(trace.query.x)} cy={scale(trace.query.y)} r={12} />
      </ExploreCanvas>

      <aside class="explore-side">
        {trace.note && <p class="explore-note">{trace.note}</p>}
        <p>
          {trace.mode === 'partitions'
            ? `The ${trace.total.toLocaleString('en')} images of the ${trace.probes.length} (nprobes = ${trace.nprobes}) probed partitions of ${origin ?? 'the index'}`
            : `The collection's ${trace.total.toLocaleString('en')} images`}
          {trace.omitted > 0 && ` (${trace.shown.toLocaleString('en')} drawn, a sample)`}, laid out in 2-D by{' '}
          {trace.layout.method === 'umap' ? 'UMAP' : 'PCA'} with the query (the ring) among them; the{' '}
          {trace.k} results are numbered.
        </p>
        <ExplorePointDetail
          id="explore-projection-detail"
          title={title}
          lines={lines}
          thumbnailUrl={current === null ? null : `${trace.thumbnailBase}${points.ids[current]}`}
        />
        <ExploreResults results={trace.results} onEnlarge={onEnlarge} caption="Results" />
      </aside>
    </div>
  );
}
