import { readFile } from 'node:fs/promises';
import type * as ort from 'onnxruntime-node';
import { ArgumentError, describe, ModelError } from '../errors.ts';
import type { ClipTokenizer } from './clip-tokenizer.ts';
import { type InferenceEngine, inProcessEngine, workerEngine } from './inference.ts';
import { exposeTensor, readModel, writeModel } from './onnx-graph.ts';
import { normalizeRows } from './pooling.ts';

export interface TextTowerInit {
  /** The text tower's ONNX file. */
  file: string;
  tokenizer: ClipTokenizer;
  /** Graph input (int64 token ids [N, L]) and output ([N, D]). */
  inputName: string;
  outputName: string;
  /** Tokens the model reads at most, start and end included (77 for CLIP). */
  contextLength: number;
  normalize: boolean;
  options: ort.InferenceSession.SessionOptions;
  inferenceThread: 'worker' | 'main';
}

/** Token ids of a batch of texts, padded into one [N, L] tensor. */
export interface TokenBatch {
  ids: BigInt64Array;
  length: number;
  /** Per text: whether it was longer than the model reads and was cut. */
  truncated: boolean[];
}

/**
 * The text half of a CLIP model: tokenizes, runs the text tower (in a worker thread by default), and
 * scales each vector to unit length. Texts longer than the context (77 tokens for CLIP, about 60 words)
 * are cut as OpenAI's `clip.tokenize(truncate=True)` cuts them: the first 77 tokens, the last one made
 * the end token.
 *
 * A batch is padded with 0 to its longest text, not to 77: CLIP's text transformer is causal and reads
 * its vector at the end token, so tokens after the end change nothing, and a short query costs a few
 * tokens instead of 77 (a model whose input has a fixed length is padded to that length).
 */
export class TextTower {
  readonly dimension: number;
  readonly tokenizer: ClipTokenizer;
  private readonly engine: InferenceEngine;
  private readonly contextLength: number;
  private readonly fixedLength: number | undefined;
  private readonly normalize: boolean;

  private constructor(init: {
    engine: InferenceEngine;
    tokenizer: ClipTokenizer;
    contextLength: number;
    fixedLength: number | undefined;
    normalize: boolean;
    dimension: number;
  }) {
    this.engine = init.engine;
    this.tokenizer = init.tokenizer;
    this.contextLength = init.contextLength;
    this.fixedLength = init.fixedLength;
    this.normalize = init.normalize;
    this.dimension = init.dimension;
  }

  static async load(init: TextTowerInit): Promise<TextTower> {
    const prepared = async () => {
      const graph = readModel(await readFile(init.file), init.file);
      const outputName = exposeTensor(graph, init.outputName);
      const input = graph.graph?.input?.find((i) => i.name === init.inputName);
      const declared = Number(input?.type?.tensorType?.shape?.dim?.[1]?.dimValue ?? 0);
      return { bytes: writeModel(graph), outputName, fixedLength: declared > 0 ? declared : undefined };
    };
    const { bytes, outputName, fixedLength } = await prepared();
    const engineInit = {
      model: bytes,
      reload: async () => (await prepared()).bytes,
      options: init.options,
      inputName: init.inputName,
      outputName,
    };
    const engine = await (init.inferenceThread === 'main'
      ? inProcessEngine(engineInit)
      : workerEngine(engineInit));
    if (!engine.inputNames.includes(init.inputName)) {
      await engine.release();
      throw new ModelError(
        'INVALID_MODEL',
        `The text tower ${init.file} has no input "${init.inputName}" (it has ${engine.inputNames.join(', ')}); fix text.input in the model's config`,
      );
    }
    const contextLength = Math.min(init.contextLength, fixedLength ?? init.contextLength);
    const shape = {
      engine,
      tokenizer: init.tokenizer,
      contextLength,
      fixedLength,
      normalize: init.normalize,
    };
    const probe = new TextTower({ ...shape, dimension: 0 });
    let dimension: number;
    try {
      dimension = (await probe.run([''])).dimension;
    } catch (error) {
      await engine.release();
      throw error;
    }
    return new TextTower({ ...shape, dimension });
  }

  /** The ids the model gets for `texts`: cut to the context, padded with 0 to one length. */
  tokenize(texts: readonly string[]): TokenBatch {
    const encoded = texts.map((text) => this.tokenizer.encode(text));
    const truncated = encoded.map((ids) => ids.length > this.contextLength);
    const longest = Math.max(...encoded.map((ids) => Math.min(ids.length, this.contextLength)));
    const length = this.fixedLength ?? longest;
    const ids = new BigInt64Array(texts.length * length);
    encoded.forEach((tokens, row) => {
      const kept = Math.min(tokens.length, this.contextLength);
      for (let j = 0; j < kept; j++) ids[row * length + j] = BigInt(tokens[j]!);
      if (tokens.length > kept) ids[row * length + kept - 1] = BigInt(this.tokenizer.endId);
    });
    return { ids, length, truncated };
  }

  /** One vector per text, row after row (unit length where the model's config normalises). */
  async embed(texts: readonly string[]): Promise<{ vectors: Float32Array; truncated: boolean[] }> {
    if (!Array.isArray(texts) || texts.length === 0 || texts.some((t) => typeof t !== 'string')) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Expected a non-empty array of texts but received ${describe(texts)}`,
      );
    }
    const { vectors, truncated } = await this.run(texts);
    return { vectors, truncated };
  }

  private async run(texts: readonly string[]) {
    const batch = this.tokenize(texts);
    const output = await this.engine.run(batch.ids, [texts.length, batch.length]);
    if (output.dims.length !== 2) {
      throw new ModelError(
        'INVALID_MODEL',
        `The text tower's output has shape [${output.dims.join(', ')}], not one vector per text [N, D]; set text.output in the model's config to the text embeddings`,
      );
    }
    const dimension = output.dims[1]!;
    const vectors = Float32Array.from(output.data);
    if (this.normalize) normalizeRows(vectors, dimension);
    return { vectors, dimension, truncated: batch.truncated };
  }

  release(): Promise<void> {
    return this.engine.release();
  }
}
