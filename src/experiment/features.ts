import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { MODEL_REGISTRY, type ModelConfig, parseModelConfig } from '../embed/config.ts';
import { defaultCacheDir, Embedder } from '../embed/embedder.ts';
import { type ModelProto, readModel } from '../embed/onnx-graph.ts';
import { poolOutput } from '../embed/pooling.ts';
import { ModelError } from '../errors.ts';

/** Built-in models whose file is already in the model cache: the models the user has. */
export function cachedModels(cacheDir = defaultCacheDir()): string[] {
  return Object.entries(MODEL_REGISTRY)
    .filter(([, entry]) => existsSync(join(cacheDir, entry.fileName)))
    .map(([name]) => name);
}

/** A model's file and config, without loading it: a built-in name or a local .onnx with its .json. */
export async function modelSource(
  model: string,
  cacheDir = defaultCacheDir(),
): Promise<{ file: string; config: ModelConfig }> {
  const entry = MODEL_REGISTRY[model];
  if (entry) return { file: join(cacheDir, entry.fileName), config: parseModelConfig(entry.config, model) };
  const file = resolve(model);
  const configFile = file.replace(/\.onnx$/, '.json');
  if (!model.endsWith('.onnx') || !existsSync(file) || !existsSync(configFile)) {
    throw new ModelError(
      'MODEL_NOT_FOUND',
      `No model "${model}": give a built-in name (${Object.keys(MODEL_REGISTRY).join(', ')}) or an .onnx file with its .json config beside it`,
    );
  }
  return { file, config: parseModelConfig(JSON.parse(await readFile(configFile, 'utf8')), configFile) };
}

export interface FeatureMap {
  tensor: string;
  dequantize?: { scale: string; zeroPoint: string };
  layout: 'nchw' | 'nhwc';
}

/**
 * The spatial feature map a model's embedding is pooled from, so other poolings can be tried: the
 * configured tensor itself when the config pools it, else the input of the global pooling node that
 * produces the configured tensor (through Flatten, Reshape, Squeeze or a dequantization). For a
 * quantized pool (mobilenetv2-int8's QLinearGlobalAveragePool) the float copy of its input is used when
 * the graph has one (tensor 627 there), else the quantized input with its scale and zero point.
 */
export function findFeatureMap(model: ModelProto, config: ModelConfig): FeatureMap | undefined {
  const out = config.output;
  if (out.pooling !== 'none') return { tensor: out.tensor, dequantize: out.dequantize, layout: out.layout };
  const nodes = model.graph?.node ?? [];
  const producer = new Map<string, (typeof nodes)[number]>();
  for (const node of nodes) for (const o of node.output ?? []) producer.set(o, node);
  let name = out.tensor;
  for (let step = 0; step < 4; step++) {
    const node = producer.get(name);
    const input = node?.input?.[0];
    if (!node || !input) return undefined;
    switch (node.opType) {
      case 'GlobalAveragePool':
      case 'GlobalMaxPool':
        return { tensor: input, layout: 'nchw' };
      case 'QLinearGlobalAveragePool': {
        const channelsLast = node.attribute?.some((a) => a.name === 'channels_last' && Number(a.i) === 1);
        const layout = channelsLast ? 'nhwc' : 'nchw';
        const float = nodes.find((n) => n.opType === 'DequantizeLinear' && n.input?.[0] === input);
        if (float?.output?.[0]) return { tensor: float.output[0], layout };
        const [, scale, zeroPoint] = node.input ?? [];
        return scale && zeroPoint ? { tensor: input, dequantize: { scale, zeroPoint }, layout } : undefined;
      }
      case 'Flatten':
      case 'Reshape':
      case 'Squeeze':
      case 'Identity':
      case 'DequantizeLinear':
        name = input;
        break;
      default:
        return undefined;
    }
  }
  return undefined;
}

export const POOLINGS = ['avg', 'max', 'gem'] as const;
export type Pooling = 'configured' | (typeof POOLINGS)[number];

export interface ModelFeatures {
  model: string;
  modelId: string;
  /** Rows of `vectors[pooling]` belong to these inputs (images that failed either pass are left out). */
  rows: Uint32Array;
  dimension: number;
  vectors: Map<Pooling, Float32Array>;
  /** Why avg/max/GeM are missing, when they are. */
  note: string | null;
  embedSeconds: number;
}

export interface EmbedPassProgress {
  pass: string;
  done: number;
  total: number;
}

/**
 * Embeds images with a model twice: as configured (exactly what a collection of that model stores,
 * unless `stored` already holds those vectors), and as its feature map, pooled three ways (average, max,
 * GeM with p = 3) without normalisation. One forward pass per image per pass.
 */
export async function modelFeatures(
  model: string,
  paths: string[],
  options: {
    cacheDir?: string;
    threads?: number;
    batchSize?: number;
    stored?: { modelId: string; vectors: Float32Array };
    onProgress?: (e: EmbedPassProgress) => void;
    signal?: AbortSignal;
  } = {},
): Promise<ModelFeatures> {
  const started = performance.now();
  const common = { cacheDir: options.cacheDir, threads: options.threads, batchSize: options.batchSize };
  const configured = await Embedder.create({ model, ...common });
  const modelId = configured.modelId;
  const C = configured.dimension;
  const n = paths.length;
  const ok = new Uint8Array(n);
  let configuredVectors: Float32Array;
  try {
    if (options.stored && options.stored.modelId === modelId) {
      configuredVectors = options.stored.vectors;
      ok.fill(1);
    } else {
      configuredVectors = new Float32Array(n * C);
      for await (const batch of configured.embedMany(paths, {
        onProgress: (e) => options.onProgress?.({ pass: 'as configured', done: e.done, total: n }),
      })) {
        batch.indices.forEach((index, r) => {
          configuredVectors.set(batch.vectors.subarray(r * C, (r + 1) * C), index * C);
          ok[index] = 1;
        });
        if (options.signal?.aborted) throw options.signal.reason;
      }
    }
  } finally {
    await configured.close();
  }
  const { file, config } = await modelSource(model, options.cacheDir);
  const map = findFeatureMap(readModel(await readFile(file), file), config);
  const pooled = new Map<Pooling, Float32Array>();
  let note: string | null = null;
  if (!map) {
    note = `${displayModel(model)}: no global pooling feeds its output tensor "${config.output.tensor}", so only its configured embedding is measured; give a config whose output tensor is the feature map to compare poolings`;
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'ris-experiment-'));
    try {
      // A copy of the model (a symlink) with a config that outputs the map unpooled and unnormalised.
      const linked = join(dir, `${basename(file, '.onnx')}-map.onnx`);
      await symlink(file, linked);
      const mapConfig = {
        ...config,
        name: `${config.name}-feature-map`,
        output: {
          ...config.output,
          tensor: map.tensor,
          dequantize: map.dequantize,
          layout: map.layout,
          pooling: 'none',
          normalize: false,
        },
      };
      await writeFile(linked.replace(/\.onnx$/, '.json'), JSON.stringify(mapConfig));
      const embedder = await Embedder.create({ model: linked, ...common });
      try {
        const perItem = embedder.dimension;
        const spatial = perItem / C;
        if (!Number.isInteger(spatial) || spatial < 1) {
          note = `${displayModel(model)}: the feature map "${map.tensor}" has ${perItem} values per image, not a multiple of the ${C} channels of its embedding; only the configured embedding is measured`;
        } else {
          for (const p of POOLINGS) pooled.set(p, new Float32Array(n * C));
          const seen = new Uint8Array(n);
          for await (const batch of embedder.embedMany(paths, {
            onProgress: (e) => options.onProgress?.({ pass: 'feature map', done: e.done, total: n }),
          })) {
            const count = batch.indices.length;
            if (count === 0) continue;
            const dims = map.layout === 'nchw' ? [count, C, spatial, 1] : [count, spatial, 1, C];
            for (const p of POOLINGS) {
              const { vectors } = poolOutput(batch.vectors, dims, {
                tensor: map.tensor,
                pooling: p,
                gemP: 3,
                layout: map.layout,
                normalize: false,
              });
              const target = pooled.get(p)!;
              batch.indices.forEach((index, r) => {
                target.set(vectors.subarray(r * C, (r + 1) * C), index * C);
              });
            }
            for (const index of batch.indices) seen[index] = 1;
            if (options.signal?.aborted) throw options.signal.reason;
          }
          for (let i = 0; i < n; i++) ok[i] = ok[i]! & seen[i]!;
        }
      } finally {
        await embedder.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const rows: number[] = [];
  for (let i = 0; i < n; i++) if (ok[i]) rows.push(i);
  const keep = (all: Float32Array) => {
    if (rows.length === n) return all;
    const out = new Float32Array(rows.length * C);
    rows.forEach((row, i) => {
      out.set(all.subarray(row * C, (row + 1) * C), i * C);
    });
    return out;
  };
  const vectors = new Map<Pooling, Float32Array>([['configured', keep(configuredVectors)]]);
  for (const [p, all] of pooled) vectors.set(p, keep(all));
  return {
    model,
    modelId,
    rows: Uint32Array.from(rows),
    dimension: C,
    vectors,
    note,
    embedSeconds: (performance.now() - started) / 1000,
  };
}

/** A model as a person reads it: the registry name, or the file name of a local model. */
export function displayModel(model: string): string {
  return model.endsWith('.onnx') ? basename(model) : model;
}
