import { useEffect, useMemo, useState } from 'preact/hooks';
import type { HnswTrace, ImageRef } from '../api.ts';
import { distanceText, ExploreCanvas, ExplorePointDetail, ExploreResults, labelOf } from './ExploreParts.tsx';

const WIDTH = 1000;
const LEFT = 70;
const PLANE_WIDTH = 620;
const SKEW = 240;
const PLANE_DEPTH = 140;
const GAP = 56;
const TOP = 16;
/** The whole path plays in about this long, whatever its number of steps. */
const PLAY_MS = 7000;

/** One frame of the animation: on trace level `level`, the first `visited` nodes expanded. */
interface Step {
  level: number;
  visited: number;
}

/**
 * The HNSW search: one plane per level of the graph, top level first, each with a sample of its nodes
 * and links (every node keeps its place on every plane); the query's path drawn through them: the nodes
 * visited and the links followed on each level, down to the results on level 0. Play, Pause, Step and
 * Replay run the path; the slider moves through it; the side lists each level's counts.
 */
export function ExploreHnsw({
  trace,
  onEnlarge,
}: {
  trace: HnswTrace;
  onEnlarge: (image: ImageRef) => void;
}) {
  const levels = trace.trace;
  const planes = trace.graph.levels;
  const height = TOP + planes.length * (PLANE_DEPTH + GAP);
  const planeOf = useMemo(() => new Map(planes.map((p, i) => [p.level, i])), [planes]);
  const place = useMemo(() => {
    const map = new Map<number, { u: number; v: number }>();
    trace.positions.ids.forEach((id, i) => {
      map.set(id, { u: trace.positions.x[i]!, v: trace.positions.y[i]! });
    });
    return map;
  }, [trace]);
  const labelIndex = useMemo(() => new Map(trace.positions.ids.map((id, i) => [id, i])), [trace]);
  /** A point (u, v) of level `level`'s plane on the screen. */
  const screen = (level: number, u: number, v: number) => {
    const top = TOP + (planeOf.get(level) ?? 0) * (PLANE_DEPTH + GAP);
    return { x: LEFT + SKEW * (1 - v) + u * PLANE_WIDTH, y: top + v * PLANE_DEPTH };
  };
  const at = (level: number, id: number) => {
    const p = place.get(id);
    return p ? screen(level, p.u, p.v) : undefined;
  };

  const steps = useMemo(() => {
    const out: Step[] = [];
    levels.forEach((level, l) => {
      for (let v = 0; v <= level.visited.ids.length; v++) out.push({ level: l, visited: v });
    });
    return out;
  }, [levels]);
  // The last step shows the results: the path starts at the end, whole; Play runs it from the top.
  const last = steps.length;
  const [step, setStep] = useState(last);
  const [playing, setPlaying] = useState(false);
  useEffect(() => {
    setStep(last);
    setPlaying(false);
  }, [trace, last]);
  useEffect(() => {
    if (!playing) return;
    const every = Math.min(500, Math.max(30, PLAY_MS / Math.max(1, last)));
    const timer = setInterval(() => {
      setStep((s) => {
        if (s >= last) {
          setPlaying(false);
          return s;
        }
        return s + 1;
      });
    }, every);
    return () => clearInterval(timer);
  }, [playing, last]);
  const finished = step >= last;
  const frame = finished ? { level: levels.length - 1, visited: Number.POSITIVE_INFINITY } : steps[step]!;

  /** How much of level l's trace the current step shows. */
  const shown = (l: number) =>
    l < frame.level ? Number.POSITIVE_INFINITY : l === frame.level ? frame.visited : 0;

  // The points one can point at: every visited node on its level, in path order, then the results.
  const targets = useMemo(() => {
    const out: { level: number; id: number; distance: number; x: number; y: number }[] = [];
    for (const level of levels)
      level.visited.ids.forEach((id, i) => {
        const p = at(level.level, id);
        if (p) out.push({ level: level.level, id, distance: level.visited.distances[i]!, ...p });
      });
    for (const result of trace.results) {
      const p = at(0, result.id);
      if (p) out.push({ level: 0, id: result.id, distance: result.distance, ...p });
    }
    return out;
  }, [trace]);
  const xs = useMemo(() => targets.map((t) => t.x), [targets]);
  const ys = useMemo(() => targets.map((t) => t.y), [targets]);
  const order = useMemo(() => targets.map((_, i) => i), [targets]);
  const [selected, setSelected] = useState<number | null>(null);
  const pointed = selected !== null ? targets[selected] : undefined;

  // What the side says about the current step: the node being visited, or the results.
  const currentLevel = levels[frame.level];
  const visiting =
    !finished && currentLevel && frame.visited > 0
      ? {
          id: currentLevel.visited.ids[frame.visited - 1]!,
          distance: currentLevel.visited.distances[frame.visited - 1]!,
        }
      : undefined;
  const focus =
    pointed ?? (visiting && currentLevel ? { ...visiting, level: currentLevel.level } : undefined);
  const focusLabel = focus ? labelOf(trace.positions.labels, labelIndex.get(focus.id) ?? -1) : '';
  const resultsText = `Reached the ${trace.results.length} results: ${trace.results.map((r) => `#${r.id}`).join(', ')}`;
  const stepText = finished
    ? resultsText
    : currentLevel
      ? frame.visited === 0
        ? `Level ${currentLevel.level}: entering at #${currentLevel.entry.id}`
        : `Level ${currentLevel.level}: visiting #${visiting?.id} (${frame.visited} of ${currentLevel.visited.ids.length})`
      : '';

  const pathOnLevel = (l: number) => {
    const level = levels[l]!;
    const count = Math.min(shown(l), level.visited.ids.length);
    const visited = new Set(level.visited.ids.slice(0, count));
    const lines = [];
    for (let i = 0; i < level.links.from.length; i++) {
      if (!visited.has(level.links.from[i]!)) continue;
      const a = at(level.level, level.links.from[i]!);
      const b = at(level.level, level.links.to[i]!);
      if (!a || !b) continue;
      lines.push(
        <line
          key={i}
          class={level.links.accepted[i] ? 'explore-hnsw-step' : 'explore-hnsw-tried'}
          x1={a.x}
          y1={a.y}
          x2={b.x}
          y2={b.y}
        />,
      );
    }
    return { count, lines };
  };

  return (
    <div class="explore-stage explore-hnsw">
      <div>
        <div class="explore-player">
          <button
            type="button"
            onClick={() => {
              if (!playing && finished) setStep(0);
              setPlaying(!playing);
            }}
          >
            {playing ? 'Pause' : 'Play'}
          </button>
          <button
            type="button"
            disabled={finished}
            onClick={() => {
              setPlaying(false);
              setStep((s) => Math.min(last, s + 1));
            }}
          >
            Step
          </button>
          <button
            type="button"
            onClick={() => {
              setStep(0);
              setPlaying(true);
            }}
          >
            Replay
          </button>
          <label class="explore-step-slider">
            <span>Position in the path</span>
            <input
              type="range"
              min={0}
              max={last}
              value={step}
              aria-valuetext={stepText}
              onInput={(event) => {
                setPlaying(false);
                setStep(Number(event.currentTarget.value));
              }}
            />
          </label>
          <p class="explore-step-text" data-finished={finished ? 'true' : 'false'}>
            {stepText}
          </p>
        </div>
        <ExploreCanvas
          label={`HNSW graph: ${planes.length} levels, top first, with the query's path. Arrow keys step along the nodes visited, then the results.`}
          describedBy="explore-hnsw-detail"
          width={WIDTH}
          height={height}
          xs={xs}
          ys={ys}
          order={order}
          selected={selected}
          onSelect={setSelected}
          reach={24}
        >
          {planes.map((plane) => {
            const corners = [
              screen(plane.level, 0, 0),
              screen(plane.level, 1, 0),
              screen(plane.level, 1, 1),
              screen(plane.level, 0, 1),
            ];
            const edges = [];
            for (let i = 0; i + 1 < plane.sample.edges.length; i += 2) {
              const a = at(plane.level, plane.sample.edges[i]!);
              const b = at(plane.level, plane.sample.edges[i + 1]!);
              if (a && b) edges.push(<line key={i} x1={a.x} y1={a.y} x2={b.x} y2={b.y} />);
            }
            const mid = screen(plane.level, 0, 0.5);
            return (
              <g key={plane.level} class="explore-plane" data-level={plane.level}>
                <polygon points={corners.map((c) => `${c.x},${c.y}`).join(' ')} />
                <text class="explore-plane-label" x={8} y={mid.y}>
                  Level {plane.level}
                </text>
                <g class="explore-plane-edges">{edges}</g>
                <g class="explore-plane-nodes">
                  {plane.sample.nodes.map((id) => {
                    const p = at(plane.level, id);
                    return p && <circle key={id} cx={p.x} cy={p.y} r={2} />;
                  })}
                </g>
              </g>
            );
          })}
          {/* The descent: each level's best node is the next level's entry, straight below it. */}
          {levels.slice(0, -1).map((level, l) => {
            const next = levels[l + 1]!;
            const a = at(level.level, level.best.id);
            const b = at(next.level, next.entry.id);
            if (!a || !b || shown(l + 1) === 0) return null;
            return (
              <line key={level.level} class="explore-hnsw-descent" x1={a.x} y1={a.y} x2={b.x} y2={b.y} />
            );
          })}
          {levels.map((level, l) => {
            if (shown(l) === 0 && l !== frame.level) return null;
            const { count, lines } = pathOnLevel(l);
            const entry = at(level.level, level.entry.id);
            return (
              <g key={level.level} class="explore-hnsw-path" data-level={level.level} data-visited={count}>
                {lines}
                {level.visited.ids.slice(0, count).map((id) => {
                  const p = at(level.level, id);
                  return p && <circle key={id} class="explore-hnsw-visited" cx={p.x} cy={p.y} r={4} />;
                })}
                {entry && <circle class="explore-hnsw-entry" cx={entry.x} cy={entry.y} r={7} />}
              </g>
            );
          })}
          {levels.map((level) => {
            const q = screen(level.level, trace.query.x, trace.query.y);
            return (
              <circle
                key={level.level}
                class="explore-query-ring"
                cx={q.x}
                cy={q.y}
                r={level.level === 0 ? 10 : 6}
              />
            );
          })}
          {finished &&
            trace.results.map((result) => {
              const p = at(0, result.id);
              return (
                p && (
                  <g key={result.id} class="explore-result-mark" data-result={result.rank}>
                    <circle cx={p.x} cy={p.y} r={9} />
                    <text x={p.x + 12} y={p.y - 8}>
                      {result.rank}
                    </text>
                  </g>
                )
              );
            })}
          {visiting &&
            currentLevel &&
            (() => {
              const p = at(currentLevel.level, visiting.id);
              return p && <circle class="explore-selected" cx={p.x} cy={p.y} r={9} />;
            })()}
          {pointed && <circle class="explore-selected" cx={pointed.x} cy={pointed.y} r={9} />}
        </ExploreCanvas>
      </div>

      <aside class="explore-side">
        <p>
          {trace.graph.size.toLocaleString('en')} images in {planes.length} levels (m = {trace.graph.m},
          efConstruction = {trace.graph.efConstruction}
          {trace.source === 'explore' ? ', a graph built for this view' : ', the collection’s own index'}); k
          = {trace.k}, efSearch = {trace.efSearch}.
        </p>
        <ol class="explore-levels">
          {levels.map((level, l) => {
            const plane = planes[planeOf.get(level.level) ?? -1];
            return (
              <li key={level.level} aria-current={!finished && l === frame.level ? 'step' : undefined}>
                <strong>Level {level.level}</strong> · best distance {distanceText(level.best.distance)} (#
                {level.best.id})
                <br />
                visited {level.visited.total.toLocaleString('en')} of{' '}
                {(plane?.nodes ?? 0).toLocaleString('en')} nodes, followed{' '}
                {level.links.total.toLocaleString('en')} of {(plane?.links ?? 0).toLocaleString('en')} links
              </li>
            );
          })}
        </ol>
        <ExplorePointDetail
          id="explore-hnsw-detail"
          title={
            focus
              ? `Level ${focus.level} · #${focus.id} · ${focusLabel}`
              : 'Play the path, or point at a node.'
          }
          lines={focus ? [`distance ${distanceText(focus.distance)}`] : []}
          thumbnailUrl={focus ? `${trace.thumbnailBase}${focus.id}` : null}
        />
        <p class="visually-hidden" aria-live="polite">
          {finished ? resultsText : ''}
        </p>
        {finished && <ExploreResults results={trace.results} onEnlarge={onEnlarge} caption="Results" />}
      </aside>
    </div>
  );
}
