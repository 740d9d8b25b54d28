import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { availableParallelism, homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { ArgumentError, describe, ImageError, ModelError, RisError } from '../errors.ts';
import { DEFAULT_MODEL, MODEL_REGISTRY, type ModelConfig, parseModelConfig } from './config.ts';
import { type DownloadProgress, downloadVerified, fileSha256 } from './download.ts';
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
   * 'mobilenetv2-int8', the fastest) or the path of a local .onnx file with its config beside it
   * (`model.json` for `model.onnx`).
   */
  model?: string;
  /** Where built-in models are downloaded. Default $XDG_CACHE_HOME/ris/models or ~/.cache/ris/models. */
  cacheDir?: string;
  /**
   * Base URLs tried before a built-in model's own sources, each serving the file under its name
   * (`<mirror>/mobilenetv2-12-int8.onnx`): a local or company mirror.
   */
  mirrors?: string[];
  /**
   * Try a built-in model's own sources (Hugging Face, GitHub) after the mirrors. Default true; false for a
   * site that must use its mirrors only (and for tests, which must never reach the internet).
   */
  officialSources?: boolean;
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

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'ris', 'models');
}

/**
 * Turns images into vectors with an ONNX model: sharp decodes and resizes, onnxruntime runs the network,
 * and the configured tensor is pooled and normalised. In `embedMany` the next batch is decoded while the
 * current one runs, so decoding hides behind inference.
 */
export class Embedder {
  /** Identifies the model file and its config; vectors from different ids must not share an index. */
  readonly modelId: string;
  readonly dimension: number;
  readonly config: ModelConfig;
  private readonly engine: InferenceEngine;
  private readonly batchSize: number;
  private readonly decodeOptions: DecodeOptions;

  private constructor(init: {
    engine: InferenceEngine;
    config: ModelConfig;
    modelId: string;
    dimension: number;
    batchSize: number;
    limitInputPixels: number | undefined;
  }) {
    this.engine = init.engine;
    this.config = init.config;
    this.modelId = init.modelId;
    this.dimension = init.dimension;
    this.batchSize = init.batchSize;
    this.decodeOptions = { limitInputPixels: init.limitInputPixels };
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
    const { file, config, sha256 } = await resolveModel(model, options);
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
    const modelId = `${config.name}@${createHash('sha256').update(sha256).update(JSON.stringify(config)).digest('hex').slice(0, 16)}`;
    const embedder = new Embedder({
      engine,
      config,
      modelId,
      dimension: 0,
      batchSize,
      limitInputPixels: options.limitInputPixels,
    });
    // One forward pass on a blank image tells the embedding's length.
    const probe = await embedder.run(new Float32Array(3 * config.input.size ** 2), 1);
    return new Embedder({
      engine,
      config,
      modelId,
      dimension: probe.dimension,
      batchSize,
      limitInputPixels: options.limitInputPixels,
    });
  }

  /** The vector of one image, optionally of a crop of it (in the pixels of the image as displayed). */
  async embed(input: ImageInput, options: { crop?: CropBox } = {}): Promise<Float32Array> {
    const image = await prepareImage(input, this.config, { ...this.decodeOptions, crop: options.crop });
    const tensor = new Float32Array(3 * this.config.input.size ** 2);
    fillTensor(image, this.config, tensor, 0);
    return (await this.run(tensor, 1)).vectors;
  }

  /**
   * Embeds many images in batches, decoding the next batch while the current one runs. Images that
   * cannot be used are reported in `failures` and skipped; they never stop the run.
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
    const nextBatch = async () => {
      const items: { index: number; input: ImageInput }[] = [];
      while (items.length < batchSize) {
        const next = await iterator.next();
        if (next.done) break;
        items.push({ index: index++, input: next.value });
      }
      return items.length === 0 ? undefined : this.prepareBatch(items);
    };
    let pending = nextBatch();
    for (;;) {
      const batch = await pending;
      if (!batch) return;
      pending = nextBatch(); // decode the next batch while this one runs
      const vectors =
        batch.count > 0 ? (await this.run(batch.tensor, batch.count)).vectors : new Float32Array(0);
      done += batch.count + batch.failures.length;
      failed += batch.failures.length;
      options.onProgress?.({ type: 'embed', done, total, failed });
      yield { indices: batch.indices, vectors, sizes: batch.sizes, failures: batch.failures };
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
        prepareImage(input, this.config, { ...this.decodeOptions, crop }).then(
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
    await this.engine.release();
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

/** The model file (downloaded if needed), its config and its sha256. */
async function resolveModel(
  model: string,
  options: EmbedderOptions,
): Promise<{ file: string; config: ModelConfig; sha256: string }> {
  const entry = MODEL_REGISTRY[model];
  if (entry) {
    const cacheDir = options.cacheDir ?? defaultCacheDir();
    const file = join(cacheDir, entry.fileName);
    const found = existsSync(file) ? await fileSha256(file) : undefined;
    if (found === entry.sha256) {
      return { file, config: parseModelConfig(entry.config, model), sha256: entry.sha256 };
    }
    const urls = [
      ...(options.mirrors ?? []).map((m) => `${m.replace(/\/$/, '')}/${entry.fileName}`),
      ...(options.officialSources === false ? [] : entry.urls),
    ];
    try {
      await downloadVerified(urls, file, entry, { onProgress: options.onProgress });
    } catch (error) {
      if (found === undefined || !(error instanceof ModelError)) throw error;
      // Say first what is wrong with the copy that is there, then why no fresh one could be had.
      throw new ModelError(
        'CHECKSUM_MISMATCH',
        `The copy of ${model} at ${file} failed its sha256 check (expected ${entry.sha256}, found ${found}), ` +
          `and no fresh copy could be downloaded (${error.message}). Delete that file and run again with network access, ` +
          'or replace it with a verified copy',
        { cause: error },
      );
    }
    return { file, config: parseModelConfig(entry.config, model), sha256: entry.sha256 };
  }
  if (model.endsWith('.onnx')) {
    const path = resolve(model);
    if (!existsSync(path)) {
      throw new ModelError(
        'MODEL_NOT_FOUND',
        `The model file ${path} does not exist; check the path (a collection's model must stay where it was when the collection was built)`,
      );
    }
    const configFile = path.replace(/\.onnx$/, '.json');
    if (!existsSync(configFile)) {
      throw new ModelError(
        'INVALID_MODEL',
        `No config for ${path}: write ${basename(configFile)} beside it (input name and size, normalisation, output tensor; see src/embed/config.ts)`,
      );
    }
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(configFile, 'utf8'));
    } catch (error) {
      throw new ModelError(
        'INVALID_MODEL',
        `Model config ${configFile} is not valid JSON: ${(error as Error).message}`,
      );
    }
    return { file: path, config: parseModelConfig(raw, configFile), sha256: await fileSha256(path) };
  }
  throw new ModelError(
    'UNKNOWN_MODEL',
    `Unknown model "${model}"; use one of ${Object.keys(MODEL_REGISTRY).join(', ')} or the path of an .onnx file`,
  );
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
