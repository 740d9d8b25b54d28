/** ris: reverse image search. The package entry for Node. */
import { setFileStore } from './ann/storage.ts';
import { nodeFileStore } from './node/file-store.ts';

setFileStore(nodeFileStore);

export * from './ann/index.ts';
export { ArgumentError, type ErrorCode, FileFormatError, RisError, StateError } from './errors.ts';
export { readFvecs, writeFvecs } from './node/fvecs.ts';
export { createParallelAssigner } from './node/parallel-assigner.ts';
