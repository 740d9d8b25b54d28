/** The experiments `ris experiment` runs; see src/experiment/run.ts. */
export const PRESETS = ['seed', 'sweep', 'models', 'runtime'] as const;
export type Preset = (typeof PRESETS)[number];

/**
 * One measured row. Index rows (seed, sweep, runtime) and model rows (models) share one shape, so a
 * table, a plot or a reader of results.json never has to guess which fields exist: null where a field
 * does not apply, and `skipped` says why a planned row has no numbers.
 */
export interface ExperimentRow {
  preset: Preset;
  /** The table and plot the row belongs to: 'reference', 'defaults', 'nprobes', 'models', … */
  group: string;
  /** 'Flat', 'IVF-Flat', 'IVF-PQ', 'OPQ+IVF-PQ', 'PQ'; null for model rows. */
  index: string | null;
  /** Short name in the notebook's manner, e.g. 'PCA128,IVF100,PQ8' (plus the search settings). */
  label: string;
  params: Record<string, number | string | boolean | null>;
  /** Length of the vectors the index holds (after PCA, if any). */
  dimension: number;
  /** Vectors in the database. */
  n: number;
  /** Queries measured (held out from the database). */
  queries: number;
  trainSeconds: number | null;
  addSeconds: number | null;
  /** Bytes the index holds for each vector it adds (codes, ids, copies), without the fixed quantizers. */
  bytesPerVector: number | null;
  /** Everything the index holds in memory (memoryUsage().total, plus a PCA matrix applied before it). */
  memoryBytes: number | null;
  /** Size of the index file (toBytes().length, plus the PCA matrix). */
  fileBytes: number | null;
  /** Single queries, one call each: queries per second, median and 99th-percentile latency. */
  qps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** All queries in one searchBatch call. */
  batchQps: number | null;
  /**
   * The notebook's recall@5, as it defined it: over database vectors used as queries, the fraction whose
   * exact nearest non-self neighbour (computed in the index's own space) is among approximate ranks 2–6.
   */
  recallAt5Seed: number | null;
  /** 10-recall@10 of held-out queries against exact search in the original space. */
  recall10At10: number | null;
  /** Same-label precision of the first 5 results of held-out queries (labelled inputs only). */
  precisionAt5: number | null;
  /** Model rows: the model, pooling and normalisation measured, and how queries were split. */
  model: string | null;
  pooling: string | null;
  normalization: string | null;
  split: string | null;
  precisionAt1: number | null;
  /** Mean over queries of AP@10 = Σ_k P@k·rel_k / min(10, same-label items in the database). */
  map10: number | null;
  /** Why the row has no numbers (too few vectors for the index, a dimension limit, …). */
  skipped: string | null;
}

/** Progress of a run, reported as it goes; the CLI draws it, the library never prints. */
export type ExperimentEvent =
  | { type: 'load'; message: string }
  | { type: 'plan'; preset: Preset; rows: number; n: number; dimension: number; queries: number }
  | { type: 'step'; label: string; phase: 'train' | 'add' | 'search' | 'embed' | 'fit' }
  | { type: 'embed'; model: string; pass: string; done: number; total: number }
  | {
      type: 'row';
      row: ExperimentRow;
      done: number;
      total: number;
      elapsedSeconds: number;
      /** Rough: the time per row so far times the rows left. */
      etaSeconds: number | null;
    }
  | { type: 'written'; dir: string; files: string[] };

/** A machine description for the report: results are only comparable on the same machine. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  node: string;
  platform: string;
}

export type RunStatus = 'running' | 'done' | 'interrupted' | 'failed';

/** The whole of results.json. */
export interface ExperimentResults {
  format: 'ris-experiment';
  version: 1;
  preset: Preset;
  status: RunStatus;
  /** The command line that produced it, to run it again. */
  command: string;
  machine: MachineInfo;
  input: {
    kind: 'collection' | 'vectors' | 'synthetic' | 'images';
    name: string;
    /** Vectors in the input before queries were held out. */
    total: number;
    dimension: number;
    labelled: boolean;
  };
  seed: number;
  startedAt: string;
  finishedAt: string | null;
  seconds: number | null;
  rows: ExperimentRow[];
  /** Sentences worth reading beside the tables (what was skipped and why, where a choice was made). */
  notes: string[];
  /** The plots written with the results, relative to the report folder (written when the run ends). */
  plots: { file: string; title: string }[];
  /** Files of learned projections (models preset), relative to the report folder. */
  projections: { model: string; file: string; beatsRaw: boolean }[];
  error: string | null;
}

/** A row with every field present and null: runners fill in what they measure. */
export function emptyRow(preset: Preset, group: string, label: string): ExperimentRow {
  return {
    preset,
    group,
    index: null,
    label,
    params: {},
    dimension: 0,
    n: 0,
    queries: 0,
    trainSeconds: null,
    addSeconds: null,
    bytesPerVector: null,
    memoryBytes: null,
    fileBytes: null,
    qps: null,
    p50Ms: null,
    p99Ms: null,
    batchQps: null,
    recallAt5Seed: null,
    recall10At10: null,
    precisionAt5: null,
    model: null,
    pooling: null,
    normalization: null,
    split: null,
    precisionAt1: null,
    map10: null,
    skipped: null,
  };
}
