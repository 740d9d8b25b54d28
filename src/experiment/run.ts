import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { Assigner } from '../ann/kmeans.ts';
import { checkDistanceType, type DistanceType } from '../ann/metric.ts';
import { Random } from '../ann/random.ts';
import { walkImages } from '../collection/walk.ts';
import { ArgumentError, describe, ModelError } from '../errors.ts';
import { nodeFileStore } from '../node/file-store.ts';
import {
  type Dataset,
  gather,
  indexLabels,
  isSyntheticSpec,
  loadCollectionVectors,
  loadVectorsFile,
  splitQueries,
  syntheticVectors,
  type VectorSet,
} from './data.ts';
import { cachedModels } from './features.ts';
import { type BuildSpec, makeBench, measureBuild } from './indexes.ts';
import { type ModelsInput, ROWS_PER_MODEL, runModels, type Split } from './models.ts';
import { newReportDir } from './paths.ts';
import { NOTEBOOK, rowsOf, runtimePlan, runtimeSizes, seedPlan, sweepPlan } from './plans.ts';
import { plotsFor, renderSvg } from './plots.ts';
import { reportMarkdown } from './report.ts';
import {
  type ExperimentEvent,
  type ExperimentResults,
  type ExperimentRow,
  type MachineInfo,
  PRESETS,
  type Preset,
} from './types.ts';

export interface ExperimentOptions {
  /** 'seed' (default): the notebook's table; 'sweep': parameter curves; 'models': models × pooling × normalisation; 'runtime': exact vs IVF-PQ as n grows. */
  preset?: Preset;
  /** A collection's stored vectors (and, for the models preset, its images). */
  collection?: string;
  /** Where collections live. Default risHome(). */
  home?: string;
  /** A .fvecs file, or 'synthetic:N' / 'synthetic:NxD' for seeded clustered vectors. */
  vectors?: string;
  /** Queries in their own .fvecs file (then none are held out of `vectors`). */
  queriesFile?: string;
  /** One label per line for `vectors` (and `queryLabels` for `queriesFile`). */
  labels?: string;
  queryLabels?: string;
  /** The models preset: a folder of images, labelled by their first sub-folder. */
  images?: string;
  /** Queries held out of the database. Default 1000 (fewer on small inputs: a fifth of them). */
  queries?: number;
  /** Seeds every split, sample and k-means. Default 1. */
  seed?: number;
  /** The report's folder. Default <collection>/experiments/<time>, or ./experiments/<time>. */
  out?: string;
  /** Distance of every index and of the ground truth. Default 'l2' (the notebook's). */
  distanceType?: DistanceType;
  /** The seed preset's PCA output dimension. Default 128 (the notebook's). */
  pcaDimension?: number;
  /** The models preset: built-in names or .onnx paths. Default: the built-in models in the cache (and the collection's). */
  models?: string[];
  cacheDir?: string;
  /** The models preset: leave-one-out over every image (default), or within a held-out half. */
  split?: Split;
  /** The models preset: at most this many images per label (seeded), and at most `limit` in all. */
  perLabel?: number;
  limit?: number;
  /** onnxruntime threads. Default: every core. */
  threads?: number;
  /** Spreads k-means over threads (createParallelAssigner). */
  assigner?: Assigner;
  /** Single queries timed per row at most (default 1000), and seconds after which timing stops (default 5). */
  maxTimedQueries?: number;
  timeBudgetSeconds?: number;
  /** The command recorded in the report. Default: these options as JSON. */
  command?: string;
  /** Stops after the row in progress; the rows finished are kept and written. */
  signal?: AbortSignal;
  onProgress?: (event: ExperimentEvent) => void;
}

export function machineInfo(): MachineInfo {
  return {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

function positive(value: unknown, name: string, max = 1e9): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new ArgumentError(
      'OUT_OF_RANGE',
      `Expected ${name} to be a whole number from 1 to ${max} but received ${describe(value)}`,
    );
  }
  return value;
}

/** Checks the options at the boundary, with messages that say what to pass instead. */
function checkOptions(options: ExperimentOptions): void {
  const preset = options.preset ?? 'seed';
  if (!PRESETS.includes(preset)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Unknown preset ${JSON.stringify(preset)}; use one of ${PRESETS.join(', ')}`,
    );
  }
  const inputs = [options.collection, options.vectors, options.images].filter((v) => v !== undefined);
  if (inputs.length !== 1) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      inputs.length === 0
        ? 'Give what to experiment on: a collection name, --vectors base.fvecs (or synthetic:N), or --images DIR for the models preset'
        : 'Give one input only: a collection, --vectors or --images',
    );
  }
  if (preset === 'models' && options.vectors !== undefined) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      'The models preset embeds images: give a collection or --images DIR, not --vectors',
    );
  }
  if (preset !== 'models' && options.images !== undefined) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `--images is for --preset models; the ${preset} preset needs a collection or --vectors`,
    );
  }
  if ((options.queriesFile || options.labels || options.queryLabels) && options.vectors === undefined) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      '--queries-file, --labels and --query-labels go with --vectors',
    );
  }
  if (options.split !== undefined && options.split !== 'leave-one-out' && options.split !== 'held-out') {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected split to be leave-one-out or held-out but received ${describe(options.split)}`,
    );
  }
  positive(options.queries, 'queries');
  positive(options.pcaDimension, 'pcaDimension', 65536);
  positive(options.perLabel, 'perLabel');
  positive(options.limit, 'limit');
  positive(options.threads, 'threads', 1024);
  positive(options.maxTimedQueries, 'maxTimedQueries');
  if (
    options.seed !== undefined &&
    !(Number.isInteger(options.seed) && options.seed >= 0 && options.seed < 2 ** 31)
  ) {
    throw new ArgumentError(
      'OUT_OF_RANGE',
      `Expected seed to be a whole number from 0 to 2³¹ − 1 but received ${describe(options.seed)}`,
    );
  }
  checkDistanceType(options.distanceType);
}

/**
 * Runs one preset and writes DIR/results.json and DIR/report.md after every row (so an interrupted run
 * keeps what it finished), then DIR/*.svg. Resolves with the folder and the results; with `signal`
 * aborted the results have status 'interrupted'.
 */
export async function runExperiment(
  options: ExperimentOptions,
): Promise<{ dir: string; results: ExperimentResults; files: string[] }> {
  checkOptions(options);
  const preset = options.preset ?? 'seed';
  const seed = options.seed ?? 1;
  const emit = options.onProgress ?? (() => {});
  const started = performance.now();

  // Load the input first: a bad name or file fails before any folder is made.
  let set: VectorSet | undefined;
  let collectionDir: string | undefined;
  let models: ModelsInput | undefined;
  let collectionModel: string | undefined;
  let inputKind: ExperimentResults['input']['kind'];
  let inputName: string;
  if (options.collection !== undefined) {
    emit({ type: 'load', message: `reading the stored vectors of collection ${options.collection}` });
    const c = await loadCollectionVectors(options.collection, options.home);
    collectionDir = c.dir;
    collectionModel = c.model;
    set = c;
    inputKind = 'collection';
    inputName = c.name;
    if (preset === 'models') {
      const paths = c.paths.map((p) => (isAbsolute(p) ? p : join(c.root, p)));
      models = {
        paths,
        labels: c.labels ?? new Int32Array(paths.length).fill(-1),
        stored: { modelId: c.modelId, vectors: c.vectors },
      };
    }
  } else if (options.vectors !== undefined) {
    emit({ type: 'load', message: `reading ${options.vectors}` });
    set = isSyntheticSpec(options.vectors)
      ? syntheticVectors(options.vectors, seed)
      : await loadVectorsFile(options.vectors, options);
    inputKind = set.kind;
    inputName = set.name;
  } else {
    emit({ type: 'load', message: `listing the images of ${options.images}` });
    const dir = resolve(options.images!);
    if (!existsSync(dir))
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `No folder ${options.images}; give a folder of images in one sub-folder per label`,
      );
    const images = await walkImages(dir);
    const labelNames: string[] = [];
    models = {
      paths: images.map((i) => i.path),
      labels: indexLabels(
        images.map((i) => i.labels?.[0] ?? ''),
        labelNames,
      ),
    };
    inputKind = 'images';
    inputName = dir;
  }
  if (models) models = subsetImages(models, options.perLabel, options.limit, seed);

  // Everything that can fail on the input fails here, before a report folder exists.
  const modelList =
    preset === 'models' ? (options.models ?? defaultModels(options.cacheDir, collectionModel)) : [];
  if (preset === 'models' && modelList.length === 0) {
    throw new ModelError(
      'MODEL_NOT_FOUND',
      'No model to compare: none of the built-in models is in the model cache; pass --models mobilenetv2-int8,resnet50 (downloaded once) or a local .onnx with its .json config',
    );
  }
  const data =
    preset === 'models'
      ? undefined
      : splitQueries(set!, options.queries ?? 1000, seed, options.queries !== undefined);

  const dir = resolve(
    options.out ??
      newReportDir(collectionDir ? join(collectionDir, 'experiments') : join(process.cwd(), 'experiments')),
  );
  await mkdir(dir, { recursive: true });
  const results: ExperimentResults = {
    format: 'ris-experiment',
    version: 1,
    preset,
    status: 'running',
    command:
      options.command ??
      `runExperiment(${JSON.stringify({ ...options, signal: undefined, onProgress: undefined, assigner: undefined })})`,
    machine: machineInfo(),
    input: {
      kind: inputKind,
      name: inputName,
      total: set?.count ?? models?.paths.length ?? 0,
      dimension: set?.dimension ?? 0,
      labelled: set ? set.labels !== undefined : true,
    },
    seed,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    seconds: null,
    rows: [],
    notes: [],
    plots: [],
    projections: [],
    error: null,
  };

  const write = async (plots: { file: string; title: string }[] = []) => {
    await nodeFileStore.write(
      join(dir, 'results.json'),
      new TextEncoder().encode(`${JSON.stringify(results, null, 2)}\n`),
    );
    await nodeFileStore.write(
      join(dir, 'report.md'),
      new TextEncoder().encode(reportMarkdown(results, plots)),
    );
  };
  await write();

  let total = 0;
  const addRow = async (row: ExperimentRow) => {
    results.rows.push(row);
    await write();
    const done = results.rows.length;
    const elapsedSeconds = (performance.now() - started) / 1000;
    emit({
      type: 'row',
      row,
      done,
      total: Math.max(total, done),
      elapsedSeconds,
      etaSeconds: total > done ? (elapsedSeconds / done) * (total - done) : null,
    });
  };

  try {
    if (preset === 'models') {
      const list = modelList;
      total = list.length * ROWS_PER_MODEL;
      results.input.labelled = true;
      emit({
        type: 'plan',
        preset,
        rows: total,
        n: models!.paths.length,
        dimension: 0,
        queries: models!.paths.length,
      });
      const outcome = await runModels(models!, {
        models: list,
        split: options.split ?? 'leave-one-out',
        seed,
        outDir: dir,
        cacheDir: options.cacheDir,
        threads: options.threads,
        signal: options.signal,
        emit: addRow,
        onProgress: emit,
      });
      results.notes.push(...outcome.notes);
      results.projections.push(...outcome.projections);
      results.input.dimension =
        results.rows.find((r) => r.pooling === 'configured' && !r.skipped)?.dimension ?? 0;
    } else {
      if (options.queries === undefined && !set!.queries && data!.nq < 1000)
        results.notes.push(
          `The input has ${set!.count} vectors, so ${data!.nq} were held out as queries instead of 1000 (a fifth at most, leaving 256 to train product quantizers on where possible).`,
        );
      await runIndexPreset(
        preset,
        data!,
        options,
        seed,
        results,
        addRow,
        (t) => {
          total = t;
        },
        emit,
      );
    }
    results.status = options.signal?.aborted ? 'interrupted' : 'done';
  } catch (error) {
    if (options.signal?.aborted) results.status = 'interrupted';
    else {
      results.status = 'failed';
      results.error = error instanceof Error ? error.message : String(error);
    }
    if (results.status === 'failed') {
      results.finishedAt = new Date().toISOString();
      results.seconds = (performance.now() - started) / 1000;
      await write();
      throw error;
    }
  }
  results.finishedAt = new Date().toISOString();
  results.seconds = (performance.now() - started) / 1000;
  const plots = plotsFor(results);
  for (const plot of plots)
    await nodeFileStore.write(join(dir, plot.file), new TextEncoder().encode(await renderSvg(plot.spec)));
  results.plots = plots.map(({ file, title }) => ({ file, title }));
  await write(plots);
  const files = [
    'results.json',
    'report.md',
    ...plots.map((p) => p.file),
    ...results.projections.map((p) => p.file),
  ];
  emit({ type: 'written', dir, files });
  return { dir, results, files };
}

function defaultModels(cacheDir: string | undefined, collectionModel: string | undefined): string[] {
  const list = cachedModels(cacheDir);
  if (collectionModel && !list.includes(collectionModel)) list.unshift(collectionModel);
  return list;
}

/** Keeps labelled images only, at most `perLabel` of each label and `limit` in all (seeded, in input order). */
function subsetImages(
  input: ModelsInput,
  perLabel: number | undefined,
  limit: number | undefined,
  seed: number,
): ModelsInput {
  const n = input.paths.length;
  const order = new Random(seed ^ 0x1ab).sample(n, n);
  const taken = new Map<number, number>();
  const keep: number[] = [];
  for (const i of order) {
    const label = input.labels[i]!;
    if (label < 0) continue;
    const count = taken.get(label) ?? 0;
    if (perLabel !== undefined && count >= perLabel) continue;
    taken.set(label, count + 1);
    keep.push(i);
    if (limit !== undefined && keep.length >= limit) break;
  }
  keep.sort((a, b) => a - b);
  const d = input.stored ? input.stored.vectors.length / n : 0;
  return {
    paths: keep.map((i) => input.paths[i]!),
    labels: Int32Array.from(keep, (i) => input.labels[i]!),
    stored: input.stored
      ? { modelId: input.stored.modelId, vectors: gather(input.stored.vectors, d, keep) }
      : undefined,
  };
}

async function runIndexPreset(
  preset: Exclude<Preset, 'models'>,
  data: Dataset,
  options: ExperimentOptions,
  seed: number,
  results: ExperimentResults,
  addRow: (row: ExperimentRow) => Promise<void>,
  setTotal: (rows: number) => void,
  emit: (event: ExperimentEvent) => void,
): Promise<void> {
  const distanceType = checkDistanceType(options.distanceType);
  const d = data.dimension;
  const benchFor = (base: Float32Array, baseLabels: Int32Array | undefined) =>
    makeBench({
      preset,
      dimension: d,
      distanceType,
      seed,
      base,
      queries: data.queries,
      baseLabels,
      queryLabels: data.queryLabels,
      assigner: options.assigner,
      maxTimedQueries: options.maxTimedQueries,
      timeBudgetSeconds: options.timeBudgetSeconds,
    });
  const run = async (bench: ReturnType<typeof makeBench>, plans: BuildSpec[]) => {
    for (const spec of plans) {
      if (options.signal?.aborted) return;
      const label = `${spec.pca ? `PCA${spec.pca},` : ''}${spec.index}`;
      const { rows } = await measureBuild(bench, spec, (phase) => emit({ type: 'step', label, phase }));
      for (const row of rows) await addRow(row);
    }
  };
  if (preset === 'runtime') {
    const sizes = runtimeSizes(data.n);
    setTotal(sizes.reduce((sum, n) => sum + rowsOf(runtimePlan(n, d)), 0));
    emit({ type: 'plan', preset, rows: sizes.length * 2, n: data.n, dimension: d, queries: data.nq });
    const order = new Random(seed + 2).sample(data.n, data.n);
    for (const size of sizes) {
      if (options.signal?.aborted) return;
      const rows = order.subarray(0, size);
      const labels = data.baseLabels ? Int32Array.from(rows, (r) => data.baseLabels![r]!) : undefined;
      await run(benchFor(gather(data.base, d, rows), labels), runtimePlan(size, d));
    }
    results.notes.push(
      'Each database size is a seeded subsample of the database (every larger one holds the smaller); the held-out queries are the same for all, and recall is against exact search at that size.',
    );
    return;
  }
  const plans =
    preset === 'seed' ? seedPlan(data.n, d, options.pcaDimension ?? NOTEBOOK.pca) : sweepPlan(data.n, d);
  setTotal(rowsOf(plans));
  emit({ type: 'plan', preset, rows: rowsOf(plans), n: data.n, dimension: d, queries: data.nq });
  results.notes.push(
    `Queries: ${data.queriesFrom}. The notebook's recall@5 uses ${Math.min(100, data.n)} seeded database vectors as queries, as it did (it used 100 unseeded).`,
  );
  if (distanceType !== 'l2')
    results.notes.push(`Distance: ${distanceType} for every index and for the ground truth.`);
  await run(benchFor(data.base, data.baseLabels), plans);
}
