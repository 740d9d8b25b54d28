import { z } from 'zod';
import { ModelError } from '../errors.ts';

/**
 * How to turn an image into the model's input and the model's output into a vector. Lives beside a local
 * `.onnx` file as `<name>.json`, or built in for the registry's models.
 */
export const modelConfigSchema = z.object({
  /** Human name, used in model ids. */
  name: z.string().min(1),
  input: z.object({
    /** The graph input to feed. */
    name: z.string().min(1),
    /** Side of the square input, in pixels. */
    size: z.number().int().positive().default(224),
    /** Tensor layout: batch, channels, height, width (PyTorch and most ONNX zoo models) or channels last. */
    layout: z.enum(['nchw', 'nhwc']).default('nchw'),
    channelOrder: z.enum(['rgb', 'bgr']).default('rgb'),
    /** Pixel values (0–255) are multiplied by this, then (v − mean) / std per channel. */
    scale: z
      .number()
      .positive()
      .default(1 / 255),
    mean: z.tuple([z.number(), z.number(), z.number()]).default([0.485, 0.456, 0.406]),
    std: z
      .tuple([z.number().positive(), z.number().positive(), z.number().positive()])
      .default([0.229, 0.224, 0.225]),
  }),
  resize: z
    .object({
      /**
       * `shorter-side-crop`: the shorter side to `size`, then the centre `input.size` square (torchvision's
       * evaluation transform; keeps proportions). `stretch`: straight to the input square, as the reference did.
       */
      mode: z.enum(['shorter-side-crop', 'stretch']).default('shorter-side-crop'),
      size: z.number().int().positive().default(256),
      /** sharp's resampling kernel. 'linear' is closest to PIL and torchvision's bilinear with antialiasing. */
      kernel: z.enum(['nearest', 'linear', 'cubic', 'mitchell', 'lanczos3']).default('linear'),
    })
    .default({ mode: 'shorter-side-crop', size: 256, kernel: 'linear' }),
  output: z.object({
    /** The tensor holding the embedding; any internal tensor can be named, it is exposed as a graph output. */
    tensor: z.string().min(1),
    /** For a quantized tensor: its scale and zero-point tensors; a DequantizeLinear node is added. */
    dequantize: z.object({ scale: z.string(), zeroPoint: z.string() }).optional(),
    /** Pooling over a spatial map [N, C, H, W] (or [N, H, W, C] with layout nhwc): none flattens. */
    pooling: z.enum(['none', 'avg', 'max', 'gem']).default('none'),
    /** GeM's exponent (p = 1 is average pooling, large p approaches max pooling). */
    gemP: z.number().positive().default(3),
    layout: z.enum(['nchw', 'nhwc']).default('nchw'),
    /** Scale every vector to unit length, so L2 search ranks as cosine similarity does. */
    normalize: z.boolean().default(true),
  }),
});

export type ModelConfig = z.output<typeof modelConfigSchema>;
export type ModelConfigInput = z.input<typeof modelConfigSchema>;

export function parseModelConfig(value: unknown, source: string): ModelConfig {
  const result = modelConfigSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ModelError(
      'INVALID_MODEL',
      `Model config ${source} is invalid at "${issue.path.join('.') || '(root)'}": ${issue.message}; see the fields documented in src/embed/config.ts`,
    );
  }
  return result.data;
}

/** A model ris knows how to fetch: its file, where from, and how to check it. */
export interface RegistryEntry {
  /** The file name in the cache; the same as the source's, so a copy placed there is used as is. */
  fileName: string;
  bytes: number;
  sha256: string;
  urls: string[];
  config: ModelConfigInput;
  /**
   * Where the similarities of its image queries live, for the page's relevance slider (each model's
   * scores have their own scale). Default DEFAULT_SIMILARITY_SCALE.
   */
  similarity?: SimilarityScale;
}

/** A range of similarity (1 − cosine distance) and the step a slider moves by over it. */
export interface SimilarityScale {
  min: number;
  max: number;
  step: number;
}

/**
 * ImageNet features of photos: unrelated images score about 0.3–0.5, near copies above 0.9; the whole
 * range from 0 keeps the slider honest for any model.
 */
export const DEFAULT_SIMILARITY_SCALE: SimilarityScale = { min: 0, max: 1, step: 0.01 };

/** The similarity scale of a model (a registry name or a model file path). */
export function similarityScale(model: string): SimilarityScale {
  return MODEL_REGISTRY[model]?.similarity ?? DEFAULT_SIMILARITY_SCALE;
}

const zoo = (folder: string, file: string) => [
  `https://huggingface.co/onnxmodelzoo/${file.replace(/\.onnx$/, '')}/resolve/main/${file}`,
  `https://github.com/onnx/models/raw/main/validated/vision/classification/${folder}/model/${file}`,
];

const imagenet = {
  layout: 'nchw' as const,
  channelOrder: 'rgb' as const,
  scale: 1 / 255,
  mean: [0.485, 0.456, 0.406] as [number, number, number],
  std: [0.229, 0.224, 0.225] as [number, number, number],
  size: 224,
};

/** The built-in models. `resnet50` is the reference app's network and the default. */
export const MODEL_REGISTRY: Record<string, RegistryEntry> = {
  resnet50: {
    fileName: 'resnet50-v1-12.onnx',
    bytes: 102_576_593,
    sha256: '3f03fdef724b22947eed826f1eef1dc5c34151bb4c37d634f1db89dfa2dd1526',
    urls: zoo('resnet', 'resnet50-v1-12.onnx'),
    config: {
      name: 'resnet50',
      input: { name: 'data', ...imagenet },
      output: { tensor: 'resnetv17_pool1_fwd', pooling: 'none', normalize: true },
    },
  },
  'resnet50-int8': {
    fileName: 'resnet50-v1-12-int8.onnx',
    bytes: 25_816_052,
    sha256: 'c234f30975989788b4405f25253275aae247ab6dbdd34aaa69ab0a59ff76f6d0',
    urls: zoo('resnet', 'resnet50-v1-12-int8.onnx'),
    config: {
      name: 'resnet50-int8',
      input: { name: 'data', ...imagenet },
      output: { tensor: 'resnetv17_pool1_fwd', pooling: 'none', normalize: true },
    },
  },
  'mobilenetv2-int8': {
    fileName: 'mobilenetv2-12-int8.onnx',
    bytes: 3_655_033,
    sha256: 'cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f',
    urls: zoo('mobilenet', 'mobilenetv2-12-int8.onnx'),
    config: {
      name: 'mobilenetv2-int8',
      input: { name: 'input', ...imagenet },
      // The pooled 1280-d feature exists only quantized (QLinearGlobalAveragePool's output).
      output: {
        tensor: '464_quantized',
        dequantize: { scale: '464_scale', zeroPoint: '464_zero_point' },
        pooling: 'none',
        normalize: true,
      },
    },
  },
};

export const DEFAULT_MODEL = 'resnet50';
