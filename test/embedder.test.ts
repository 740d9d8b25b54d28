import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { fillTensor, prepareImage } from '../src/embed/image.ts';
import type { InferenceEngine } from '../src/embed/inference.ts';
import { Embedder, ModelError } from '../src/index.ts';
import { jpeg, png } from './fixtures/images.ts';
import { TINY_CHANNELS, TINY_SIZE, tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-embed-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tolerance = 1e-4) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= tolerance, `element ${i}: ${a[i]} vs ${b[i]}`);
};

async function embedder(
  name: string,
  variant: 'float' | 'quantized' | 'nhwc',
  output: Parameters<typeof tinyConfig>[0],
  overrides = {},
) {
  return Embedder.create({
    model: await writeTinyModel(dir, name, variant, tinyConfig(output, overrides)),
    threads: 1,
  });
}

describe('Embedder with tiny models built by the tests', () => {
  it('exposes an internal tensor: the avg-pooled feature map equals the graph own pooling', async () => {
    const map = await embedder('map-avg', 'float', { tensor: 'features', pooling: 'avg', normalize: false });
    const pooled = await embedder('pooled', 'float', { tensor: 'pooled', pooling: 'none', normalize: false });
    assert.equal(map.dimension, TINY_CHANNELS);
    assert.equal(pooled.dimension, TINY_CHANNELS);
    const img = await png(40, 30, 1);
    close(await map.embed(img), await pooled.embed(img));
  });

  it('max and GeM pooling follow their definitions over the raw feature map', async () => {
    const raw = await embedder('map-raw', 'float', { tensor: 'features', pooling: 'none', normalize: false });
    const max = await embedder('map-max', 'float', { tensor: 'features', pooling: 'max', normalize: false });
    const gem = await embedder('map-gem', 'float', {
      tensor: 'features',
      pooling: 'gem',
      gemP: 3,
      normalize: false,
    });
    const img = await png(50, 50, 2);
    const map = await raw.embed(img);
    const spatial = map.length / TINY_CHANNELS;
    const expectedMax = Array.from({ length: TINY_CHANNELS }, (_, c) =>
      Math.max(...map.subarray(c * spatial, (c + 1) * spatial)),
    );
    const expectedGem = Array.from({ length: TINY_CHANNELS }, (_, c) => {
      let s = 0;
      for (const v of map.subarray(c * spatial, (c + 1) * spatial)) s += Math.max(v, 1e-6) ** 3;
      return (s / spatial) ** (1 / 3);
    });
    close(await max.embed(img), expectedMax);
    close(await gem.embed(img), expectedGem, 1e-3);
  });

  it('inserts DequantizeLinear for a quantized tensor (close to the float features)', async () => {
    const quantized = await embedder('quant', 'quantized', {
      tensor: 'features_q',
      dequantize: { scale: 'q_scale', zeroPoint: 'q_zero_point' },
      pooling: 'avg',
      normalize: false,
    });
    const float = await embedder('float-avg', 'float', {
      tensor: 'features',
      pooling: 'avg',
      normalize: false,
    });
    const img = await png(40, 40, 3);
    // Quantization step 0.02: each value within half a step, averages too.
    close(await quantized.embed(img), await float.embed(img), 0.011);
  });

  it('channels-last models give the same vectors as channels-first ones', async () => {
    const nchw = await embedder('l-nchw', 'float', { tensor: 'pooled', pooling: 'none' });
    const nhwc = await Embedder.create({
      model: await writeTinyModel(dir, 'l-nhwc', 'nhwc', {
        ...tinyConfig({ tensor: 'pooled', pooling: 'none' }),
        input: { name: 'pixels', size: 16, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], layout: 'nhwc' },
      }),
    });
    const img = await png(33, 47, 4);
    close(await nhwc.embed(img), await nchw.embed(img));
  });

  it('normalises to unit length when asked', async () => {
    const e = await embedder('norm', 'float', { tensor: 'pooled', pooling: 'none', normalize: true });
    const v = await e.embed(await png(30, 30, 5));
    assert.ok(Math.abs(v.reduce((s, x) => s + x * x, 0) - 1) < 1e-5);
  });

  it('embedMany batches, pipelines and reports failures without stopping', async () => {
    const e = await embedder('many', 'float', { tensor: 'pooled', pooling: 'none' });
    const inputs: (Buffer | string)[] = [];
    for (let i = 0; i < 7; i++) inputs.push(await jpeg(40 + i, 30 + i, 10 + i));
    inputs.splice(3, 0, Buffer.from('not an image'));
    inputs.push(join(dir, 'missing.jpg'));
    const events: number[] = [];
    const rows = new Map<number, Float32Array>();
    const failed: number[] = [];
    for await (const batch of e.embedMany(inputs, { batchSize: 3, onProgress: (p) => events.push(p.done) })) {
      for (const [r, index] of batch.indices.entries())
        rows.set(index, batch.vectors.slice(r * e.dimension, (r + 1) * e.dimension));
      for (const f of batch.failures) failed.push(f.index);
    }
    assert.deepEqual(failed, [3, 8]);
    assert.deepEqual(events, [3, 6, 9]);
    assert.equal(rows.size, 7);
    for (const [index, vector] of rows) close(vector, await e.embed(inputs[index]!));
  });

  it('embedMany keeps the network busy while the caller holds a batch, and keeps the input order', async () => {
    const e = await embedder('ahead', 'float', { tensor: 'pooled', pooling: 'none' });
    const images = await Promise.all(Array.from({ length: 12 }, (_, i) => png(24 + i, 20, 30 + i)));
    // Watch the forward passes (the real ones: the spy only counts them).
    const internals = e as unknown as { run: (t: Float32Array, n: number) => Promise<unknown> };
    const realRun = internals.run.bind(e);
    let passes = 0;
    let secondPassDone: () => void = () => {};
    const secondPass = new Promise<void>((resolve) => {
      secondPassDone = resolve;
    });
    internals.run = async (tensor, count) => {
      const out = await realRun(tensor, count);
      if (++passes === 2) secondPassDone();
      return out;
    };
    const requested: number[] = [];
    async function* inputs() {
      for (const [i, image] of images.entries()) {
        requested.push(i);
        yield image;
      }
    }
    const order: number[] = [];
    for await (const batch of e.embedMany(inputs(), { batchSize: 3 })) {
      order.push(...batch.indices);
      if (order.length === 3) {
        // The caller holds the first batch: the second goes through the network meanwhile, and the third
        // is read. (Before, neither happened until the caller asked for the next batch.)
        let timer: NodeJS.Timeout | undefined;
        const stuck = new Promise<'stuck'>((resolve) => {
          timer = setTimeout(() => resolve('stuck'), 10_000);
        });
        const outcome = await Promise.race([secondPass, stuck]);
        clearTimeout(timer);
        assert.notEqual(outcome, 'stuck', 'the second batch ran while the first was held');
        assert.ok(requested.length >= 9, `inputs read ahead: ${requested.length}`);
      }
    }
    assert.deepEqual(
      order,
      Array.from({ length: 12 }, (_, i) => i),
    );
    assert.equal(passes, 4);
  });

  it('embedMany stops cleanly when the caller stops early', async () => {
    const e = await embedder('early', 'float', { tensor: 'pooled', pooling: 'none' });
    const images = await Promise.all(Array.from({ length: 30 }, (_, i) => png(20, 20, 60 + i)));
    let returned = false;
    async function* inputs() {
      try {
        yield* images;
      } finally {
        returned = true;
      }
    }
    for await (const batch of e.embedMany(inputs(), { batchSize: 4 })) {
      assert.equal(batch.indices.length, 4);
      break;
    }
    await e.close(); // waits for the passes in flight; nothing unhandled afterwards
    assert.ok(returned, "the input's generator was told to finish");
  });

  it('accepts a path, a Buffer and a stream alike', async () => {
    const e = await embedder('inputs', 'float', { tensor: 'pooled', pooling: 'none' });
    const bytes = await png(20, 20, 6);
    const file = join(dir, 'x.png');
    await writeFile(file, bytes);
    const fromBuffer = await e.embed(bytes);
    close(await e.embed(file), fromBuffer);
    close(await e.embed(Readable.from([bytes.subarray(0, 10), bytes.subarray(10)])), fromBuffer);
  });

  it('identifies model and config by a hash', async () => {
    const a = await embedder('id-a', 'float', { tensor: 'pooled', pooling: 'none' });
    const b = await embedder('id-b', 'float', { tensor: 'pooled', pooling: 'none' });
    const c = await embedder('id-c', 'float', { tensor: 'features', pooling: 'avg' });
    assert.match(a.modelId, /^tiny@[0-9a-f]{16}$/);
    assert.equal(a.modelId, b.modelId, 'same file and config, same id');
    assert.notEqual(a.modelId, c.modelId);
  });

  it('refuses unknown models, missing configs, bad configs and missing tensors', async () => {
    const expectModelError = async (promise: Promise<unknown>, code: string, message: RegExp) =>
      assert.rejects(promise, (error: unknown) => {
        assert.ok(error instanceof ModelError, String(error));
        assert.equal(error.code, code);
        assert.match(error.message, message);
        return true;
      });
    await expectModelError(
      Embedder.create({ model: 'resnet99' }),
      'UNKNOWN_MODEL',
      /Unknown model "resnet99"; use one of resnet50, resnet50-int8, mobilenetv2-int8/,
    );
    const bare = join(dir, 'bare.onnx');
    await writeFile(bare, (await import('./fixtures/tiny-models.ts')).tinyModel());
    await expectModelError(
      Embedder.create({ model: bare }),
      'INVALID_MODEL',
      /No config for .*bare.onnx: write bare.json beside it/,
    );
    await writeFile(
      join(dir, 'bare.json'),
      JSON.stringify({ name: 'x', input: { name: 'pixels', size: -3 }, output: { tensor: 'pooled' } }),
    );
    await expectModelError(Embedder.create({ model: bare }), 'INVALID_MODEL', /invalid at "input.size"/);
    await expectModelError(
      embedder('no-tensor', 'float', { tensor: 'nope' }),
      'INVALID_MODEL',
      /no tensor "nope"; set output.tensor in the model config to one of its tensors/,
    );
    await expectModelError(
      embedder('no-input', 'float', { tensor: 'pooled' }, { input: { name: 'image', size: 16 } }),
      'INVALID_MODEL',
      /no input "image" \(it has pixels\)/,
    );
  });

  it('crops in the pixels of the displayed image', async () => {
    const e = await embedder('crop', 'float', { tensor: 'pooled', pooling: 'none' });
    const full = await png(60, 40, 7);
    const part = await sharp(full).extract({ left: 10, top: 5, width: 30, height: 30 }).png().toBuffer();
    close(await e.embed(full, { crop: { left: 10, top: 5, width: 30, height: 30 } }), await e.embed(part));
  });
});

describe('the inference worker', () => {
  it('when it dies, fails the waiting calls with INFERENCE_FAILED, and the next call starts a new one', async () => {
    // The first worker ends its thread on its 3rd forward pass (1: the probe in create, 2: `expected`),
    // with a 4th call queued behind it.
    process.env.RIS_TEST_INFERENCE_EXIT = '3';
    const e = await embedder('crash', 'float', { tensor: 'pooled' }).finally(() => {
      delete process.env.RIS_TEST_INFERENCE_EXIT;
    });
    const image = await png(40, 30, 1);
    const expected = await e.embed(image);
    // Both calls reach the worker in the same tick (decoded beforehand), so both are waiting when it dies
    // however loaded the machine is: a call that came after the death would rightly start a new worker.
    const engine = (
      e as unknown as { engine: InferenceEngine & { worker: { terminate(): Promise<number> } } }
    ).engine;
    const tensor = new Float32Array(3 * TINY_SIZE * TINY_SIZE);
    fillTensor(await prepareImage(image, e.config), e.config, tensor, 0);
    const outcomes = await Promise.all(
      [1, 2].map(() =>
        engine.run(tensor.slice(), [1, 3, TINY_SIZE, TINY_SIZE]).then(
          () => 'answered',
          (error: unknown) => error,
        ),
      ),
    );
    for (const outcome of outcomes) {
      assert.ok(outcome instanceof ModelError, `a call in flight was ${String(outcome)}`);
      assert.equal(outcome.code, 'INFERENCE_FAILED');
      assert.match(
        outcome.message,
        /^The inference worker stopped \(exit code 70\) before answering; try again/,
      );
    }
    close(await e.embed(image), expected, 1e-6);
    // Stopped from outside while idle: the next call starts a new one too.
    await engine.worker.terminate();
    close(await e.embed(image), expected, 1e-6);
    await e.close();
  });
});
