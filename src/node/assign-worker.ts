// One worker of the parallel k-means assignment: holds its share of the points for a whole k-means run.
import { parentPort } from 'node:worker_threads';
import { kernels, type ResidentMatrix } from '../ann/kernels/index.ts';
import { assignNearest, rowNorms } from '../ann/kmeans.ts';

type Message =
  | { type: 'begin'; points: Float32Array; d: number }
  | { type: 'assign'; centroids: Float32Array; k: number }
  | { type: 'end' };

let run: { points: ResidentMatrix; norms: Float32Array; n: number; d: number } | undefined;

parentPort!.on('message', (message: Message) => {
  if (message.type === 'begin') {
    const n = message.points.length / message.d;
    run = {
      points: kernels().resident(message.points),
      norms: rowNorms(message.points, n, message.d),
      n,
      d: message.d,
    };
    parentPort!.postMessage({ type: 'ready' });
  } else if (message.type === 'assign' && run) {
    const labels = new Int32Array(run.n);
    const distances = new Float32Array(run.n);
    assignNearest(run.points, run.norms, run.n, run.d, message.centroids, message.k, labels, distances);
    parentPort!.postMessage({ type: 'assigned', labels, distances }, [labels.buffer, distances.buffer]);
  } else if (message.type === 'end') {
    run?.points.dispose();
    run = undefined;
  }
});
