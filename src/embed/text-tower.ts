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

/** The token ids the model gets for one text. */
export interface TextTokens {
  ids: BigInt64Array;
  /** Whether the text was longer than the model reads and was cut. */
  truncated: boolean;
}

/**
 * The text half of a CLIP model: tokenizes, runs the text tower (in a worker thread by default), and
 * scales each vector to unit length. Texts longer than the context (77 tokens for CLIP, about 60 words)
 * are cut as OpenAI's `clip.tokenize(truncate=True)` cuts them: the first 77 tokens, the last one made
 * the end token.
 *
 * Each text runs alone at its own length, not padded to 77: CLIP's text transformer is causal and reads
 * its vector at the end token, so padding after it changes nothing in the float tower, and a short query
 * costs a few tokens instead of 77 (measured on a random-weight export: 3 ms instead of 27 ms on 2
 * cores). The quantized tower quantizes its activations per forward pass, over all the tokens it is
 * given, so padding or batch neighbours would shift a vector a little (up to 0.3 % per component there):
 * one text per pass keeps every text's vector the same whatever it is embedded with. A model whose input
 * has a fixed length is padded to that length with 0, as OpenAI pads.
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
      dimension = (await probe.run('')).dimension;
    } catch (error) {
      await engine.release();
      throw error;
    }
    return new TextTower({ ...shape, dimension });
  }

  /** The ids the model gets for `text`: cut to the context (padded with 0 for a fixed-length input). */
  tokenize(text: string): TextTokens {
    const tokens = this.tokenizer.encode(text);
    const kept = Math.min(tokens.length, this.contextLength);
    const ids = new BigInt64Array(this.fixedLength ?? kept);
    for (let j = 0; j < kept; j++) ids[j] = BigInt(tokens[j]!);
    const truncated = tokens.length > kept;
    if (truncated) ids[kept - 1] = BigInt(this.tokenizer.endId);
    return { ids, truncated };
  }

  /** One vector per text, row after row (unit length where the model's config normalises). */
  async embed(texts: readonly string[]): Promise<{ vectors: Float32Array; truncated: boolean[] }> {
    if (!Array.isArray(texts) || texts.length === 0 || texts.some((t) => typeof t !== 'string')) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Expected a non-empty array of texts but received ${describe(texts)}`,
      );
    }
    const rows = [];
    for (const text of texts) rows.push(await this.run(text));
    const vectors = new Float32Array(rows.length * this.dimension);
    for (const [i, row] of rows.entries()) vectors.set(row.vector, i * this.dimension);
    return { vectors, truncated: rows.map((r) => r.truncated) };
  }

  private async run(text: string): Promise<{ vector: Float32Array; truncated: boolean; dimension: number }> {
    const { ids, truncated } = this.tokenize(text);
    const output = await this.engine.run(ids, [1, ids.length]);
    if (output.dims.length !== 2 || output.dims[0] !== 1) {
      throw new ModelError(
        'INVALID_MODEL',
        `The text tower's output has shape [${output.dims.join(', ')}], not one vector per text [N, D]; set text.output in the model's config to the text embeddings`,
      );
    }
    const dimension = output.dims[1]!;
    if (this.dimension !== 0 && dimension !== this.dimension) {
      throw new ModelError(
        'INVALID_MODEL',
        `The text tower gave ${dimension} values, then ${this.dimension}`,
      );
    }
    const vector = Float32Array.from(output.data);
    if (this.normalize) normalizeRows(vector, dimension);
    return { vector, truncated, dimension };
  }

  release(): Promise<void> {
    return this.engine.release();
  }
}
