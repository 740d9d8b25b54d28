import { useEffect, useState } from 'preact/hooks';
import {
  type ExploreOverview,
  exploreHnsw,
  exploreIvf,
  exploreOverview,
  exploreProjection,
  type HnswBuilding,
  type HnswTrace,
  hnswStatus,
  type ImageRef,
  type IvfBuilding,
  type IvfTrace,
  ivfStatus,
  type ProjectionTrace,
} from '../api.ts';
import { type Query, searchInputFor } from '../query.ts';
import { ExploreCoarse } from './ExploreCoarse.tsx';
import { ExploreDistance } from './ExploreDistance.tsx';
import { ExploreHnsw } from './ExploreHnsw.tsx';
import { partitionsOrigin } from './ExploreParts.tsx';
import { ExploreProjection } from './ExploreProjection.tsx';
import { Tabs } from './Tabs.tsx';

type ViewId = 'explore-coarse' | 'explore-distance' | 'explore-projection' | 'explore-hnsw';

const MAX_K = 20;
const POLL_MS = 800;

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Tells queries apart in request keys (a Query is an object; its identity is what changed). */
const queryIds = new WeakMap<Query, number>();
let nextQueryId = 1;
function queryId(query: Query): number {
  let id = queryIds.get(query);
  if (id === undefined) {
    id = nextQueryId++;
    queryIds.set(query, id);
  }
  return id;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new DOMException('aborted', 'AbortError'));
    });
  });

/** What a trace answers (202) while the server builds what it draws. */
type Building = HnswBuilding | IvfBuilding;

const isBuilding = (answer: { state: string }): answer is Building => answer.state === 'building';

/**
 * Asks for a trace until the server has built what it draws: while it answers 202 "building", shows the
 * progress (`show`), polls how far the build is (`progress`: null once it is no longer building), then
 * asks again.
 */
async function whenBuilt<T extends { state: string }>(
  signal: AbortSignal,
  ask: () => Promise<T | Building>,
  progress: () => Promise<Building | null>,
  show: (building: Building | null) => void,
): Promise<T> {
  try {
    for (;;) {
      const answer = await ask();
      if (!isBuilding(answer)) return answer as T;
      show(answer);
      for (;;) {
        await sleep(POLL_MS, signal);
        const next = await progress();
        if (!next) break;
        show(next);
      }
    }
  } finally {
    show(null);
  }
}

/** The progress of a build the view waits for, as the server words it. */
function BuildProgress({ id, building }: { id: string; building: Building }) {
  return (
    <div class="explore-building" role="status">
      <label for={id}>{building.message}</label>
      <progress id={id} max={100} value={building.percent}>
        {building.percent}%
      </progress>
    </div>
  );
}

interface Loaded<T> {
  data: T | null;
  /** The key `data` answers; while it differs from the key asked, the figure shows the previous answer. */
  key: string | null;
  loading: boolean;
  error: string | null;
}

/** Runs `load` whenever `key` changes (null: nothing to load), keeping the last answer while the next comes. */
function useLoaded<T>(key: string | null, load: (signal: AbortSignal) => Promise<T>): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({ data: null, key: null, loading: false, error: null });
  useEffect(() => {
    if (key === null) return;
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    load(controller.signal)
      .then((data) => {
        if (!controller.signal.aborted) setState({ data, key, loading: false, error: null });
      })
      .catch((error) => {
        if (!controller.signal.aborted) setState((s) => ({ ...s, loading: false, error: errorText(error) }));
      });
    return () => controller.abort();
  }, [key]);
  return state;
}

/** A range input that shows its value while dragged and commits it on release (each commit is a request). */
function Slider({
  id,
  label,
  min,
  max,
  value,
  onCommit,
}: {
  id: string;
  label: string;
  min: number;
  max: number;
  value: number;
  onCommit: (value: number) => void;
}) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  return (
    <div class="explore-control">
      <label for={id}>{label}</label>
      <input
        id={id}
        type="range"
        min={min}
        max={max}
        value={draft}
        onInput={(event) => setDraft(Number(event.currentTarget.value))}
        onChange={(event) => onCommit(Number(event.currentTarget.value))}
      />
      <output for={id}>{draft}</output>
    </div>
  );
}

function Status<T>({ loaded, what }: { loaded: Loaded<T>; what: string }) {
  if (loaded.error)
    return (
      <p class="explore-error" role="alert">
        {what} could not be shown: {loaded.error}
      </p>
    );
  if (loaded.loading)
    return (
      <p class="explore-loading" role="status">
        Tracing the search…
      </p>
    );
  return null;
}

/**
 * The Explore view: how the collection's index found the neighbours of the last searched image, in four
 * figures (after the reference's Feder notebook): the coarse step of IVF (partition map), its fine step
 * by distance and as a UMAP projection, and an HNSW graph search. k, nprobes and efSearch re-run the trace.
 */
export function Explore({
  collection,
  query,
  onEnlarge,
}: {
  collection: string;
  query: Query | null;
  onEnlarge: (image: ImageRef) => void;
}) {
  const [overview, setOverview] = useState<ExploreOverview | null>(null);
  const [overviewError, setOverviewError] = useState<string | null>(null);
  const [view, setView] = useState<ViewId>('explore-coarse');
  const [k, setK] = useState(5);
  const [nprobes, setNprobes] = useState<number | null>(null);
  const [efSearch, setEfSearch] = useState(64);
  const [efDraft, setEfDraft] = useState('64');
  const [building, setBuilding] = useState<Building | null>(null);
  const [ivfBuilding, setIvfBuilding] = useState<Building | null>(null);
  const [projectionBuilding, setProjectionBuilding] = useState<Building | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    setOverview(null);
    setOverviewError(null);
    exploreOverview(collection, controller.signal)
      .then((answer) => {
        setOverview(answer);
        setNprobes('defaultNprobes' in answer.ivf ? answer.ivf.defaultNprobes : null);
        setEfSearch(answer.defaults.efSearch);
        setEfDraft(String(answer.defaults.efSearch));
        // Open on the collection's own index: its HNSW graph, or else the IVF views where there can be some.
        if (answer.indexKind === 'hnsw') setView('explore-hnsw');
        else if (!('numPartitions' in answer.ivf))
          setView((v) => (v === 'explore-hnsw' ? v : 'explore-projection'));
      })
      .catch((error) => {
        if (!controller.signal.aborted) setOverviewError(errorText(error));
      });
    return () => controller.abort();
  }, [collection]);

  // The IVF views' partitions: the collection's own IVF index, or an IVF-Flat the server builds for them
  // (null when there can be none: too many images, or none).
  const ivf = overview && 'numPartitions' in overview.ivf ? overview.ivf : null;
  const base = query && overview ? `${collection}|${queryId(query)}|${k}` : null;
  const wantsIvf = view === 'explore-coarse' || view === 'explore-distance';
  /** How far the server is with the IVF-Flat of the view, worded as its 202 answers are. */
  const ivfProgress = async (signal: AbortSignal): Promise<Building | null> => {
    const status = await ivfStatus(collection, signal);
    if (status.state !== 'building') return null;
    return {
      ...status,
      message: `Building an IVF-Flat of ${status.numPartitions} partitions for ${collection} (${status.images.toLocaleString('en')} images): ${status.percent}%`,
    };
  };
  const ivfTrace = useLoaded<IvfTrace>(
    base && ivf && wantsIvf ? `${base}|${nprobes}` : null,
    async (signal) => {
      const input = await searchInputFor(query!, collection);
      return whenBuilt<IvfTrace>(
        signal,
        () => exploreIvf(collection, input, { k, nprobes: nprobes ?? undefined, crop: query!.crop, signal }),
        () => ivfProgress(signal),
        setIvfBuilding,
      );
    },
  );
  const projection = useLoaded<ProjectionTrace>(
    base && view === 'explore-projection' ? `${base}|${nprobes}` : null,
    async (signal) => {
      const input = await searchInputFor(query!, collection);
      return whenBuilt<ProjectionTrace>(
        signal,
        () =>
          exploreProjection(collection, input, {
            k,
            nprobes: ivf ? (nprobes ?? undefined) : undefined,
            crop: query!.crop,
            signal,
          }),
        () => ivfProgress(signal),
        setProjectionBuilding,
      );
    },
  );
  const hnsw = useLoaded<HnswTrace>(
    base && view === 'explore-hnsw' ? `${base}|${efSearch}` : null,
    async (signal) => {
      const input = await searchInputFor(query!, collection);
      return whenBuilt<HnswTrace>(
        signal,
        () => exploreHnsw(collection, input, { k, efSearch, crop: query!.crop, signal }),
        async () => {
          const status = await hnswStatus(collection, signal);
          if (status.state !== 'building') return null;
          return {
            ...status,
            message: `Building the HNSW graph of ${collection} (${status.images.toLocaleString('en')} images): ${status.percent}%`,
          };
        },
        setBuilding,
      );
    },
  );
  // The partitions traced (the collection may have changed since the overview was read).
  const numPartitions = ivfTrace.data?.coarse.numPartitions ?? ivf?.numPartitions ?? 0;
  const origin = (source: 'collection' | 'explore', kind: string) =>
    partitionsOrigin(source, kind, collection, overview?.indexKind ?? 'unknown');

  if (!query)
    return (
      <section class="explore" aria-labelledby="explore-heading">
        <h2 id="explore-heading">Explore</h2>
        <p class="hint">
          Search with an image first (in the Search view: an example, an upload, the webcam, an address or a
          result). Explore then shows how the index of {collection} found its neighbours.
        </p>
      </section>
    );

  // Why there are no partitions, or whose they are when not the collection's own index.
  const ivfNote = overview && (overview.ivfNote || !ivf) && (
    <p class="explore-note">{overview.ivfNote ?? 'This collection has no partitions to show.'}</p>
  );
  const ivfProgressBar = (loaded: Building | null) =>
    loaded && <BuildProgress id="explore-ivf-progress" building={loaded} />;
  const stale = (key: string | null, loaded: { key: string | null }) => (key !== loaded.key ? ' stale' : '');

  return (
    <section class="explore" aria-labelledby="explore-heading">
      <div class="explore-head">
        <figure class="explore-query">
          <img src={query.previewUrl} alt={`Explored image: ${query.title}`} />
          <figcaption>
            <h2 id="explore-heading">Explore</h2>
            <span class="muted">
              {query.title}
              {query.crop && ' (cropped)'}
            </span>
            {overview && (
              <span class="muted">
                {' '}
                · {overview.size.toLocaleString('en')} images, {overview.indexKind} index
                {ivf &&
                  ivf.state === 'ready' &&
                  ivf.source === 'collection' &&
                  `, ${ivf.numPartitions} partitions`}
              </span>
            )}
          </figcaption>
        </figure>
        <div class="explore-controls">
          <Slider id="explore-k" label="Results (k)" min={1} max={MAX_K} value={k} onCommit={setK} />
          {ivf && view !== 'explore-hnsw' && (
            <Slider
              id="explore-nprobes"
              label="Partitions probed (nprobes)"
              min={1}
              max={Math.max(1, numPartitions)}
              value={Math.min(nprobes ?? ivf.defaultNprobes, Math.max(1, numPartitions))}
              onCommit={setNprobes}
            />
          )}
          {view === 'explore-hnsw' && (
            <div class="explore-control">
              <label for="explore-ef">Beam width (efSearch)</label>
              <input
                id="explore-ef"
                type="number"
                min={1}
                max={1024}
                value={efDraft}
                onInput={(event) => setEfDraft(event.currentTarget.value)}
                onChange={(event) => {
                  const value = Math.round(Number(event.currentTarget.value));
                  if (Number.isFinite(value) && value >= 1 && value <= 1024) setEfSearch(value);
                  else setEfDraft(String(efSearch));
                }}
              />
            </div>
          )}
        </div>
      </div>
      {overviewError && (
        <p class="explore-error" role="alert">
          What the index of {collection} can show could not be read: {overviewError}
        </p>
      )}

      <Tabs
        label="Explore views"
        selected={view}
        onSelect={setView}
        tabs={[
          {
            id: 'explore-coarse',
            title: 'IVF coarse search',
            panel: view === 'explore-coarse' && (
              <>
                {ivfNote}
                {ivfProgressBar(ivfBuilding)}
                {!ivfBuilding && <Status loaded={ivfTrace} what="The coarse search" />}
                {ivfTrace.data && ivf && (
                  <div class={`explore-figure${stale(`${base}|${nprobes}`, ivfTrace)}`}>
                    <ExploreCoarse
                      trace={ivfTrace.data}
                      collection={collection}
                      origin={origin(ivfTrace.data.source, ivfTrace.data.kind)}
                      onEnlarge={onEnlarge}
                    />
                  </div>
                )}
              </>
            ),
          },
          {
            id: 'explore-distance',
            title: 'IVF fine search: distance',
            panel: view === 'explore-distance' && (
              <>
                {ivfNote}
                {ivfProgressBar(ivfBuilding)}
                {!ivfBuilding && <Status loaded={ivfTrace} what="The fine search" />}
                {ivfTrace.data && ivf && (
                  <div class={`explore-figure${stale(`${base}|${nprobes}`, ivfTrace)}`}>
                    <ExploreDistance
                      trace={ivfTrace.data}
                      origin={origin(ivfTrace.data.source, ivfTrace.data.kind)}
                      onEnlarge={onEnlarge}
                    />
                  </div>
                )}
              </>
            ),
          },
          {
            id: 'explore-projection',
            title: 'IVF fine search: projection',
            panel: view === 'explore-projection' && (
              <>
                {ivfProgressBar(projectionBuilding)}
                {!projectionBuilding && <Status loaded={projection} what="The projection" />}
                {projection.data && (
                  <div class={`explore-figure${stale(`${base}|${nprobes}`, projection)}`}>
                    <ExploreProjection
                      trace={projection.data}
                      origin={
                        projection.data.source
                          ? origin(projection.data.source, projection.data.kind ?? 'ivf-flat')
                          : null
                      }
                      onEnlarge={onEnlarge}
                    />
                  </div>
                )}
              </>
            ),
          },
          {
            id: 'explore-hnsw',
            title: 'HNSW search',
            panel: view === 'explore-hnsw' && (
              <>
                {building && <BuildProgress id="explore-hnsw-progress" building={building} />}
                {!building && <Status loaded={hnsw} what="The HNSW search" />}
                {hnsw.data && (
                  <div class={`explore-figure${stale(`${base}|${efSearch}`, hnsw)}`}>
                    <ExploreHnsw trace={hnsw.data} onEnlarge={onEnlarge} />
                  </div>
                )}
              </>
            ),
          },
        ]}
      />
    </section>
  );
}
