import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import type { Dispatcher } from 'undici';
import { ArgumentError, describe, ImageError, ModelError, RisError } from '../errors.ts';
import { ClipTokenizer } from './clip-tokenizer.ts';
import { DEFAULT_MODEL, type ModelConfig } from './config.ts';
import type { DownloadProgress } from './download.ts';
import {
  type CropBox,
  type DecodeOptions,
  fillTensor,
  type ImageInput,
  prepareImage,
  type RgbImage,
} from './image.ts';
import { type InferenceEngine, inProcessEngine, workerEngine } from './inference.ts';
import { exposeTensor, readModel, writeModel } from './onnx-graph.ts';
import { poolOutput } from './pooling.ts';
import { type ResolvedModel, resolveModel } from './resolve-model.ts';
import { recordSelfTest, runSelfTest, selfTestError, selfTestPassed } from './self-test.ts';
import { Slots } from './slots.ts';
import { TextTower } from './text-tower.ts';

export interface EmbedProgress {
  type: 'embed';
  /** Images handled so far (embedded or failed). */
  done: number;
  /** All images, when the input's length is known. */
  total: number | undefined;
  failed: number;
}

export type EmbedderProgress = DownloadProgress | EmbedProgress;

export interface EmbedderOptions {
  /**
   * A built-in model ('resnet50', the default and the reference app's network; 'resnet50-int8';
   * 'mobilenetv2-int8', the fastest; 'clip-vit-b32', OpenAI's CLIP, which also embeds sentences) or the
   * path of a local .onnx file with its config beside it (`model.json` for `model.onnx`).
   */
  model?: string;
  /**
   * The text tower of a CLIP model. 'quantized' (default): int8 weights, 64 MB, a query in a few
   * milliseconds. 'float': the original float32 weights, 254 MB and slower, with answers closest to
   * OpenAI's. Models without a text tower ignore it.
   */
  textTower?: 'quantized' | 'float';
  /** Where built-in models are downloaded. Default $XDG_CACHE_HOME/ris/models or ~/.cache/ris/models. */
  cacheDir?: string;
  /**
   * Base URLs tried before a built-in model's own sources, each a copy of the cache folder
   * (`<mirror>/mobilenetv2-12-int8.onnx`, `<mirror>/clip-vit-b32/vocab.json`): a local or company mirror.
   * Default: $RIS_MODEL_MIRROR if set.
   */
  mirrors?: string[];
  /**
   * Try a built-in model's own sources (Hugging Face, GitHub) after the mirrors. Default true, false when
   * $RIS_MODEL_MIRROR is set; false for a site that must use its mirrors only (and for tests, which must
   * never reach the internet).
   */
  officialSources?: boolean;
  /** The undici dispatcher downloads go through (a `ProxyAgent` for a company proxy). */
  dispatcher?: Dispatcher;
  /**
   * Where the network runs: 'worker' (default) keeps this thread's event loop free during a forward pass
   * (onnxruntime-node computes synchronously on the calling thread); 'main' saves the worker's start.
   */
  inferenceThread?: 'worker' | 'main';
  /** onnxruntime threads. Default: every core. */
  threads?: number;
  /**
   * Images per forward pass in embedMany. Default 16: on a CPU larger batches barely speed the network,
   * but give the decoder a longer window to prepare the next batch in.
   */
  batchSize?: number;
  /** Refuse images with more pixels than this. Default 100 million. */
  limitInputPixels?: number;
  onProgress?: (event: EmbedderProgress) => void;
}

/** One batch of embedMany: rows of `vectors` belong to the inputs at `indices`; failed inputs are listed. */
export interface EmbeddedBatch {
  indices: Uint32Array;
  vectors: Float32Array;
  /** Width and height of each embedded source image, as displayed: [w0, h0, w1, h1, …]. */
  sizes: Uint32Array;
  failures: { index: number; error: RisError }[];
}

/**
 * Batches of embedMany in flight at once: one in the network, the others read and decoded meanwhile (and
 * the network keeps going while the caller stores the last). Three batches of 16 images at 224 × 224 hold
 * about 29 MB of input tensors.
 */
const PIPELINE_DEPTH = 3;

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'ris', 'models');
}

/**
 * Turns images into vectors with an ONNX model: sharp decodes and resizes, onnxruntime runs the network,
 * and the configured tensor is pooled and normalised. In `embedMany` the next batch is decoded while the
 * current one runs, so decoding hides behind inference. A model with a text tower (CLIP) embeds
 * sentences into the same space (`embedText`).
 */
export class Embedder {
  /** Identifies the model file and its config; vectors from different ids must not share an index. */
  readonly modelId: string;
  readonly dimension: number;
  readonly config: ModelConfig;
  /** CLIP's tokenizer, for a model with a text tower. */
  readonly tokenizer: ClipTokenizer | undefined;
  private readonly engine: InferenceEngine;
  private readonly batchSize: number;
  private readonly decodeOptions: DecodeOptions;
  private readonly loadTextTower: (() => Promise<TextTower>) | undefined;
  private textTower: Promise<TextTower> | undefined;
  /**
   * Images decoded at once. sharp and file reads share libuv's thread pool, first come first served: with
   * every image of three batches queued there, the reads of the caller's next inputs wait behind them
   * all (measured: ris index 18 % slower). One thread fewer than the pool has keeps a thread free for the
   * reads, and still more decoding threads than this machine's cores.
   */
  private readonly decoding = new Slots(Math.max(1, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1));

  private constructor(init: {
    engine: InferenceEngine;
    config: ModelConfig;
    modelId: string;
    dimension: number;
    batchSize: number;
    limitInputPixels: number | undefined;
    tokenizer?: ClipTokenizer;
    loadTextTower?: () => Promise<TextTower>;
  }) {
    this.engine = init.engine;
    this.config = init.config;
    this.modelId = init.modelId;
    this.dimension = init.dimension;
    this.batchSize = init.batchSize;
    this.decodeOptions = { limitInputPixels: init.limitInputPixels };
    this.tokenizer = init.tokenizer;
    this.loadTextTower = init.loadTextTower;
  }

  static async create(options: EmbedderOptions = {}): Promise<Embedder> {
    const model = options.model ?? DEFAULT_MODEL;
    const threads = options.threads ?? availableParallelism();
    const batchSize = options.batchSize ?? 16;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new ArgumentError(
        'OUT_OF_RANGE',
        `Expected batchSize to be a positive integer but received ${describe(batchSize)}`,
      );
    }
    // RIS_MODEL_MIRROR: a copy of the cache folder served over HTTP, used instead of the official sources.
    const envMirror = process.env.RIS_MODEL_MIRROR || undefined;
    const resolved = await resolveModel(model, {
      cacheDir: options.cacheDir ?? defaultCacheDir(),
      mirrors: options.mirrors ?? (envMirror ? [envMirror] : undefined),
      officialSources: options.officialSources ?? envMirror === undefined,
      textTower: options.textTower,
      dispatcher: options.dispatcher,
      onProgress: options.onProgress,
      selfTestPassed,
    });
    const { file, config, sha256 } = resolved;
    // The graph as onnxruntime gets it: the embedding tensor exposed as an output. Built again if the
    // inference worker dies and a new one needs the model.
    const prepared = async () => {
      const graph = readModel(await readFile(file), file);
      const outputName = exposeTensor(graph, config.output.tensor, config.output.dequantize);
      return { bytes: writeModel(graph), outputName };
    };
    const { bytes, outputName } = await prepared();
    const init = {
      model: bytes,
      reload: async () => (await prepared()).bytes,
      options: sessionOptions(threads),
      inputName: config.input.name,
      outputName,
    };
    const engine = await (options.inferenceThread === 'main' ? inProcessEngine(init) : workerEngine(init));
    if (!engine.inputNames.includes(config.input.name)) {
      await engine.release();
      throw new ModelError(
        'INVALID_MODEL',
        `The model has no input "${config.input.name}" (it has ${engine.inputNames.join(', ')}); fix input.name in its config`,
      );
    }
    const common = {
      engine,
      config,
      modelId: modelIdOf(config, sha256),
      batchSize,
      limitInputPixels: options.limitInputPixels,
    };
    // One forward pass on a blank image tells the embedding's length.
    let dimension: number;
    try {
      dimension = (await new Embedder({ ...common, dimension: 0 }).run(blankImage(config), 1)).dimension;
    } catch (error) {
      await engine.release();
      throw error;
    }
    const text = resolved.text && textTowerLoader(resolved, threads, options.inferenceThread ?? 'worker');
    const embedder = new Embedder({ ...common, dimension, ...text });
    if (resolved.selfTest?.image) await embedder.selfTest(model, resolved);
    return embedder;
  }

  /** Runs a built-in model's self-test; refuses the model (closing it) when it fails. */
  private async selfTest(model: string, resolved: ResolvedModel): Promise<void> {
    const { spec, image } = resolved.selfTest!;
    try {
      const report = await runSelfTest(this, spec, image!);
      if (!report.passed) throw selfTestError(model, spec, report);
      // A record that cannot be written (a read-only cache) only means the test runs again next time.
      await recordSelfTest(resolved, report).catch(() => undefined);
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** Whether the model embeds text too (a CLIP model: a text tower beside the image tower). */
  get hasText(): boolean {
    return this.loadTextTower !== undefined;
  }

  /**
   * The vector of a sentence, in the images' space (CLIP): compare it with image vectors by cosine. The
   * text tower loads on first use. Throws INVALID_ARGUMENT for a model without one.
   */
  async embedText(text: string): Promise<Float32Array> {
    return (await this.embedTexts([text])).vectors;
  }

  /**
   * The vectors of several sentences, row after row, and which of them were longer than the model reads
   * (77 tokens, about 60 words) and were cut. Each runs alone at its own length (see TextTower), so a
   * sentence's vector never depends on the others.
   */
  async embedTexts(texts: readonly string[]): Promise<{ vectors: Float32Array; truncated: boolean[] }> {
    if (!this.loadTextTower) throw noTextTower(this.config.name);
    this.textTower ??= this.loadTextTower().then(
      async (tower) => {
        if (tower.dimension === this.dimension) return tower;
        await tower.release();
        throw new ModelError(
          'INVALID_MODEL',
          `The text tower gives ${tower.dimension}-dimension vectors but the image tower ${this.dimension}; they must share one space`,
        );
      },
      (error: unknown) => {
        this.textTower = undefined; // a later call tries again
        throw error;
      },
    );
    return (await this.textTower).embed(texts);
  }

  /** The vector of one image, optionally of a crop of it (in the pixels of the image as displayed). */
  async embed(input: ImageInput, options: { crop?: CropBox } = {}): Promise<Float32Array> {
    const image = await prepareImage(input, this.config, { ...this.decodeOptions, crop: options.crop });
    const tensor = new Float32Array(3 * this.config.input.size ** 2);
    fillTensor(image, this.config, tensor, 0);
    return (await this.run(tensor, 1)).vectors;
  }

  /**
   * Embeds many images in batches, as a pipeline: while one batch runs through the network, the next ones
   * are read and decoded, and the network goes on to the next batch without waiting for the caller to
   * handle the last (up to `PIPELINE_DEPTH` batches in flight). Batches come out in input order. Images
   * that cannot be used are reported in `failures` and skipped; they never stop the run.
   */
  async *embedMany(
    inputs: Iterable<ImageInput> | AsyncIterable<ImageInput>,
    options: { batchSize?: number; onProgress?: (event: EmbedProgress) => void } = {},
  ): AsyncGenerator<EmbeddedBatch> {
    const batchSize = options.batchSize ?? this.batchSize;
    const total = Array.isArray(inputs) ? inputs.length : undefined;
    const iterator = toAsyncIterator(inputs);
    let index = 0;
    let done = 0;
    let failed = 0;
    let stopped = false;
    // An iterator gives one item at a time: batches are read one after another, in order.
    let reading: Promise<unknown> = Promise.resolve();
    const readBatch = () => {
      const items = reading.then(async () => {
        const batch: { index: number; input: ImageInput }[] = [];
        while (batch.length < batchSize && !stopped) {
          const next = await iterator.next();
          if (next.done) break;
          batch.push({ index: index++, input: next.value });
        }
        return batch;
      });
      reading = items.catch(() => undefined);
      return items;
    };
    // Forward passes one after another, each as soon as its batch is decoded and the previous pass is done.
    let running: Promise<unknown> = Promise.resolve();
    const launch = (): Promise<EmbeddedBatch | undefined> => {
      const prepared = readBatch().then((items) => (items.length > 0 ? this.prepareBatch(items) : undefined));
      const result = Promise.all([prepared, running]).then(async ([batch]) => {
        if (!batch || stopped) return undefined;
        const vectors =
          batch.count > 0 ? (await this.run(batch.tensor, batch.count)).vectors : new Float32Array(0);
        return { indices: batch.indices, vectors, sizes: batch.sizes, failures: batch.failures };
      });
      running = result.catch(() => undefined);
      // Awaited in order below; one that fails after an earlier failure must not go unhandled.
      result.catch(() => undefined);
      return result;
    };
    const line = Array.from({ length: PIPELINE_DEPTH }, launch);
    try {
      for (;;) {
        const batch = await line.shift()!;
        if (!batch) return;
        line.push(launch());
        done += batch.indices.length + batch.failures.length;
        failed += batch.failures.length;
        options.onProgress?.({ type: 'embed', done, total, failed });
        yield batch;
      }
    } finally {
      stopped = true;
      // Let the caller's input finish (close its files) once the read under way, if any, is done; without
      // waiting here for an input that may be slow to give its next item.
      void reading.then(() => iterator.return?.()).catch(() => undefined);
    }
  }

  /**
   * Embeds several images, each with its own optional crop, in one forward pass (a server batches the
   * searches that arrive together this way). Returns, per input, its vector or why it failed.
   */
  async embedBatch(items: { input: ImageInput; crop?: CropBox }[]): Promise<(Float32Array | RisError)[]> {
    const batch = await this.prepareBatch(items.map((item, index) => ({ index, ...item })));
    const vectors =
      batch.count > 0 ? (await this.run(batch.tensor, batch.count)).vectors : new Float32Array(0);
    const out: (Float32Array | RisError)[] = new Array(items.length);
    for (const [r, index] of batch.indices.entries())
      out[index] = vectors.slice(r * this.dimension, (r + 1) * this.dimension);
    for (const failure of batch.failures) out[failure.index] = failure.error;
    return out;
  }

  private async prepareBatch(items: { index: number; input: ImageInput; crop?: CropBox }[]) {
    const side = this.config.input.size;
    const results = await Promise.all(
      items.map(({ input, crop }) =>
        this.decoding
          .run(() => prepareImage(input, this.config, { ...this.decodeOptions, crop }))
          .then(
            (image): RgbImage | RisError => image,
            (error: unknown) => (error instanceof RisError ? error : unexpectedImageError(error)),
          ),
      ),
    );
    const good = results.filter((r): r is RgbImage => !(r instanceof RisError));
    const tensor = new Float32Array(good.length * 3 * side * side);
    const indices = new Uint32Array(good.length);
    const sizes = new Uint32Array(good.length * 2);
    const failures: EmbeddedBatch['failures'] = [];
    let row = 0;
    results.forEach((result, i) => {
      if (result instanceof RisError) failures.push({ index: items[i]!.index, error: result });
      else {
        fillTensor(result, this.config, tensor, row * 3 * side * side);
        sizes[2 * row] = result.sourceWidth;
        sizes[2 * row + 1] = result.sourceHeight;
        indices[row++] = items[i]!.index;
      }
    });
    return { tensor, count: good.length, indices, sizes, failures };
  }

  /** The forward pass on `count` prepared images, and pooling of the output. */
  private async run(
    tensor: Float32Array,
    count: number,
  ): Promise<{ vectors: Float32Array; dimension: number }> {
    const side = this.config.input.size;
    const dims = this.config.input.layout === 'nchw' ? [count, 3, side, side] : [count, side, side, 3];
    const output = await this.engine.run(tensor, dims);
    return poolOutput(output.data, output.dims, this.config.output);
  }

  async close(): Promise<void> {
    const text = this.textTower;
    this.textTower = undefined;
    await Promise.all([
      this.engine.release(),
      text?.then(
        (tower) => tower.release(),
        () => undefined,
      ),
    ]);
  }
}

/**
 * onnxruntime settings of every embedder. Its threads do not spin while waiting for work: in a pipeline
 * the decoder needs those cycles (measured: MobileNetV2 file → vector 213 → 264 images/s on 2 cores).
 */
export function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

/**
 * The id of a model's vector space: its file and the config fields that shape image vectors. Fields added
 * since (the text tower, and alpha and sizing at their defaults) are left out, so collections built
 * before keep their model's id.
 */
export function modelIdOf(config: ModelConfig, sha256: string): string {
  const { text: _text, ...rest } = config;
  const { alpha, ...input } = rest.input;
  const { sizing, ...resize } = rest.resize;
  const identity = {
    ...rest,
    input: alpha === 'white' ? input : rest.input,
    resize: sizing === 'round' ? resize : rest.resize,
  };
  // Keys in the config's own order, as the ids were always computed.
  const ordered = {
    name: identity.name,
    input: identity.input,
    resize: identity.resize,
    output: identity.output,
  };
  return `${config.name}@${createHash('sha256').update(sha256).update(JSON.stringify(ordered)).digest('hex').slice(0, 16)}`;
}

/** The refusal of a text query by a model that embeds images only. */
export function noTextTower(model: string): ArgumentError {
  return new ArgumentError(
    'INVALID_ARGUMENT',
    `The model ${model} has no text tower: it searches by image only. Search by words needs a CLIP model (clip-vit-b32) and a collection indexed with it`,
  );
}

function blankImage(config: ModelConfig): Float32Array {
  return new Float32Array(3 * config.input.size ** 2);
}

/** The lazy loader of a model's text tower, and its tokenizer (read now: it is small and synchronous). */
function textTowerLoader(resolved: ResolvedModel, threads: number, inferenceThread: 'worker' | 'main') {
  const text = resolved.text!;
  const spec = resolved.config.text!;
  const tokenizer = ClipTokenizer.fromFiles(text.vocab, text.merges);
  return {
    tokenizer,
    loadTextTower: () =>
      TextTower.load({
        file: text.file,
        tokenizer,
        inputName: spec.input,
        outputName: spec.output,
        contextLength: spec.contextLength,
        normalize: resolved.config.output.normalize,
        options: sessionOptions(threads),
        inferenceThread,
      }),
  };
}

/** A decoding failure that is not one of the image errors sharp's messages map to. */
function unexpectedImageError(error: unknown): ImageError {
  return new ImageError(
    'CORRUPT_IMAGE',
    `The image cannot be decoded (${error instanceof Error ? error.message : String(error)}); re-export it as JPEG or PNG`,
  );
}

function toAsyncIterator<T>(inputs: Iterable<T> | AsyncIterable<T>): AsyncIterator<T> {
  if (Symbol.asyncIterator in inputs) return (inputs as AsyncIterable<T>)[Symbol.asyncIterator]();
  const it = (inputs as Iterable<T>)[Symbol.iterator]();
  return { next: async () => it.next() };
}
