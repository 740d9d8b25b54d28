/** ris: reverse image search. The package entry for Node. */
import { setFileStore } from './ann/storage.ts';
import { nodeFileStore } from './node/file-store.ts';

setFileStore(nodeFileStore);

export * from './ann/index.ts';
export { type BuildProgress, type IndexOptions, indexCollection, resolveSource } from './collection/build.ts';
export { Collection } from './collection/collection.ts';
export { DATASETS, type DatasetName, datasetImages, downloadDataset } from './collection/datasets.ts';
export { risHome } from './collection/home.ts';
export type { CollectionManifest } from './collection/manifest.ts';
export type { AddReport, CollectionOptions, ImageRecord, SearchHit } from './collection/types.ts';
export { type ImageToAdd, walkImages } from './collection/walk.ts';
export { ClipTokenizer } from './embed/clip-tokenizer.ts';
export {
  DEFAULT_MODEL,
  MODEL_REGISTRY,
  type ModelConfig,
  type ModelConfigInput,
  modelConfigSchema,
  type RegistryEntry,
  type RegistryFile,
  type SelfTestSpec,
} from './embed/config.ts';
export { type DownloadProgress, downloadVerified } from './embed/download.ts';
export {
  defaultCacheDir,
  type EmbeddedBatch,
  Embedder,
  type EmbedderOptions,
  type EmbedderProgress,
  type EmbedProgress,
} from './embed/embedder.ts';
export { type CropBox, DEFAULT_PIXEL_LIMIT, type ImageInput } from './embed/image.ts';
export { exposeTensor } from './embed/onnx-graph.ts';
export { type EmbeddedQuery, embedQuery, parseWeightedTerm, type QueryTerm } from './embed/query.ts';
export {
  ArgumentError,
  CollectionError,
  type ErrorCode,
  FileFormatError,
  ImageError,
  ModelError,
  RisError,
  StateError,
} from './errors.ts';
export * from './experiment/index.ts';
export { readFvecs, writeFvecs } from './node/fvecs.ts';
export { createNodeHnswBuilder } from './node/hnsw-builder.ts';
export { createParallelAssigner } from './node/parallel-assigner.ts';
