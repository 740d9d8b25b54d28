/**
 * `npm run bench:embed`: images per second of the whole embedding pipeline (file → vector) on Caltech101
 * images (../shared/data), against, in the same run:
 *   - the bare onnxruntime forward pass on ready tensors (the floor the pipeline can reach);
 *   - for ResNet50, PyTorch on CPU with the same threads (Debian python3-torch), on a random-weight
 *     torchvision ResNet50 exported to ONNX here (its cost does not depend on the weights);
 *   - for MobileNetV2 (the shared int8 model), the bound set by CPU time on this machine's cores:
 *     (decode CPU time + forward CPU time) / cores, and a plain sequential loop.
 * Options: --images N (default 240 for ResNet50, 4 × that for MobileNetV2), --threads T (default: cores).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type ModelConfig, parseModelConfig } from '../src/embed/config.ts';
import { fillTensor, prepareImage } from '../src/embed/image.ts';
import { Embedder, MODEL_REGISTRY } from '../src/index.ts';
import { caltechFiles, forwardOnly, shared, type Timing, timed } from './lib.ts';

const root = join(import.meta.dirname, '..');
const results = join(root, 'bench', 'results');
const arg = (name: string) =>
  process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined;
const threads = Number(arg('--threads') ?? availableParallelism());
const resnetImages = Number(arg('--images') ?? 240);
const BATCH = 16;

if (!existsSync(join(shared, 'caltech101'))) {
  console.log('bench:embed needs ../shared/data/caltech101; skipped');
  process.exit(0);
}

async function pipeline(embedder: Embedder, files: string[]): Promise<Timing> {
  return timed(async () => {
    for await (const batch of embedder.embedMany(files, { batchSize: BATCH })) {
      if (batch.failures.length) throw batch.failures[0]!.error;
    }
  });
}

async function sequential(embedder: Embedder, files: string[]): Promise<Timing> {
  return timed(async () => {
    for (const f of files) await embedder.embed(f);
  });
}

/** Decoding and preprocessing alone, one image at a time (its CPU time is what the pipeline must hide). */
async function decodeOnly(config: ModelConfig, files: string[]): Promise<Timing> {
  const tensor = new Float32Array(3 * config.input.size ** 2);
  return timed(async () => {
    for (const f of files) fillTensor(await prepareImage(f, config), config, tensor, 0);
  });
}

const rows: { model: string; what: string; imagesPerSecond: number; note?: string }[] = [];
const perSecond = (n: number, t: Timing) => n / t.seconds;

// ResNet50: a random-weight torchvision export stands in for the zoo model.
{
  const files = await caltechFiles(resnetImages);
  const onnxFile = join(results, 'resnet50-random.onnx');
  await mkdir(results, { recursive: true });
  const py = (...args: string[]) =>
    promisify(execFile)('/usr/bin/python3', [join(root, 'bench', 'torch_resnet50.py'), ...args], {
      maxBuffer: 1 << 20,
    });
  let torchRate: number | undefined;
  try {
    if (!existsSync(onnxFile)) await py('export', onnxFile);
    // PyTorch at its better batch size here (it is faster one image at a time than in batches of 16).
    for (const batch of [1, BATCH]) {
      const { stdout } = await py('time', String(batch), String(threads), String(Math.min(files.length, 96)));
      const rate = (JSON.parse(stdout) as { imagesPerSecond: number }).imagesPerSecond;
      torchRate = Math.max(torchRate ?? 0, rate);
    }
  } catch (error) {
    console.log(`PyTorch skipped: ${(error as Error).message.split('\n')[0]}`);
  }
  if (existsSync(onnxFile)) {
    const configInput = {
      ...MODEL_REGISTRY['resnet50']!.config,
      name: 'resnet50-random',
      input: { ...MODEL_REGISTRY['resnet50']!.config.input, name: 'input' },
      output: { tensor: 'features', pooling: 'none' as const },
    };
    const dir = await mkdtemp(join(tmpdir(), 'ris-bench-'));
    const model = join(dir, 'resnet50-random.onnx');
    await copyFile(onnxFile, model);
    await writeFile(join(dir, 'resnet50-random.json'), JSON.stringify(configInput));
    const config = parseModelConfig(configInput, 'bench');
    const embedder = await Embedder.create({ model, threads, batchSize: BATCH });
    await pipeline(embedder, files.slice(0, BATCH)); // warm-up
    const forward = await forwardOnly(model, config, files.length, threads, BATCH);
    const whole = await pipeline(embedder, files);
    rows.push({
      model: 'resnet50',
      what: 'bare onnxruntime forward (ready tensors)',
      imagesPerSecond: perSecond(files.length, forward),
    });
    if (torchRate)
      rows.push({
        model: 'resnet50',
        what: `PyTorch ${threads} threads (forward only, best batch)`,
        imagesPerSecond: torchRate,
      });
    rows.push({
      model: 'resnet50',
      what: 'ris pipeline (file → vector)',
      imagesPerSecond: perSecond(files.length, whole),
      note: `${(forward.seconds / whole.seconds).toFixed(2)}× the bare forward pass${torchRate ? `, ${(perSecond(files.length, whole) / torchRate).toFixed(2)}× PyTorch` : ''}`,
    });
    await embedder.close();
    await rm(dir, { recursive: true, force: true });
  } else console.log('ResNet50 skipped: no exported model (needs python3-torch)');
}

// MobileNetV2 int8: forward and decoding cost about the same, so the bound is CPU time over the cores.
{
  const files = await caltechFiles(resnetImages * 4);
  const entry = MODEL_REGISTRY['mobilenetv2-int8']!;
  const cacheDir = await mkdtemp(join(tmpdir(), 'ris-bench-models-'));
  await copyFile(join(shared, 'models', entry.fileName), join(cacheDir, entry.fileName));
  const embedder = await Embedder.create({ model: 'mobilenetv2-int8', cacheDir, threads, batchSize: BATCH });
  const config = embedder.config;
  await pipeline(embedder, files.slice(0, BATCH * 2)); // warm-up
  const forward = await forwardOnly(join(cacheDir, entry.fileName), config, files.length, threads, BATCH);
  const decode = await decodeOnly(config, files);
  const bound = files.length / ((decode.cpuSeconds + forward.cpuSeconds) / availableParallelism());
  const whole = await pipeline(embedder, files);
  const loop = await sequential(embedder, files.slice(0, files.length / 4));
  rows.push(
    {
      model: 'mobilenetv2-int8',
      what: 'bare onnxruntime forward (ready tensors)',
      imagesPerSecond: perSecond(files.length, forward),
      note: `${((forward.cpuSeconds / files.length) * 1000).toFixed(1)} ms CPU per image`,
    },
    {
      model: 'mobilenetv2-int8',
      what: 'decode + preprocess alone (sequential)',
      imagesPerSecond: perSecond(files.length, decode),
      note: `${((decode.cpuSeconds / files.length) * 1000).toFixed(1)} ms CPU per image`,
    },
    {
      model: 'mobilenetv2-int8',
      what: `CPU-time bound on ${availableParallelism()} cores`,
      imagesPerSecond: bound,
    },
    {
      model: 'mobilenetv2-int8',
      what: 'ris pipeline (file → vector)',
      imagesPerSecond: perSecond(files.length, whole),
      note: `${(perSecond(files.length, whole) / bound).toFixed(2)}× the bound, ${(forward.seconds / whole.seconds).toFixed(2)}× the bare forward pass`,
    },
    {
      model: 'mobilenetv2-int8',
      what: 'plain sequential loop (embed one by one)',
      imagesPerSecond: perSecond(files.length / 4, loop),
      note: `${(forward.seconds / files.length / (loop.seconds / (files.length / 4))).toFixed(2)}× the bare forward pass`,
    },
  );
  await embedder.close();
  await rm(cacheDir, { recursive: true, force: true });
}

const width = Math.max(...rows.map((r) => r.what.length));
console.log(`\nthreads ${threads}, batch ${BATCH}\n`);
for (const r of rows)
  console.log(
    `${r.model.padEnd(17)} ${r.what.padEnd(width)} ${r.imagesPerSecond.toFixed(1).padStart(7)} img/s  ${r.note ?? ''}`,
  );
await writeFile(
  join(results, 'embed.json'),
  `${JSON.stringify({ date: new Date().toISOString(), threads, batch: BATCH, rows }, null, 2)}\n`,
);
