import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { modelIdOf } from '../src/embed/embedder.ts';
import { fillTensor, prepareImage } from '../src/embed/image.ts';
import { blockMeans } from '../src/embed/self-test.ts';
import { cachedModels, modelFeatures } from '../src/experiment/features.ts';
import {
  ArgumentError,
  ClipTokenizer,
  Embedder,
  embedQuery,
  MODEL_REGISTRY,
  modelConfigSchema,
  parseWeightedTerm,
} from '../src/index.ts';
import {
  axis,
  CLIP_DIMENSION,
  tinyClipConfig,
  tinyClipText,
  tinyClipVision,
  tinyTokenizerFiles,
  writeTinyClip,
} from './fixtures/tiny-clip.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';

const solid = (r: number, g: number, b: number) =>
  sharp({ create: { width: 64, height: 48, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i]!, 0);
const norm = (a: Float32Array) => Math.sqrt(dot(a, a));

let dir: string;
let clip: Embedder;
let tokenizer: ClipTokenizer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-clip-'));
  const files = tinyTokenizerFiles();
  tokenizer = ClipTokenizer.fromText(files.vocab, files.merges);
  const id = (word: string) => tokenizer.encode(word)[1]!;
  const rows = new Map<number, Float32Array>([
    [id('red'), axis(0)],
    [id('green'), axis(1)],
    [id('blue'), axis(2)],
    [id('dog'), axis(3)],
  ]);
  const model = await writeTinyClip(join(dir, 'clip'), {
    vision: tinyClipVision(),
    text: tinyClipText(rows),
    tokenizer: files,
  });
  clip = await Embedder.create({ model });
});
after(async () => {
  await clip.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a CLIP model (tiny towers built by the test)', () => {
  it('says it has a text tower and embeds sentences as unit vectors of its dimension', async () => {
    assert.equal(clip.hasText, true);
    assert.equal(clip.dimension, CLIP_DIMENSION);
    const v = await clip.embedText('a photo of a red square');
    assert.equal(v.length, CLIP_DIMENSION);
    assert.ok(Math.abs(norm(v) - 1) < 1e-6);
    assert.ok(v[0]! > 0.99, 'the red row, alone');
  });

  it('ranks images by a sentence: "red" finds the red image first, "blue" the blue one', async () => {
    const images = await Promise.all([solid(200, 30, 30), solid(30, 200, 30), solid(30, 30, 200)]);
    const vectors = await Promise.all(images.map((i) => clip.embed(i)));
    for (const [word, expected] of [
      ['red', 0],
      ['green', 1],
      ['blue', 2],
    ] as const) {
      const query = await clip.embedText(`a photo of the ${word} square`);
      const scores = vectors.map((v) => dot(v, query));
      assert.equal(scores.indexOf(Math.max(...scores)), expected, `${word}: ${scores}`);
    }
  });

  it('embeds a batch of texts of different lengths as each alone (padding changes nothing)', async () => {
    const texts = ['red', 'a photo of the green dog', 'blue blue red'];
    const batch = await clip.embedTexts(texts);
    for (const [i, text] of texts.entries()) {
      const alone = await clip.embedText(text);
      const row = batch.vectors.subarray(i * CLIP_DIMENSION, (i + 1) * CLIP_DIMENSION);
      for (let j = 0; j < CLIP_DIMENSION; j++)
        assert.ok(Math.abs(row[j]! - alone[j]!) < 1e-6, `${text} [${j}]`);
    }
    assert.deepEqual(batch.truncated, [false, false, false]);
  });

  it('cuts a text longer than 77 tokens to 77, the last made the end token, and says so', async () => {
    // start + ("red green") × 60 + end: the first 77 keep 38 × red and 38 × green, the last of which
    // becomes the end token: 38 red, 37 green.
    const long = Array.from({ length: 60 }, () => 'red green').join(' ');
    const { vectors, truncated } = await clip.embedTexts([long, 'red']);
    assert.deepEqual(truncated, [true, false]);
    const ratio = vectors[0]! / vectors[1]!;
    assert.ok(Math.abs(ratio - 38 / 37) < 1e-5, `red:green = ${ratio}, expected 38:37`);
  });

  it("takes the float text tower when asked, runs on the caller's thread too, and refuses a missing one", async () => {
    const files = tinyTokenizerFiles();
    const id = (word: string) => tokenizer.encode(word)[1]!;
    const folder = join(dir, 'two-towers');
    const model = await writeTinyClip(folder, {
      vision: tinyClipVision(),
      text: tinyClipText(new Map([[id('red'), axis(0)]])),
      tokenizer: files,
      config: tinyClipConfig({
        text: {
          model: 'text_model.onnx',
          floatModel: 'text_float.onnx',
          vocab: 'vocab.json',
          merges: 'merges.txt',
        },
      }),
    });
    await writeFile(join(folder, 'text_float.onnx'), tinyClipText(new Map([[id('red'), axis(5)]])));
    const quantized = await Embedder.create({ model, inferenceThread: 'main' });
    const float = await Embedder.create({ model, textTower: 'float' });
    try {
      assert.equal((await quantized.embedText('red'))[0], 1);
      assert.equal((await float.embedText('red'))[5], 1, 'the float tower answered');
      assert.equal(float.modelId, quantized.modelId, 'the same image space');
    } finally {
      await Promise.all([quantized.close(), float.close()]);
    }
    await assert.rejects(
      Embedder.create({ model: join(dir, 'clip', 'vision_model.onnx'), textTower: 'float' }),
      /has one text tower only; leave textTower unset/,
    );
  });

  it('refuses a text query on a model without a text tower, with what to use instead', async () => {
    const model = await writeTinyModel(
      dir,
      'image-only',
      'float',
      tinyConfig({ tensor: 'features', pooling: 'avg' }),
    );
    const imageOnly = await Embedder.create({ model, inferenceThread: 'main' });
    try {
      assert.equal(imageOnly.hasText, false);
      const refusal = (e: unknown) =>
        e instanceof ArgumentError &&
        e.code === 'INVALID_ARGUMENT' &&
        /^The model tiny has no text tower: it searches by image only\. Search by words needs a CLIP model \(clip-vit-b32\)/.test(
          e.message,
        );
      await assert.rejects(imageOnly.embedText('a dog'), refusal);
      // Before any image of the query is decoded: the image here is not even one.
      await assert.rejects(
        embedQuery(imageOnly, [{ image: Buffer.from('not an image') }, { text: 'a dog' }]),
        refusal,
      );
    } finally {
      await imageOnly.close();
    }
  });
});

describe('queries that mix words and images', () => {
  const component = (v: Float32Array, i: number) => v[i]!;

  it('a single text term is the text vector', async () => {
    const { vector } = await embedQuery(clip, [{ text: 'red' }]);
    assert.deepEqual(vector, await clip.embedText('red'));
  });

  it('adds weighted unit vectors and scales the sum to unit length; negative weights subtract', async () => {
    const { vector } = await embedQuery(clip, [{ text: 'red' }, { text: 'blue', weight: 2 }]);
    assert.ok(Math.abs(norm(vector) - 1) < 1e-6);
    assert.ok(Math.abs(component(vector, 2) / component(vector, 0) - 2) < 1e-5);
    const minus = await embedQuery(clip, [{ text: 'red' }, { text: 'green', weight: -1 }]);
    assert.ok(Math.abs(component(minus.vector, 0) - Math.SQRT1_2) < 1e-6);
    assert.ok(Math.abs(component(minus.vector, 1) + Math.SQRT1_2) < 1e-6);
  });

  it('weighs each term by its unit vector, whatever the length of what it is given', async () => {
    const red = await clip.embedText('red');
    const scaled = red.map((x) => x * 7);
    const { vector } = await embedQuery(clip, [{ vector: scaled }, { text: 'blue' }]);
    assert.ok(Math.abs(component(vector, 0) - component(vector, 2)) < 1e-6);
  });

  it('combines an image (a crop of it too) with words', async () => {
    const image = await solid(30, 200, 30);
    const picture = await clip.embed(image);
    const { vector } = await embedQuery(clip, [{ image }, { text: 'dog', weight: 0.5 }]);
    const expected = picture.map((x, j) => x + (j === 3 ? 0.5 : 0));
    const length = norm(expected);
    for (let j = 0; j < CLIP_DIMENSION; j++) assert.ok(Math.abs(vector[j]! - expected[j]! / length) < 1e-5);
    const cropped = await embedQuery(clip, [{ image, crop: { left: 0, top: 0, width: 10, height: 10 } }]);
    assert.ok(dot(cropped.vector, picture) > 0.999, 'a crop of a plain image looks the same');
  });

  it('reports the texts that were cut', async () => {
    const long = Array.from({ length: 80 }, () => 'red').join(' ');
    const { truncatedTexts } = await embedQuery(clip, [{ text: 'blue' }, { text: long, weight: -0.5 }]);
    assert.deepEqual(truncatedTexts, [1]);
  });

  it('refuses what cannot be a query, saying why', async () => {
    const refuses = async (terms: unknown, pattern: RegExp) =>
      assert.rejects(
        embedQuery(clip, terms as never),
        (e: unknown) => e instanceof ArgumentError && pattern.test(e.message),
      );
    await refuses([], /one or more terms/);
    await refuses([{ text: 'red' }, { text: 'red', weight: -1 }], /cancel each other out/);
    await refuses(
      [{ text: 'red', weight: 0 }],
      /weight to be a non-zero finite number but received number 0/,
    );
    await refuses([{ text: 'red', weight: Number.NaN }], /received NaN/);
    await refuses([{ text: '  ' }], /text to be a non-empty string/);
    await refuses(
      [{ text: 'red', image: 'x.png' }],
      /exactly one of text, image or vector but it has text and image/,
    );
    await refuses([{ vector: new Float32Array(3) }], /Float32Array of 512 values/);
    await assert.rejects(embedQuery(clip, [{ image: Buffer.from('nope') }]), { code: 'UNSUPPORTED_IMAGE' });
  });

  it('parses rclip\'s weights: "2:golden retriever"', () => {
    assert.deepEqual(parseWeightedTerm('2:golden retriever'), { weight: 2, value: 'golden retriever' });
    assert.deepEqual(parseWeightedTerm('0.5:./cat.jpg'), { weight: 0.5, value: './cat.jpg' });
    assert.deepEqual(parseWeightedTerm('-1.5:people'), { weight: -1.5, value: 'people' });
    assert.deepEqual(parseWeightedTerm('.5:x'), { weight: 0.5, value: 'x' });
    assert.deepEqual(parseWeightedTerm('golden retriever'), { weight: 1, value: 'golden retriever' });
    assert.deepEqual(parseWeightedTerm('note: a cat'), { weight: 1, value: 'note: a cat' });
    assert.deepEqual(parseWeightedTerm('2:'), { weight: 1, value: '2:' });
    assert.deepEqual(parseWeightedTerm('1:10:30 train'), { weight: 1, value: '10:30 train' });
  });
});

describe("CLIP's preprocessing", () => {
  const goldenDir = join(import.meta.dirname, 'golden');
  const golden = JSON.parse(readFileSync(join(goldenDir, 'clip-golden.json'), 'utf8')) as {
    file: string;
    grid: number[];
  }[];
  const config = modelConfigSchema.parse(MODEL_REGISTRY['clip-vit-b32']!.config);

  for (const { file, grid } of golden) {
    it(`of ${file} matches OpenAI's transform in Pillow (16 × 16 block means per channel)`, async () => {
      const tensor = new Float32Array(3 * 224 * 224);
      fillTensor(await prepareImage(join(goldenDir, file), config), config, tensor, 0);
      const means = blockMeans(tensor, 224, 16);
      const differences = means.map((m, i) => Math.abs(m - grid[i]!));
      const mean = differences.reduce((a, b) => a + b, 0) / differences.length;
      assert.ok(mean < 0.015, `mean difference ${mean}`);
      assert.ok(Math.max(...differences) < 0.12, `largest difference ${Math.max(...differences)}`);
    });
  }

  it('drops alpha as Pillow does: transparent areas are not flattened onto white', async () => {
    const white = { ...config, input: { ...config.input, alpha: 'white' as const } };
    const tensor = new Float32Array(3 * 224 * 224);
    fillTensor(await prepareImage(join(goldenDir, 'clip-alpha.png'), white), white, tensor, 0);
    const grid = golden[0]!.grid;
    const means = blockMeans(tensor, 224, 16);
    const mean = means.reduce((s, m, i) => s + Math.abs(m - grid[i]!), 0) / means.length;
    assert.ok(mean > 0.2, `flattening onto white must be far from CLIP's (${mean})`);
  });
});

it("keeps the ids of the models' vector spaces as they were before the CLIP fields", () => {
  // Ids computed by the code before input.alpha, resize.sizing and text existed: collections built then
  // must still open with their model.
  const expected: Record<string, string> = {
    resnet50: 'resnet50@1c132cce812c8068',
    'resnet50-int8': 'resnet50-int8@55bdd12c78dc4391',
    'mobilenetv2-int8': 'mobilenetv2-int8@f27d8de654ce3cfc',
  };
  for (const [name, id] of Object.entries(expected)) {
    const entry = MODEL_REGISTRY[name]!;
    assert.equal(modelIdOf(modelConfigSchema.parse(entry.config), entry.sha256), id);
  }
  const clipConfig = modelConfigSchema.parse(tinyClipConfig());
  const withoutText = modelConfigSchema.parse({ ...tinyClipConfig(), text: undefined });
  assert.equal(
    modelIdOf(clipConfig, 'x'),
    modelIdOf(withoutText, 'x'),
    'the text tower is not part of the image space',
  );
  const white = modelConfigSchema.parse({
    ...tinyClipConfig(),
    input: { ...tinyClipConfig().input, alpha: 'white' },
  });
  assert.notEqual(modelIdOf(clipConfig, 'x'), modelIdOf(white, 'x'), 'alpha handling is');
});

describe('CLIP in the Experiments models preset', () => {
  it('is listed once its files are in the cache, and is measured on its own embedding', async () => {
    const cacheDir = join(dir, 'cache-listed');
    await mkdir(join(cacheDir, 'clip-vit-b32'), { recursive: true });
    assert.ok(!cachedModels(cacheDir).includes('clip-vit-b32'));
    await writeFile(join(cacheDir, MODEL_REGISTRY['clip-vit-b32']!.fileName), '');
    assert.ok(cachedModels(cacheDir).includes('clip-vit-b32'));
    // The tiny CLIP's vision tower ends in a projection, as CLIP's does: no feature map to pool other ways.
    const paths = await Promise.all(
      ['red', 'blue'].map(async (name, i) => {
        const file = join(dir, `${name}.png`);
        await writeFile(file, await solid(i ? 30 : 200, 30, i ? 200 : 30));
        return file;
      }),
    );
    const features = await modelFeatures(join(dir, 'clip', 'vision_model.onnx'), paths);
    assert.equal(features.dimension, CLIP_DIMENSION);
    assert.equal(features.rows.length, 2);
    assert.ok(features.vectors.has('configured'));
    assert.match(features.note ?? '', /no global pooling feeds its output tensor "image_embeds"/);
  });
});
