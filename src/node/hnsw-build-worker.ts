// The worker side of createNodeHnswBuilder: searches of HNSW insertions in the shared graph memory.
import { parentPort } from 'node:worker_threads';
import { handleHnswBuildMessage } from '../ann/hnsw-parallel.ts';

parentPort!.on('message', handleHnswBuildMessage);
parentPort!.postMessage('loaded');
