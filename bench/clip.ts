/**
 * `npm run bench:clip`: CLIP ViT-B/32 (clip-vit-b32) speed with random-weight towers of the real shapes
 * (bench/clip_export.py, Debian's python3-torch: speed does not depend on the weights), the real CLIP
 * tokenizer files and Caltech101 images from ../shared/data. Each figure against its peer in the same run:
 *   - a text query: Embedder.embedText p50 with the quantized text tower (target ≤ 20 ms), beside the
 *     bare onnxruntime forward of the same ids, the float tower, and the ids padded to 77 as OpenAI pads;
 *   - indexing: embedMany images/s (file → vector) against a bare onnxruntime forward of the vision tower
 *     on ready tensors (target ≥ 0.55×);
 *   - a mixed query (a sentence + an image file): embedQuery p50 against one text query p50 plus one
 *     bare image forward p50 (target ≤ 1.3×).
 * Options: --images N (default 96), --queries N (default 101), --threads T (default: cores).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { sessionOptions } from '../src/embed/embedder.ts';
import { Embedder, embedQuery, MODEL_REGISTRY, modelConfigSchema } from '../src/index.ts';
import { caltechFiles, forwardOnly, shared, timed } from './lib.ts';

const root = join(import.meta.dirname, '..');
const arg = (name: string) =>
  process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined;
const threads = Number(arg('--threads') ?? availableParallelism());
const imageCount = Number(arg('--images') ?? 96);
const queryCount = Number(arg('--queries') ?? 101);
const BATCH = 16;

try {
  await stat(join(shared, 'caltech101'));
  await stat(join(shared, 'clip', 'vocab.json'));
} catch {
  console.log('bench:clip needs ../shared/data/caltech101 and ../shared/data/clip; skipped');
  process.exit(0);
}

// The random-weight towers, exported once (about a minute) into the ignored bench/results.
const dir = join(root, 'bench', 'results', 'clip-random');
const exportScript = join(root, 'bench', 'clip_export.py');
const exported = await stat(join(dir, 'text_model_quantized.onnx')).catch(() => undefined);
if (!exported || exported.mtimeMs < (await stat(exportScript)).mtimeMs) {
  console.log('exporting random-weight CLIP ViT-B/32 towers with PyTorch…');
  try {
    await promisify(execFile)('/usr/bin/python3', [exportScript, dir], { maxBuffer: 1 << 24 });
  } catch (error) {
    console.log(
      `bench:clip needs Debian's python3-torch and python3-onnx: ${(error as Error).message.split('\n')[0]}`,
    );
    process.exit(0);
  }
}
await copyFile(join(shared, 'clip', 'vocab.json'), join(dir, 'vocab.json'));
await copyFile(join(shared, 'clip', 'merges.txt'), join(dir, 'merges.txt'));
// clip-vit-b32's own config, pointed at the exported files.
const configInput = { ...MODEL_REGISTRY['clip-vit-b32']!.config, name: 'clip-vit-b32-random' };
await writeFile(join(dir, 'vision_model.json'), JSON.stringify(configInput));
const model = join(dir, 'vision_model.onnx');
const config = modelConfigSchema.parse(configInput);

const labels = (await readdir(join(shared, 'caltech101'))).filter((l) => l !== 'BACKGROUND_Google').sort();
const queries = Array.from(
  { length: queryCount },
  (_, i) => `a photo of a ${labels[i % labels.length]!.replaceAll('_', ' ')}`,
);
const files = await caltechFiles(imageCount);

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
};
const time = async (fn: () => Promise<unknown>) => {
  const start = performance.now();
  await fn();
  return performance.now() - start;
};

const embedder = await Embedder.create({ model, threads, batchSize: BATCH });
const floatEmbedder = await Embedder.create({ model, threads, textTower: 'float' });
const tokenizer = embedder.tokenizer!;

// 1. Text queries, each measured through the embedder and bare, alternating.
const bareText = await ort.InferenceSession.create(
  join(dir, 'text_model_quantized.onnx'),
  sessionOptions(threads),
);
const runIds = (session: ort.InferenceSession, ids: ArrayLike<number>, length = ids.length) => {
  const input = new BigInt64Array(length);
  for (let i = 0; i < ids.length; i++) input[i] = BigInt(ids[i]!);
  return session.run({ input_ids: new ort.Tensor('int64', input, [1, length]) });
};
for (const q of queries.slice(0, 10)) {
  await embedder.embedText(q); // warm-up: the text tower loads on first use
  await floatEmbedder.embedText(q);
  await runIds(bareText, tokenizer.encode(q));
}
const textMs: number[] = [];
const bareTextMs: number[] = [];
const padded77Ms: number[] = [];
const floatTextMs: number[] = [];
for (const q of queries) {
  textMs.push(await time(() => embedder.embedText(q)));
  bareTextMs.push(await time(() => runIds(bareText, tokenizer.encode(q))));
  padded77Ms.push(await time(() => runIds(bareText, tokenizer.encode(q), 77)));
  floatTextMs.push(await time(() => floatEmbedder.embedText(q)));
}
const tokens = queries.map((q) => tokenizer.encode(q).length);
await floatEmbedder.close();

// 2. Indexing: the pipeline (file → vector) against the bare forward on ready tensors, alternating.
for await (const _ of embedder.embedMany(files.slice(0, BATCH))) {
  // warm-up
}
let pipelineRate = 0;
let bareRate = 0;
for (let run = 0; run < 2; run++) {
  const whole = await timed(async () => {
    for await (const batch of embedder.embedMany(files))
      if (batch.failures.length) throw batch.failures[0]!.error;
  });
  pipelineRate = Math.max(pipelineRate, files.length / whole.seconds);
  const bare = await forwardOnly(model, config, files.length, threads, BATCH);
  bareRate = Math.max(bareRate, files.length / bare.seconds);
}

// 3. Mixed queries: a sentence and an image file, against a text query plus one bare image forward.
const bareVision = await ort.InferenceSession.create(model, sessionOptions(threads));
const pixels = new ort.Tensor(
  'float32',
  new Float32Array(3 * 224 * 224).map(() => Math.random() * 2 - 1),
  [1, 3, 224, 224],
);
await bareVision.run({ pixel_values: pixels });
const mixedMs: number[] = [];
const textAgainMs: number[] = [];
const imageForwardMs: number[] = [];
const mixedCount = Math.min(queries.length, 40);
for (let i = 0; i < mixedCount; i++) {
  const query = [{ text: queries[i]! }, { image: files[i % files.length]! }];
  mixedMs.push(await time(() => embedQuery(embedder, query)));
  textAgainMs.push(await time(() => embedder.embedText(queries[i]!)));
  imageForwardMs.push(await time(() => bareVision.run({ pixel_values: pixels })));
}
await embedder.close();

// Correctness beside speed: the quantized tower's answer with the ids padded to 77, against unpadded.
const sample = tokenizer.encode(queries[0]!);
const unpadded = (await runIds(bareText, sample)).text_embeds!.data as Float32Array;
const padded = (await runIds(bareText, sample, 77)).text_embeds!.data as Float32Array;
const cosine = (a: Float32Array, b: Float32Array) => {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return dot / Math.sqrt(na * nb);
};

const p50 = (v: number[]) => percentile(v, 0.5);
const ms = (v: number) => `${v.toFixed(1)} ms`;
const textP50 = p50(textMs);
const mixedRatio = p50(mixedMs) / (p50(textAgainMs) + p50(imageForwardMs));
console.log(`\nCLIP ViT-B/32, random weights of the real shapes; threads ${threads}, batch ${BATCH}\n`);
console.log(`text query (${queries.length} sentences, ${Math.min(...tokens)}–${Math.max(...tokens)} tokens)`);
console.log(
  `  Embedder.embedText, quantized tower   p50 ${ms(textP50)}, p90 ${ms(percentile(textMs, 0.9))}   target ≤ 20 ms: ${textP50 <= 20 ? 'met' : 'MISSED'}`,
);
console.log(
  `  bare onnxruntime, same ids            p50 ${ms(p50(bareTextMs))}  (embedText = ${(textP50 / p50(bareTextMs)).toFixed(2)}×)`,
);
console.log(
  `  bare onnxruntime, ids padded to 77    p50 ${ms(p50(padded77Ms))}  (cosine to unpadded ${cosine(unpadded, padded).toFixed(6)})`,
);
console.log(`  Embedder.embedText, float tower       p50 ${ms(p50(floatTextMs))}`);
console.log(`indexing (${files.length} Caltech101 files)`);
console.log(
  `  embedMany (file → vector)             ${pipelineRate.toFixed(1)} img/s = ${(pipelineRate / bareRate).toFixed(2)}× the bare forward   target ≥ 0.55×: ${pipelineRate / bareRate >= 0.55 ? 'met' : 'MISSED'}`,
);
console.log(`  bare onnxruntime forward (ready)      ${bareRate.toFixed(1)} img/s`);
console.log(`mixed query (a sentence + an image file, ${mixedCount} queries)`);
console.log(
  `  embedQuery                            p50 ${ms(p50(mixedMs))} = ${mixedRatio.toFixed(2)}× (text query p50 ${ms(p50(textAgainMs))} + bare image forward p50 ${ms(p50(imageForwardMs))})   target ≤ 1.3×: ${mixedRatio <= 1.3 ? 'met' : 'MISSED'}`,
);
await mkdir(join(root, 'bench', 'results'), { recursive: true });
await writeFile(
  join(root, 'bench', 'results', 'clip.json'),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      threads,
      textQueryP50Ms: textP50,
      bareTextP50Ms: p50(bareTextMs),
      padded77P50Ms: p50(padded77Ms),
      floatTextP50Ms: p50(floatTextMs),
      indexingImagesPerSecond: pipelineRate,
      bareForwardImagesPerSecond: bareRate,
      mixedQueryP50Ms: p50(mixedMs),
      mixedRatio,
    },
    null,
    2,
  )}\n`,
);
