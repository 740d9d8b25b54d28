// Starts a worker thread whose entry may be TypeScript: registers tsx in this thread (loader hooks
// do not follow a worker through execArgv on Node 20), then imports the entry.
import { workerData } from 'node:worker_threads';

if (workerData.entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(workerData.entry);
