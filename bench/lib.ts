// Helpers shared by the benchmarks.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../src/embed/config.ts';
import { sessionOptions } from '../src/embed/embedder.ts';
import { exposeTensor, readModel, writeModel } from '../src/embed/onnx-graph.ts';

export const shared = join(import.meta.dirname, '..', '..', 'shared', 'data');

/** The number after `--name` on the command line, else `fallback`. */
export function numberOption(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
}

/** Every k-th image of Caltech101 in sorted order, n in all: a spread of sizes, classes, grayscale. */
export async function caltechFiles(n: number): Promise<string[]> {
  const all: string[] = [];
  for (const c of (await readdir(join(shared, 'caltech101'))).sort()) {
    for (const f of (await readdir(join(shared, 'caltech101', c))).sort())
      all.push(join(shared, 'caltech101', c, f));
  }
  const step = Math.max(1, Math.floor(all.length / n));
  return all.filter((_, i) => i % step === 0).slice(0, n);
}

export interface Timing {
  seconds: number;
  cpuSeconds: number;
}

export async function timed(fn: () => Promise<void>): Promise<Timing> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  await fn();
  const used = process.cpuUsage(cpu);
  return { seconds: (performance.now() - start) / 1000, cpuSeconds: (used.user + used.system) / 1e6 };
}

/** The forward pass alone on ready tensors, in batches of `batch`, through the same graph as the embedder. */
export async function forwardOnly(
  modelFile: string,
  config: ModelConfig,
  n: number,
  threads: number,
  batch: number,
): Promise<Timing> {
  const graph = readModel(await readFile(modelFile));
  const output = exposeTensor(graph, config.output.tensor, config.output.dequantize);
  const session = await ort.InferenceSession.create(writeModel(graph), sessionOptions(threads));
  const side = config.input.size;
  const input = new ort.Tensor(
    'float32',
    new Float32Array(batch * 3 * side * side).map(() => Math.random() * 2 - 1),
    [batch, 3, side, side],
  );
  await session.run({ [config.input.name]: input }, [output]); // warm-up
  const timing = await timed(async () => {
    for (let done = 0; done < n; done += batch) await session.run({ [config.input.name]: input }, [output]);
  });
  await session.release();
  return timing;
}
