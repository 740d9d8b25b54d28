/** Platform-neutral vector search: no Node, sharp or ONNX imports, so it runs in a browser or a worker too. */
export { FlatIndex, type FlatOptions } from './flat.ts';
export { IvfFlatIndex, type IvfFlatOptions } from './ivf-flat.ts';
export { IvfPqIndex, type IvfPqOptions, type IvfPqSearchOptions, type RefineStorage } from './ivf-pq.ts';
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
export { type FileStore, setFileStore } from './storage.ts';
export type { TransformOptions } from './transform.ts';
export { type BatchSearchResult, NO_ID, type SearchResult } from './types.ts';
