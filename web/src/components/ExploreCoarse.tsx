import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { explorePartition, type ImageRef, type IvfTrace, type PartitionPage } from '../api.ts';
import { labelText } from '../format.ts';
import { colourOf, Delaunay, distanceText, ExploreCanvas, ordinal } from './ExploreParts.tsx';

const SIZE = 1000;
const PAD = 24;
const SAMPLES = 6;
const GALLERY_PAGE = 24;

/** A page of a partition's images; while the server (re)builds the view's partitions, an error saying so. */
const partitionPage = (...args: Parameters<typeof explorePartition>): Promise<PartitionPage> =>
  explorePartition(...args).then((answer) => {
    if ('message' in answer) throw new Error(answer.message);
    return answer;
  });

/** A partition's few sample images, fetched once per partition while the map is shown. */
function usePartitionSamples(collection: string, partition: number | null) {
  const cache = useRef(new Map<string, PartitionPage>());
  const [page, setPage] = useState<PartitionPage | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    if (partition === null) return;
    const key = `${collection}/${partition}`;
    const cached = cache.current.get(key);
    if (cached) {
      setPage(cached);
      return;
    }
    const controller = new AbortController();
    // Pointing across the map passes many cells: wait until it rests on one.
    const timer = setTimeout(() => {
      partitionPage(collection, partition, { page: 0, count: SAMPLES, signal: controller.signal })
        .then((answer) => {
          cache.current.set(key, answer);
          setPage(answer);
          setFailed(null);
        })
        .catch((error: Error) => {
          if (!controller.signal.aborted) setFailed(error.message);
        });
    }, 120);
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [collection, partition]);
  return { page: page?.partition === partition ? page : null, failed };
}

/** Every image of a partition, page after page, below the map. */
function PartitionGallery({
  collection,
  partition,
  onClose,
  onEnlarge,
}: {
  collection: string;
  partition: number;
  onClose: () => void;
  onEnlarge: (image: ImageRef) => void;
}) {
  const [pages, setPages] = useState<PartitionPage[]>([]);
  const [error, setError] = useState<string | null>(null);
  const heading = useRef<HTMLHeadingElement>(null);
  const load = (page: number, signal?: AbortSignal) =>
    partitionPage(collection, partition, { page, count: GALLERY_PAGE, signal })
      .then((answer) => setPages((before) => [...before.filter((p) => p.page < page), answer]))
      .catch((failure: Error) => {
        if (!signal?.aborted)
          setError(`The images of partition ${partition} could not be loaded: ${failure.message}`);
      });
  useEffect(() => {
    const controller = new AbortController();
    setPages([]);
    setError(null);
    void load(0, controller.signal);
    heading.current?.focus();
    return () => controller.abort();
  }, [collection, partition]);
  const last = pages[pages.length - 1];
  return (
    <section class="explore-gallery" aria-labelledby="explore-gallery-heading">
      <div class="explore-gallery-head">
        <h3 id="explore-gallery-heading" ref={heading} tabIndex={-1}>
          Partition {partition}
          {last && <span class="muted"> · {last.size.toLocaleString('en')} images</span>}
        </h3>
        <button type="button" onClick={onClose}>
          Close partition {partition}
        </button>
      </div>
      {error && <p role="alert">{error}</p>}
      <ul class="thumbnails">
        {pages
          .flatMap((p) => p.images)
          .map((image) => (
            <li key={image.id}>
              <button
                type="button"
                class="thumbnail"
                aria-label={`Enlarge ${labelText(image)} #${image.id}`}
                onClick={() => onEnlarge(image)}
              >
                <img src={image.thumbnailUrl} alt="" loading="lazy" />
              </button>
            </li>
          ))}
      </ul>
      {last?.hasMore && (
        <button type="button" onClick={() => load(last.page + 1)}>
          More images of partition {partition}
        </button>
      )}
    </section>
  );
}

/**
 * The coarse step: the partitions as a Voronoi map of their centroids (laid out in 2-D by the server),
 * shaded by size; the probed ones in colour with their probe order; the query as a ring. Pointing at a
 * cell, or stepping to it with the arrow keys, shows a few of its images; a click or Enter opens all of
 * them below.
 */
export function ExploreCoarse({
  trace,
  collection,
  origin,
  onEnlarge,
}: {
  trace: IvfTrace;
  collection: string;
  /** Whose partitions these are, in words (see partitionsOrigin). */
  origin: string;
  onEnlarge: (image: ImageRef) => void;
}) {
  const { coarse } = trace;
  const n = coarse.numPartitions;
  const scale = (v: number) => PAD + v * (SIZE - 2 * PAD);
  const xs = useMemo(() => coarse.x.map(scale), [coarse]);
  const ys = useMemo(() => coarse.y.map(scale), [coarse]);
  const cells = useMemo(() => {
    const points: [number, number][] = xs.map((x, i) => [x, ys[i]!]);
    const voronoi = Delaunay.from(points).voronoi([0, 0, SIZE, SIZE]);
    return points.map((_, i) => voronoi.renderCell(i));
  }, [xs, ys]);
  const rankOf = useMemo(() => new Map(coarse.probes.map((p, rank) => [p.partition, rank])), [coarse]);
  const order = useMemo(
    () => [
      ...coarse.probes.map((p) => p.partition),
      ...Array.from({ length: n }, (_, l) => l).filter((l) => !rankOf.has(l)),
    ],
    [coarse, n, rankOf],
  );
  const largest = Math.max(1, ...coarse.sizes);
  const [selected, setSelected] = useState<number | null>(coarse.probes[0]?.partition ?? null);
  const [gallery, setGallery] = useState<number | null>(null);
  const { page, failed } = usePartitionSamples(collection, selected);
  const total = coarse.sizes.reduce((s, v) => s + v, 0);

  const describe = (l: number) => {
    const rank = rankOf.get(l);
    return `Partition ${l}: ${coarse.sizes[l]!.toLocaleString('en')} images, distance ${distanceText(coarse.distances[l]!)}${
      rank === undefined ? ', not probed' : `, probed ${ordinal(rank + 1)}`
    }`;
  };

  return (
    <div class="explore-stage">
      <ExploreCanvas
        label={`Partition map: ${n} partitions, the ${coarse.probes.length} probed ones in colour. Arrow keys step through the partitions, probed ones first; Enter shows a partition's images.`}
        describedBy="explore-coarse-detail"
        width={SIZE}
        height={SIZE}
        xs={xs}
        ys={ys}
        order={order}
        selected={selected}
        onSelect={setSelected}
        onActivate={setGallery}
      >
        {cells.map((d, l) => {
          const rank = rankOf.get(l);
          return (
            <path
              key={l}
              d={d}
              class={`explore-cell${rank === undefined ? '' : ' probed'}${selected === l ? ' selected' : ''}`}
              data-partition={l}
              data-probe={rank === undefined ? undefined : rank + 1}
              // Inline, since the stylesheet's fill of the cells would win over a presentation attribute.
              style={
                rank === undefined
                  ? { fillOpacity: 0.18 + 0.72 * (coarse.sizes[l]! / largest) }
                  : { fill: colourOf(rank), fillOpacity: 0.95 }
              }
            />
          );
        })}
        {coarse.probes.map((p, rank) => (
          <text key={p.partition} class="explore-cell-rank" x={xs[p.partition]} y={ys[p.partition]}>
            {rank + 1}
          </text>
        ))}
        <circle class="explore-query-ring" cx={scale(coarse.query.x)} cy={scale(coarse.query.y)} r={14} />
      </ExploreCanvas>

      <aside class="explore-side">
        <p>
          {total.toLocaleString('en')} images in {n} partitions of {origin}. The {coarse.probes.length}{' '}
          (nprobes = {trace.nprobes}) partitions nearest the query are searched, nearest first:
        </p>
        <ol class="explore-probes">
          {coarse.probes.map((p, rank) => (
            <li key={p.partition}>
              <button
                type="button"
                aria-pressed={gallery === p.partition}
                onClick={() => {
                  setSelected(p.partition);
                  setGallery(p.partition);
                }}
              >
                <span class="explore-swatch" style={{ background: colourOf(rank) }} aria-hidden="true" />
                Partition {p.partition} ({p.size.toLocaleString('en')} image{p.size === 1 ? '' : 's'}) ·
                distance {distanceText(p.distance)}
              </button>
            </li>
          ))}
        </ol>
        <div class="explore-detail" id="explore-coarse-detail" aria-live="polite">
          {selected === null ? (
            <p class="muted">Point at a partition, or focus the map and use the arrow keys.</p>
          ) : (
            <>
              <p class="explore-detail-title">{describe(selected)}</p>
              {failed && <p class="muted">Its images could not be loaded: {failed}</p>}
              <ul class="explore-samples">
                {page?.images.map((image) => (
                  <li key={image.id}>
                    <img src={image.thumbnailUrl} alt={`${labelText(image)} #${image.id}`} />
                  </li>
                ))}
              </ul>
            </>
          )}
        </div>
      </aside>
      {gallery !== null && (
        <PartitionGallery
          collection={collection}
          partition={gallery}
          onClose={() => setGallery(null)}
          onEnlarge={onEnlarge}
        />
      )}
    </div>
  );
}
