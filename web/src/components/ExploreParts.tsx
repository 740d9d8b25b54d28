// @ts-expect-error d3-delaunay ships no type declarations (@types/d3-delaunay would replace DelaunayModule below)
import { Delaunay as untypedDelaunay } from 'd3-delaunay';
import type { ComponentChildren } from 'preact';
import { useMemo, useRef } from 'preact/hooks';
import type { ExploreResult, ImageRef, LabelTable } from '../api.ts';
import { labelText } from '../format.ts';

/** The part of d3-delaunay the Explore views use. */
export interface DelaunayIndex {
  /** The index of the point nearest (x, y). */
  find(x: number, y: number, start?: number): number;
  voronoi(bounds: [number, number, number, number]): { renderCell(i: number): string };
}
interface DelaunayModule {
  from(points: ArrayLike<readonly [number, number]>): DelaunayIndex;
}
export const Delaunay = untypedDelaunay as DelaunayModule;

/**
 * Colours of the probed partitions, in probe order (then again): Tableau 10, distinct on the dark and the
 * light theme alike. The other partitions are drawn in the theme's own cell colour.
 */
export const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];
export const colourOf = (rank: number) => PALETTE[rank % PALETTE.length]!;

/** Distances as the views print them: 4 significant digits. */
export const distanceText = (distance: number) => (Number.isFinite(distance) ? distance.toPrecision(4) : '—');

export const labelOf = (labels: LabelTable, i: number) =>
  labels.names[labels.of[i] ?? -1] ?? 'no longer in the collection';

/** About `count` round values spanning [low, high] (1, 2 or 5 times a power of ten apart). */
export function niceTicks(low: number, high: number, count = 5): number[] {
  if (!(high > low)) return [high];
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step)
    ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

const INDEX_NAMES: Record<string, string> = {
  'ivf-pq': 'IVF-PQ',
  'ivf-rabitq': 'IVF-RaBitQ',
  'ivf-flat': 'IVF-Flat',
  hnsw: 'HNSW',
  flat: 'Flat',
};

/**
 * Whose partitions the IVF views draw, as the side text says it: the collection's own IVF index, or
 * an IVF-Flat the server built for the view (then the collection's own index is named too).
 */
export function partitionsOrigin(
  source: 'collection' | 'explore',
  kind: string,
  collection: string,
  indexKind: string,
): string {
  if (source === 'collection') return `the ${INDEX_NAMES[kind] ?? kind} index of ${collection}`;
  const own =
    indexKind === 'flat'
      ? 'searches exactly, with a Flat index'
      : indexKind in INDEX_NAMES
        ? `searches with an ${INDEX_NAMES[indexKind]} index`
        : `keeps its index elsewhere (${indexKind})`;
  return `an IVF-Flat built for this view (${collection} itself ${own})`;
}

/** The number of a step for people: 1st, 2nd, 3rd, 4th … */
export const ordinal = (n: number) => {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
};

interface ExploreCanvasProps {
  /** What the figure is and how to use it from the keyboard. */
  label: string;
  /** The id of the text that says what is selected (read when the selection changes). */
  describedBy: string;
  width: number;
  height: number;
  /** The points one can point at, in the SVG's coordinates. */
  xs: ArrayLike<number>;
  ys: ArrayLike<number>;
  /** The keyboard's order over the points (indices). */
  order: number[];
  selected: number | null;
  onSelect: (index: number | null) => void;
  onActivate?: (index: number) => void;
  /** Pointing farther than this (SVG units) from every point selects nothing (0: always the nearest). */
  reach?: number;
  children: ComponentChildren;
}

/**
 * An SVG figure whose points one selects by pointing (the nearest point, through a Delaunay
 * triangulation: no handler per point, so thousands stay cheap) or from the keyboard (arrow keys step
 * through `order`, Home and End jump, Enter activates, Escape clears). The selection is described in
 * text outside the figure; the drawing itself is hidden from assistive technology.
 */
export function ExploreCanvas(props: ExploreCanvasProps) {
  const { xs, ys, order, selected, onSelect, onActivate, width, height, reach = 0 } = props;
  const svg = useRef<SVGSVGElement>(null);
  const delaunay = useMemo(() => {
    const points: [number, number][] = [];
    for (let i = 0; i < xs.length; i++) points.push([xs[i]!, ys[i]!]);
    return points.length > 0 ? Delaunay.from(points) : null;
  }, [xs, ys]);

  const pointAt = (event: PointerEvent | MouseEvent): number | null => {
    const element = svg.current;
    const matrix = element?.getScreenCTM();
    if (!element || !matrix || !delaunay) return null;
    const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
    const found = delaunay.find(point.x, point.y);
    if (found < 0) return null;
    if (reach > 0 && Math.hypot(xs[found]! - point.x, ys[found]! - point.y) > reach) return null;
    return found;
  };

  const onKeyDown = (event: KeyboardEvent) => {
    if (order.length === 0) return;
    const at = selected === null ? -1 : order.indexOf(selected);
    const next = {
      ArrowRight: at + 1,
      ArrowDown: at + 1,
      ArrowLeft: at <= 0 ? order.length - 1 : at - 1,
      ArrowUp: at <= 0 ? order.length - 1 : at - 1,
      Home: 0,
      End: order.length - 1,
    }[event.key];
    if (next !== undefined) {
      event.preventDefault();
      onSelect(order[next % order.length]!);
    } else if ((event.key === 'Enter' || event.key === ' ') && selected !== null && onActivate) {
      event.preventDefault();
      onActivate(selected);
    } else if (event.key === 'Escape') onSelect(null);
  };

  return (
    // A figure with its own keyboard use: it takes the focus, and says what is selected in text nearby.
    <section
      // biome-ignore lint/a11y/noNoninteractiveTabindex: the arrow keys select points of the figure
      tabIndex={0}
      class="explore-canvas"
      aria-label={props.label}
      aria-describedby={props.describedBy}
      onKeyDown={onKeyDown}
    >
      <svg
        ref={svg}
        viewBox={`0 0 ${width} ${height}`}
        aria-hidden="true"
        onPointerMove={(event) => {
          const found = pointAt(event);
          if (found !== selected && (found !== null || reach > 0)) onSelect(found);
        }}
        onClick={(event) => {
          const found = pointAt(event);
          if (found !== null && onActivate) onActivate(found);
        }}
      >
        {props.children}
      </svg>
    </section>
  );
}

/** The k results of a trace as thumbnails with rank and distance; a click enlarges one. */
export function ExploreResults({
  results,
  onEnlarge,
  caption,
}: {
  results: ExploreResult[];
  onEnlarge: (image: ImageRef) => void;
  caption: string;
}) {
  return (
    <figure class="explore-results">
      <figcaption>{caption}</figcaption>
      <ol>
        {results.map((result) => (
          <li key={result.id}>
            <button
              type="button"
              class="thumbnail"
              aria-label={`Enlarge result ${result.rank}: ${labelText(result)} #${result.id}, distance ${distanceText(result.distance)}`}
              onClick={() => onEnlarge(result)}
            >
              <img src={result.thumbnailUrl} alt="" loading="lazy" />
            </button>
            <span class="explore-result-text">
              {result.rank}. #{result.id} · {distanceText(result.distance)}
            </span>
          </li>
        ))}
      </ol>
    </figure>
  );
}

/** One point's image and facts, beside a figure: what the pointer or the keyboard selected. */
export function ExplorePointDetail({
  id,
  thumbnailUrl,
  title,
  lines,
}: {
  id: string;
  thumbnailUrl: string | null;
  title: string;
  lines: string[];
}) {
  return (
    <div class="explore-detail" id={id} aria-live="polite">
      <p class="explore-detail-title">{title}</p>
      {lines.map((line) => (
        <p key={line} class="explore-detail-line">
          {line}
        </p>
      ))}
      {thumbnailUrl && <img class="explore-detail-image" src={thumbnailUrl} alt={title} />}
    </div>
  );
}

/** The k results ringed and numbered on a plot of points (`ids`, placed at `xs`, `ys`). */
export function ResultMarks({
  results,
  ids,
  xs,
  ys,
}: {
  results: ExploreResult[];
  ids: readonly number[];
  xs: readonly number[];
  ys: readonly number[];
}) {
  return (
    <>
      {results.map((result) => {
        const i = ids.indexOf(result.id);
        if (i < 0) return null;
        return (
          <g key={result.id} class="explore-result-mark" data-result={result.rank}>
            <circle cx={xs[i]} cy={ys[i]} r={11} />
            <text x={xs[i]! + 14} y={ys[i]! + 5}>
              {result.rank}
            </text>
          </g>
        );
      })}
    </>
  );
}
