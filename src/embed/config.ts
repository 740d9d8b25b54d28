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
    /**
     * What transparent pixels become. 'white' (default): flattened onto white, as a viewer shows them.
     * 'drop': the alpha channel is dropped after resizing, as OpenAI's CLIP preprocessing does (Pillow
     * resizes with premultiplied alpha, then `convert("RGB")`): partly transparent pixels keep their colour,
     * fully transparent ones turn black (CLIP.png's transparent background is black to the model).
     */
    alpha: z.enum(['white', 'drop']).default('white'),
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
      /**
       * Pixel arithmetic of `shorter-side-crop`. 'round' (default): the longer side and the crop offsets
       * rounded to the nearest pixel. 'torchvision': the longer side truncated and the offsets rounded half
       * to even, as torchvision's Resize and CenterCrop compute them (OpenAI's CLIP preprocessing).
       */
      sizing: z.enum(['round', 'torchvision']).default('round'),
    })
    .default({ mode: 'shorter-side-crop', size: 256, kernel: 'linear', sizing: 'round' }),
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
  /**
   * A text tower sharing the image tower's vector space (CLIP): with it, the model embeds sentences too.
   * File names are relative to the folder of the image model.
   */
  text: z
    .object({
      /** The text tower's ONNX file: `input_ids` int64 [N, L] → one vector per text. */
      model: z.string().min(1),
      /** Its float32 original where `model` is quantized, chosen with the embedder's `textTower: 'float'`. */
      floatModel: z.string().min(1).optional(),
      /** The BPE vocabulary (Hugging Face's vocab.json) and merges (merges.txt) of CLIP's tokenizer. */
      vocab: z.string().min(1),
      merges: z.string().min(1),
      /** Graph input taking the token ids. */
      input: z.string().min(1).default('input_ids'),
      /** Graph output holding the text vectors [N, D]. */
      output: z.string().min(1).default('text_embeds'),
      /** Tokens the model reads at most, start and end included; longer texts are cut. */
      contextLength: z.number().int().min(2).default(77),
    })
    .optional(),
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

/** A file ris knows how to fetch: where from, and how to check it. */
export interface RegistryFile {
  /**
   * The file's path in the cache folder; its base name is the source's, so a copy placed there is used
   * as is. A model of several files keeps them in a folder of its own (`clip-vit-b32/vocab.json`).
   */
  fileName: string;
  bytes: number;
  sha256: string;
  urls: string[];
}

/** A model ris knows how to fetch: its (image) model file and config, and any other files it needs. */
export interface RegistryEntry extends RegistryFile {
  config: ModelConfigInput;
  /**
   * Where the similarities of its image queries live, for the page's relevance slider (each model's
   * scores have their own scale). Default DEFAULT_SIMILARITY_SCALE.
   */
  similarity?: SimilarityScale;
  /**
   * The same for its text queries, for a model with a text tower: a sentence and a matching photo score far
   * lower than two photos (CLIP: about 0.2–0.35). Default DEFAULT_TEXT_SIMILARITY_SCALE.
   */
  textSimilarity?: SimilarityScale;
  /** The files the config names besides the image model (text towers, tokenizer), beside it in the cache. */
  files?: RegistryFile[];
  /** An end-to-end check run the first time the model loads on a machine. */
  selfTest?: SelfTestSpec;
  /**
   * ris duplicates: the cosine similarity from which two images' pixels are compared (see findDuplicates),
   * measured by npm run bench:duplicates. Without it each collection calibrates its own. Kept out of
   * `config`, whose every field is part of the model's id.
   */
  duplicateThreshold?: number;
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

/** Text–image cosines of CLIP-like models: below 0.5 even for a caption that fits. */
export const DEFAULT_TEXT_SIMILARITY_SCALE: SimilarityScale = { min: 0, max: 0.5, step: 0.005 };

/** The similarity scale of a model's text queries (see RegistryEntry.textSimilarity). */
export function textSimilarityScale(model: string): SimilarityScale {
  return MODEL_REGISTRY[model]?.textSimilarity ?? DEFAULT_TEXT_SIMILARITY_SCALE;
}

/**
 * OpenAI's own example for a CLIP model: an image, sentences, and what must come out. Each part is
 * checked apart, so a failure names what differs: the tokenizer (the ids of the sentences), the
 * preprocessing (block means of the image's input tensor, from an independent Pillow pipeline), or the
 * model's answer (softmax of 100 × cosine over the sentences).
 */
export interface SelfTestSpec {
  image: RegistryFile;
  texts: string[];
  /** The ids each text must tokenize to (start and end included). */
  tokens: number[][];
  /**
   * Means of the normalised input tensor over a `grid` × `grid` array of blocks, channel by channel
   * (3 × grid² values), and the mean absolute difference allowed.
   */
  preprocessing: { grid: number; means: number[]; tolerance: number };
  /** softmax(100 · cos(image, text)) over the texts, and the largest difference allowed for any one. */
  probabilities: number[];
  tolerance: number;
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
    duplicateThreshold: 0.75,
  },
};

const clipFiles = (file: string, bytes: number, sha256: string): RegistryFile => ({
  fileName: `clip-vit-b32/${file.split('/').pop()}`,
  bytes,
  sha256,
  urls: [`https://huggingface.co/Xenova/clip-vit-base-patch32/resolve/main/${file}`],
});

MODEL_REGISTRY['clip-vit-b32'] = {
  ...clipFiles(
    'onnx/vision_model.onnx',
    351_685_709,
    'fd6e1402a588279d1723c7534d4bcba5bc0b14b47dfab0e46f8c47b8270d7d40',
  ),
  config: {
    name: 'clip-vit-b32',
    // OpenAI's preprocessing: shorter side to 224 (bicubic), centre crop, alpha dropped, CLIP's mean/std.
    input: {
      name: 'pixel_values',
      size: 224,
      layout: 'nchw',
      channelOrder: 'rgb',
      scale: 1 / 255,
      mean: [0.48145466, 0.4578275, 0.40821073],
      std: [0.26862954, 0.26130258, 0.27577711],
      alpha: 'drop',
    },
    resize: { mode: 'shorter-side-crop', size: 224, kernel: 'cubic', sizing: 'torchvision' },
    output: { tensor: 'image_embeds', pooling: 'none', normalize: true },
    text: {
      model: 'text_model_quantized.onnx',
      floatModel: 'text_model.onnx',
      vocab: 'vocab.json',
      merges: 'merges.txt',
      input: 'input_ids',
      output: 'text_embeds',
      contextLength: 77,
    },
  },
  // CLIP's image vectors share a common direction: unrelated photos still score about 0.4–0.6.
  similarity: { min: 0.3, max: 1, step: 0.01 },
  // A caption that fits scores about 0.25–0.35 with its photo, an unrelated one about 0.15.
  textSimilarity: { min: 0.1, max: 0.4, step: 0.005 },
  files: [
    clipFiles(
      'onnx/text_model_quantized.onnx',
      64_504_507,
      '73baab855d406190da9faa498cfedf65f15cf309f4cc7385b7b032e6d08e5c3a',
    ),
    clipFiles(
      'onnx/text_model.onnx',
      254_058_553,
      '3f6571f5bad13a97c469c1622e1cfc4d9aef78b79fdbfcff804ca357bfada8cc',
    ),
    clipFiles('vocab.json', 862_328, '5047b556ce86ccaf6aa22b3ffccfc52d391ea4accdab9c2f2407da5b742d4363'),
    clipFiles('merges.txt', 524_619, '9fd691f7c8039210e0fced15865466c65820d09b63988b0174bfe25de299051a'),
  ],
  selfTest: {
    // The diagram of OpenAI's CLIP repository (pinned to a commit) and the answer its README gives.
    image: {
      fileName: 'clip-vit-b32/CLIP.png',
      bytes: 252_444,
      sha256: '308a3ca4503f1c7a07803916c369d78c4ef501e5ab7fc727da9b5e1d2f9ec85b',
      urls: [
        'https://raw.githubusercontent.com/openai/CLIP/d05afc436d78f1c48dc0dbf8e5980a9d471f35f6/CLIP.png',
        'https://github.com/openai/CLIP/raw/d05afc436d78f1c48dc0dbf8e5980a9d471f35f6/CLIP.png',
      ],
    },
    texts: ['a diagram', 'a dog', 'a cat'],
    tokens: [
      [49406, 320, 22697, 49407],
      [49406, 320, 1929, 49407],
      [49406, 320, 2368, 49407],
    ],
    // OpenAI's transform in Pillow (test/golden/make-golden-clip.py), 4 × 4 block means per channel.
    preprocessing: {
      grid: 4,
      means: [
        -1.7923, -1.7923, -0.4052, -1.5223, 0.0892, -0.1144, -0.5528, -0.9543, 1.5234, 1.3841, -1.7628,
        -1.4026, 1.752, 1.2142, -1.7515, -1.2461, -1.7521, -1.7521, -0.3371, -1.4746, 0.0947, -0.124, -0.4883,
        -0.8991, 1.7378, 1.5173, -1.7198, -1.2886, 1.9059, 1.4349, -1.7045, -1.1069, -1.4802, -1.4802,
        -0.1329, -1.2173, 0.4145, 0.1947, -0.2764, -0.6669, 1.9353, 1.6229, -1.4499, -1.0774, 2.0052, 1.6664,
        -1.4421, -0.9786,
      ],
      tolerance: 0.03,
    },
    probabilities: [0.9928, 0.0042, 0.003],
    tolerance: 0.01,
  },
};

export const DEFAULT_MODEL = 'resnet50';
