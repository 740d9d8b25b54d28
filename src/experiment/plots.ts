import type { TopLevelSpec } from 'vega-lite';
import type { ExperimentResults, ExperimentRow } from './types.ts';

/** One figure of a report: Vega-Lite, rendered to SVG by vega in Node (no browser, no canvas). */
export interface Plot {
  file: string;
  title: string;
  spec: TopLevelSpec;
}

type Datum = Record<string, string | number | boolean | null>;

const measured = (rows: ExperimentRow[]) => rows.filter((r) => r.skipped === null);

function space(r: ExperimentRow): string {
  return r.params.pca ? `PCA to ${r.params.pca}` : 'original';
}

function series(r: ExperimentRow): string {
  return `${String(r.params.build ?? r.label)}`;
}

function searchOf(r: ExperimentRow): string {
  const parts = [];
  if (r.params.nprobes !== null && r.params.nprobes !== undefined) parts.push(`nprobes ${r.params.nprobes}`);
  if (r.params.refineFactor) parts.push(`refine×${r.params.refineFactor}`);
  return parts.join(', ') || 'exact';
}

/** Points not beaten on both recall and speed by another point, in order of speed. */
export function paretoFront<T extends { recall: number; qps: number }>(points: T[]): T[] {
  const front = points.filter(
    (p) =>
      !points.some(
        (q) => q !== p && q.recall >= p.recall && q.qps >= p.qps && (q.recall > p.recall || q.qps > p.qps),
      ),
  );
  return front.sort((a, b) => a.qps - b.qps);
}

const WIDTH = 460;
const HEIGHT = 300;
const config = {
  font: 'sans-serif',
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelLimit: 260 },
};

function recallQps(rows: ExperimentRow[]): Plot | undefined {
  const points = measured(rows)
    .filter((r) => r.qps !== null && r.recall10At10 !== null)
    .map((r) => ({
      label: r.label,
      index: r.index ?? '',
      space: space(r),
      qps: r.qps!,
      recall: r.recall10At10!,
    }));
  if (points.length === 0) return undefined;
  const front = paretoFront(points).map((p) => ({ ...p, line: 'Pareto front' }));
  const x = {
    field: 'qps',
    type: 'quantitative' as const,
    scale: { type: 'log' as const },
    title: 'Single-query QPS (queries/s, log scale)',
  };
  const y = {
    field: 'recall',
    type: 'quantitative' as const,
    scale: { domain: [0, 1] },
    title: '10-recall@10 (held-out queries)',
  };
  return {
    file: 'recall-qps.svg',
    title: 'Recall against speed',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: {
        text: 'Recall against speed',
        subtitle: 'each point a row; the dashed line joins the Pareto front',
      },
      width: WIDTH,
      height: HEIGHT,
      config,
      layer: [
        {
          data: { values: front },
          mark: { type: 'line', color: '#555', strokeDash: [5, 4] },
          encoding: { x, y, detail: { field: 'line', type: 'nominal' } },
        },
        {
          data: { values: points },
          mark: { type: 'point', filled: true, size: 70, opacity: 0.85 },
          encoding: {
            x,
            y,
            color: { field: 'index', type: 'nominal', title: 'Index type' },
            shape: { field: 'space', type: 'nominal', title: 'Vectors' },
            tooltip: [
              { field: 'label' },
              { field: 'qps', format: '.0f' },
              { field: 'recall', format: '.3f' },
            ],
          },
        },
        {
          data: { values: front },
          mark: { type: 'point', shape: 'circle', size: 220, filled: false, strokeWidth: 1.5 },
          encoding: {
            x,
            y,
            stroke: { field: 'line', type: 'nominal', title: 'Marked', scale: { range: ['#222'] } },
          },
        },
      ],
      resolve: { scale: { color: 'independent', shape: 'independent', stroke: 'independent' } },
    },
  };
}

function recallMemory(rows: ExperimentRow[]): Plot | undefined {
  const points = measured(rows)
    .filter((r) => r.bytesPerVector !== null && r.recall10At10 !== null)
    .map((r) => ({
      label: r.label,
      index: r.index ?? '',
      space: space(r),
      bytes: r.bytesPerVector!,
      recall: r.recall10At10!,
    }));
  if (points.length === 0) return undefined;
  return {
    file: 'recall-memory.svg',
    title: 'Recall against memory',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: {
        text: 'Recall against memory per vector',
        subtitle: 'bytes the index holds per added vector (codes, ids, copies)',
      },
      width: WIDTH,
      height: HEIGHT,
      config,
      data: { values: points },
      mark: { type: 'point', filled: true, size: 70 },
      encoding: {
        x: {
          field: 'bytes',
          type: 'quantitative',
          scale: { type: 'log' },
          title: 'Memory per vector (bytes, log scale)',
        },
        y: {
          field: 'recall',
          type: 'quantitative',
          scale: { domain: [0, 1] },
          title: '10-recall@10 (held-out queries)',
        },
        color: { field: 'index', type: 'nominal', title: 'Index type' },
        shape: { field: 'space', type: 'nominal', title: 'Vectors' },
        tooltip: [{ field: 'label' }, { field: 'bytes', format: '.1f' }, { field: 'recall', format: '.3f' }],
      },
    },
  };
}

function buildTime(rows: ExperimentRow[]): Plot | undefined {
  const seen = new Set<string>();
  const values: Datum[] = [];
  for (const r of measured(rows)) {
    if (r.trainSeconds === null || r.addSeconds === null) continue;
    const build = `${series(r)}${r.preset === 'runtime' ? ` n=${r.n}` : ''}`;
    if (seen.has(build)) continue;
    seen.add(build);
    values.push({ build, phase: 'train', order: 0, seconds: r.trainSeconds });
    values.push({ build, phase: 'add', order: 1, seconds: r.addSeconds });
  }
  if (values.length === 0) return undefined;
  return {
    file: 'build-time.svg',
    title: 'Build time per index',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: 'Build time per index', subtitle: 'training (PCA included) and adding the database' },
      width: WIDTH,
      height: { step: 16 },
      config,
      data: { values },
      mark: 'bar',
      encoding: {
        y: { field: 'build', type: 'nominal', sort: null, title: 'Index', axis: { labelLimit: 320 } },
        x: { field: 'seconds', type: 'quantitative', stack: 'zero', title: 'Build time (s)' },
        color: { field: 'phase', type: 'nominal', title: 'Phase', sort: ['train', 'add'] },
        order: { field: 'order', type: 'quantitative' },
        tooltip: [{ field: 'build' }, { field: 'phase' }, { field: 'seconds', format: '.2f' }],
      },
    },
  };
}

/** Recall and QPS against one swept parameter, side by side, one line per series. */
function sweep(
  rows: ExperimentRow[],
  group: string,
  file: string,
  title: string,
  param: { field: string; title: string; log?: boolean },
  seriesOf: (r: ExperimentRow) => string,
  seriesTitle: string,
): Plot | undefined {
  const values = measured(rows)
    .filter((r) => r.group === group)
    .map((r) => ({
      x: r.params[param.field] ?? r.dimension,
      series: seriesOf(r),
      recall: r.recall10At10,
      qps: r.qps,
      label: r.label,
    }));
  if (values.length === 0) return undefined;
  const x = {
    field: 'x',
    type: 'quantitative' as const,
    scale: param.log ? { type: 'log' as const, base: 2 } : { zero: false },
    title: param.title,
  };
  const color = { field: 'series', type: 'nominal' as const, title: seriesTitle };
  return {
    file,
    title,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: title, subtitle: '10-recall@10 and single-query QPS on the held-out queries' },
      config,
      data: { values },
      hconcat: [
        {
          width: 320,
          height: 260,
          mark: { type: 'line', point: true },
          encoding: {
            x,
            y: { field: 'recall', type: 'quantitative', scale: { domain: [0, 1] }, title: '10-recall@10' },
            color,
            tooltip: [{ field: 'label' }, { field: 'recall', format: '.3f' }],
          },
        },
        {
          width: 320,
          height: 260,
          mark: { type: 'line', point: true },
          encoding: {
            x,
            y: {
              field: 'qps',
              type: 'quantitative',
              scale: { type: 'log' },
              title: 'Single-query QPS (queries/s, log scale)',
            },
            color,
            tooltip: [{ field: 'label' }, { field: 'qps', format: '.0f' }],
          },
        },
      ],
    },
  };
}

function runtime(rows: ExperimentRow[]): Plot | undefined {
  const values = measured(rows)
    .filter((r) => r.group === 'runtime')
    .map((r) => ({
      n: r.n,
      index: r.index ?? '',
      p50: r.p50Ms,
      build: (r.trainSeconds ?? 0) + (r.addSeconds ?? 0),
      recall: r.recall10At10,
    }));
  if (values.length === 0) return undefined;
  const x = {
    field: 'n',
    type: 'quantitative' as const,
    scale: { type: 'log' as const },
    title: 'Vectors in the database (log scale)',
  };
  const color = { field: 'index', type: 'nominal' as const, title: 'Index type' };
  return {
    file: 'runtime.svg',
    title: 'Exact against approximate search as the database grows',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: {
        text: 'Exact against approximate search as the database grows',
        subtitle: 'median single-query latency and build time (train + add)',
      },
      config,
      data: { values },
      hconcat: [
        {
          width: 320,
          height: 260,
          mark: { type: 'line', point: true },
          encoding: {
            x,
            y: {
              field: 'p50',
              type: 'quantitative',
              scale: { type: 'log' },
              title: 'Median query latency (ms, log scale)',
            },
            color,
            tooltip: [
              { field: 'n' },
              { field: 'index' },
              { field: 'p50', format: '.3f' },
              { field: 'recall', format: '.3f' },
            ],
          },
        },
        {
          width: 320,
          height: 260,
          mark: { type: 'line', point: true },
          encoding: {
            x,
            y: { field: 'build', type: 'quantitative', scale: { type: 'symlog' }, title: 'Build time (s)' },
            color,
            tooltip: [{ field: 'n' }, { field: 'index' }, { field: 'build', format: '.2f' }],
          },
        },
      ],
    },
  };
}

function modelBars(rows: ExperimentRow[], group: 'models' | 'projection'): Plot | undefined {
  const values = measured(rows)
    .filter((r) => r.group === group && r.precisionAt5 !== null)
    .map((r) => ({
      feature: `${r.model} · ${r.pooling}`,
      normalization: r.normalization ?? '',
      p5: r.precisionAt5,
      p1: r.precisionAt1,
      map10: r.map10,
    }));
  if (values.length === 0) return undefined;
  const title =
    group === 'models'
      ? 'Same-label P@5 per model × pooling × normalisation'
      : 'Learned projection (LDA) against the raw features, held-out half';
  return {
    file: group === 'models' ? 'models-p5.svg' : 'projection-p5.svg',
    title,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: { text: title, subtitle: 'fraction of the first 5 results with the query’s label' },
      width: { step: 18 },
      height: HEIGHT,
      config,
      data: { values },
      mark: 'bar',
      encoding: {
        x: {
          field: 'feature',
          type: 'nominal',
          sort: null,
          title: 'Model · pooling',
          axis: { labelAngle: -30, labelLimit: 400 },
        },
        xOffset: { field: 'normalization', type: 'nominal', sort: null },
        y: { field: 'p5', type: 'quantitative', scale: { domain: [0, 1] }, title: 'Same-label P@5' },
        color: {
          field: 'normalization',
          type: 'nominal',
          sort: null,
          title: group === 'models' ? 'Normalisation' : 'Features',
        },
        tooltip: [
          { field: 'feature' },
          { field: 'normalization' },
          { field: 'p1', format: '.3f', title: 'P@1' },
          { field: 'p5', format: '.3f', title: 'P@5' },
          { field: 'map10', format: '.3f', title: 'mAP@10' },
        ],
      },
    },
  };
}

/** The figures that fit the results' rows (a preset without data for a figure simply has none). */
export function plotsFor(results: ExperimentResults): Plot[] {
  const rows = results.rows;
  const indexRows = rows.filter((r) => r.index !== null);
  const plots = [recallQps(indexRows), recallMemory(indexRows), buildTime(indexRows)];
  if (results.preset === 'sweep') {
    plots.push(
      sweep(
        rows,
        'nprobes',
        'nprobes.svg',
        'Partitions visited (nprobes)',
        { field: 'nprobes', title: 'nprobes (log scale)', log: true },
        series,
        'Index',
      ),
      sweep(
        rows,
        'numPartitions',
        'num-partitions.svg',
        'Number of partitions',
        { field: 'numPartitions', title: 'numPartitions (log scale)', log: true },
        searchOf,
        'Search',
      ),
      sweep(
        rows,
        'numSubVectors',
        'sub-vectors.svg',
        'Sub-vectors per vector (bytes of code)',
        { field: 'numSubVectors', title: 'numSubVectors (log scale)', log: true },
        searchOf,
        'Search',
      ),
      sweep(
        rows,
        'refineFactor',
        'refine.svg',
        'Re-ranking with a float16 copy',
        { field: 'refineFactor', title: 'refineFactor (0: none)' },
        (r) => `PQ${r.params.numSubVectors}, nprobes ${r.params.nprobes}`,
        'Codes and nprobes',
      ),
      sweep(
        rows,
        'pcaDimension',
        'pca.svg',
        'PCA output dimension',
        { field: 'pca', title: 'Dimensions kept by PCA (log scale)', log: true },
        (r) => `${r.index}, ${searchOf(r)}`,
        'Index and search',
      ),
    );
  }
  if (results.preset === 'runtime') plots.push(runtime(rows));
  if (results.preset === 'models') plots.push(modelBars(rows, 'models'), modelBars(rows, 'projection'));
  return plots.filter((p): p is Plot => p !== undefined);
}

/** Vega-Lite → Vega → SVG text, headless. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // Loaded on first use: importing ris (or serving) should not pay for the plotting libraries.
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
