import { useEffect, useMemo, useState } from 'preact/hooks';
import type { ImageRef, IvfTrace } from '../api.ts';
import {
  colourOf,
  distanceText,
  ExploreCanvas,
  ExplorePointDetail,
  ExploreResults,
  labelOf,
  niceTicks,
  ordinal,
  ResultMarks,
} from './ExploreParts.tsx';

const SIZE = 1000;
const CENTRE = SIZE / 2;
const RADIUS = 440;

/** A stable spread in [0, 1) from an id, so a candidate keeps its angle from one trace to the next. */
const spread = (id: number) => (Math.imul(id + 1, 0x9e3779b1) >>> 0) / 2 ** 32;

/**
 * The fine step by distance: the query at the centre, every candidate of the probed partitions (or a
 * sample, as the server says) at its distance from it, in its partition's sector and colour; rings at
 * round distances; the results marked with their rank.
 */
export function ExploreDistance({
  trace,
  origin,
  onEnlarge,
}: {
  trace: IvfTrace;
  /** Whose partitions these are, in words (see partitionsOrigin). */
  origin: string;
  onEnlarge: (image: ImageRef) => void;
}) {
  const { fine, coarse } = trace;
  const rankOf = useMemo(() => new Map(coarse.probes.map((p, rank) => [p.partition, rank])), [coarse]);
  const resultRank = useMemo(() => new Map(trace.results.map((r) => [r.id, r.rank])), [trace]);
  const far = Math.max(...fine.distances, 1e-12);
  const ticks = useMemo(() => niceTicks(0, far, 4).filter((t) => t > 0), [far]);
  const radiusOf = (distance: number) => (RADIUS * Math.max(0, distance)) / far;

  const { xs, ys } = useMemo(() => {
    // Each probed partition gets a sector in probe order, as wide as its share of the candidates.
    const counts = new Map<number, number>();
    for (const p of fine.partitions) counts.set(p, (counts.get(p) ?? 0) + 1);
    const starts = new Map<number, { start: number; span: number }>();
    let angle = -Math.PI / 2;
    for (const p of coarse.probes) {
      const span = (2 * Math.PI * (counts.get(p.partition) ?? 0)) / Math.max(1, fine.ids.length);
      starts.set(p.partition, { start: angle, span });
      angle += span;
    }
    const xs: number[] = [];
    const ys: number[] = [];
    fine.ids.forEach((id, i) => {
      const sector = starts.get(fine.partitions[i]!) ?? { start: 0, span: 2 * Math.PI };
      const a = sector.start + sector.span * (0.06 + 0.88 * spread(id));
      const r = radiusOf(fine.distances[i]!);
      xs.push(CENTRE + r * Math.cos(a));
      ys.push(CENTRE + r * Math.sin(a));
    });
    return { xs, ys };
  }, [trace]);
  // The keyboard goes nearest first.
  const order = useMemo(
    () => [...fine.ids.keys()].sort((a, b) => fine.distances[a]! - fine.distances[b]!),
    [fine],
  );
  const [selected, setSelected] = useState<number | null>(order[0] ?? null);
  // A new trace has other points: start again from its first.
  useEffect(() => setSelected(order[0] ?? null), [order]);
  const current = selected !== null && selected < fine.ids.length ? selected : null;

  const detail = () => {
    if (current === null)
      return { title: 'Point at a candidate, or focus the plot and use the arrow keys.', lines: [] };
    const id = fine.ids[current]!;
    const partition = fine.partitions[current]!;
    const rank = resultRank.get(id);
    return {
      title: `#${id} · ${labelOf(fine.labels, current)}`,
      lines: [
        `distance ${distanceText(fine.distances[current]!)}${trace.fineDistances === 'estimated' ? estimatedBy(trace.kind) : ''}`,
        `partition ${partition}, probed ${ordinal((rankOf.get(partition) ?? 0) + 1)}`,
        ...(rank === undefined ? [] : [`result ${rank}`]),
      ],
    };
  };
  const { title, lines } = detail();

  return (
    <div class="explore-stage">
      <ExploreCanvas
        label={`Candidates by distance: ${fine.shown.toLocaleString('en')} points around the query, coloured by partition. Arrow keys step through them, nearest first.`}
        describedBy="explore-distance-detail"
        width={SIZE}
        height={SIZE}
        xs={xs}
        ys={ys}
        order={order}
        selected={current}
        onSelect={setSelected}
        reach={30}
      >
        {ticks.map((t) => (
          <g key={t}>
            <circle class="explore-ring" cx={CENTRE} cy={CENTRE} r={radiusOf(t)} />
            <text class="explore-ring-label" x={CENTRE + 4} y={CENTRE - radiusOf(t) - 4}>
              {distanceText(t)}
            </text>
          </g>
        ))}
        {xs.map((x, i) => (
          <circle
            key={fine.ids[i]}
            class="explore-point"
            data-candidate={fine.ids[i]}
            cx={x}
            cy={ys[i]}
            r={4}
            fill={colourOf(rankOf.get(fine.partitions[i]!) ?? 0)}
          />
        ))}
        <ResultMarks results={trace.results} ids={fine.ids} xs={xs} ys={ys} />
        {current !== null && <circle class="explore-selected" cx={xs[current]} cy={ys[current]} r={9} />}
        <circle class="explore-query-ring" cx={CENTRE} cy={CENTRE} r={12} />
      </ExploreCanvas>

      <aside class="explore-side">
        <p>
          The {trace.k} (k = {trace.k}) images nearest the query among the {fine.total.toLocaleString('en')}{' '}
          images of the {coarse.probes.length} probed partitions of {origin}
          {fine.omitted > 0 &&
            ` (${fine.shown.toLocaleString('en')} drawn, a sample; ${fine.omitted.toLocaleString('en')} left out)`}
          .
        </p>
        <ExplorePointDetail
          id="explore-distance-detail"
          title={title}
          lines={lines}
          thumbnailUrl={current === null ? null : `${trace.thumbnailBase}${fine.ids[current]}`}
        />
        <ExploreResults results={trace.results} onEnlarge={onEnlarge} caption="Results" />
      </aside>
    </div>
  );
}

/** How a scan's distance was estimated, in words (IVF-PQ's codes, or IVF-RaBitQ's one-bit ones). */
function estimatedBy(kind: string): string {
  return kind === 'ivf-rabitq'
    ? ' (estimated from its one-bit RaBitQ code)'
    : ' (estimated by the product quantizer)';
}
