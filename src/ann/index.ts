/** Platform-neutral vector search: no Node, sharp or ONNX imports, so it runs in a browser or a worker too. */
export { FlatIndex, type FlatOptions } from './flat.ts';
export { INDEX_KINDS, type IndexKind } from './format.ts';
export {
  DEFAULT_EF_SEARCH,
  type HnswExplanation,
  HnswIndex,
  type HnswLevel,
  type HnswLevelTrace,
  type HnswOptions,
  type HnswStorage,
} from './hnsw.ts';
export {
  type BuildWorker,
  createHnswBuilder,
  type HnswBuilder,
  handleHnswBuildMessage,
} from './hnsw-parallel.ts';
export type { ExplainOptions, IvfExplanation } from './ivf.ts';
export { IvfFlatIndex, type IvfFlatOptions } from './ivf-flat.ts';
export { IvfPqIndex, type IvfPqOptions, type IvfPqSearchOptions } from './ivf-pq.ts';
export { IvfRabitqIndex, type IvfRabitqOptions } from './ivf-rabitq.ts';
export { kernels, useKernels } from './kernels/index.ts';
export {
  type Assigner,
  type AssignmentRun,
  type KMeansOptions,
  type KMeansResult,
  kmeans,
  type LloydStep,
} from './kmeans.ts';
export type { DistanceType } from './metric.ts';
export { ProductQuantizer, type ProductQuantizerOptions } from './pq.ts';
export { PqIndex, type PqOptions } from './pq-index.ts';
export type { RefineStorage } from './refine-store.ts';
export { loadIndex, openIndex } from './registry.ts';
export type { RowStorage } from './row-store.ts';
export { type FileStore, type RangedFile, type StreamedFile, setFileStore } from './storage.ts';
export type { TransformOptions } from './transform.ts';
export { type BatchSearchResult, NO_ID, type SearchResult } from './types.ts';
export {
  DEFAULT_NPROBES,
  type IndexDescription,
  MAX_EF_SEARCH,
  type MemoryUsage,
  type SearchOptions,
  type VectorIndex,
} from './vector-index.ts';
