// One worker of the parallel k-means: holds its share of the points for a whole k-means run and
// answers each Lloyd step with that share's sums, counts and objective.
import { parentPort } from 'node:worker_threads';
import { kernels, type ResidentMatrix } from '../ann/kernels/index.ts';
import { lloydStep, rowNorms } from '../ann/kmeans.ts';

type Message =
  | { type: 'begin'; points: Float32Array; d: number }
  | { type: 'step'; centroids: Float32Array; k: number }
  | { type: 'end' };

let run:
  | {
      resident: ResidentMatrix;
      norms: Float32Array;
      labels: Int32Array;
      distances: Float32Array;
      d: number;
    }
  | undefined;

parentPort!.on('message', (message: Message) => {
  if (message.type === 'begin') {
    const n = message.points.length / message.d;
    run = {
      resident: kernels().resident(message.points),
      norms: rowNorms(message.points, n, message.d),
      labels: new Int32Array(n),
      distances: new Float32Array(n),
      d: message.d,
    };
    parentPort!.postMessage({ type: 'ready' });
  } else if (message.type === 'step' && run) {
    const { resident, norms, labels, distances, d } = run;
    const step = lloydStep(
      resident,
      norms,
      labels.length,
      d,
      message.centroids,
      message.k,
      labels,
      distances,
    );
    parentPort!.postMessage(step, [step.sums.buffer as ArrayBuffer, step.counts.buffer as ArrayBuffer]);
  } else if (message.type === 'end') {
    run?.resident.dispose();
    run = undefined;
  }
});

parentPort!.postMessage({ type: 'loaded' });
