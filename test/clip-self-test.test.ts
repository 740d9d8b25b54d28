import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runSelfTest, selfTestError } from '../src/embed/self-test.ts';
import {
  ClipTokenizer,
  Embedder,
  MODEL_REGISTRY,
  type ModelConfigInput,
  ModelError,
  type RegistryFile,
  type SelfTestSpec,
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
import { listenOnLoopback, sharedData } from './helpers.ts';
import { guardConnections } from './network-guard.ts';

const guard = guardConnections();
const goldenDir = join(import.meta.dirname, 'golden');
const TEXTS = ['a diagram', 'a dog', 'a cat'];
const ANSWER = [0.9928, 0.0042, 0.003];

/**
 * Text rows that give ANSWER against an image vector along axis 0: text i is cos_i along axis 0 and the
 * rest on an axis of its own, with cos_i spaced so that softmax(100 · cos) is ANSWER.
 */
function answeringRows(idsOf: (text: string) => number, order: readonly number[] = [0, 1, 2]) {
  const cosines = ANSWER.map((p) => 0.3 - Math.log(ANSWER[0]! / p) / 100);
  const rows = new Map<number, Float32Array>();
  order.forEach((answer, t) => {
    const row = axis(t + 1, Math.sqrt(1 - cosines[answer]! ** 2));
    row[0] = cosines[answer]!;
    rows.set(idsOf(TEXTS[t]!), row);
  });
  return rows;
}

/** The 4 × 4 block means of clip-alpha.png by Pillow, from the 16 × 16 golden grid. */
function pillowMeans4(): number[] {
  const golden = JSON.parse(readFileSync(join(goldenDir, 'clip-golden.json'), 'utf8')) as {
    file: string;
    grid: number[];
  }[];
  const grid = golden.find((g) => g.file === 'clip-alpha.png')!.grid;
  const out: number[] = [];
  for (let c = 0; c < 3; c++)
    for (let by = 0; by < 4; by++)
      for (let bx = 0; bx < 4; bx++) {
        let sum = 0;
        for (let y = by * 4; y < by * 4 + 4; y++)
          for (let x = bx * 4; x < bx * 4 + 4; x++) sum += grid[c * 256 + y * 16 + x]!;
        out.push(sum / 16);
      }
  return out;
}

const tokenizerFiles = tinyTokenizerFiles();
const tokenizer = ClipTokenizer.fromText(tokenizerFiles.vocab, tokenizerFiles.merges);
const wordId = (text: string) => tokenizer.encode(text).at(-2)!; // the word after "a"

function tinySpec(image: RegistryFile): SelfTestSpec {
  return {
    image,
    texts: TEXTS,
    tokens: TEXTS.map((t) => Array.from(tokenizer.encode(t))),
    preprocessing: { grid: 4, means: pillowMeans4(), tolerance: 0.03 },
    probabilities: ANSWER,
    tolerance: 0.01,
  };
}

let dir: string;
let server: Server;
let base: string;
const requests: string[] = [];
const served = new Map<string, Buffer>();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-self-test-'));
  server = createServer((req, res) => {
    requests.push(req.url!);
    const body = served.get(req.url!);
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  base = await listenOnLoopback(server);
});
after(async () => {
  server.close();
  guard.restore();
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(
    guard.attempts.filter((a) => !a.allowed),
    [],
    'every connection went to this machine',
  );
});

/** A tiny CLIP as a local model; `swap` puts the answer on the wrong text. */
async function localClip(name: string, options: { swap?: boolean; config?: ModelConfigInput } = {}) {
  return writeTinyClip(join(dir, name), {
    vision: tinyClipVision({ weights: 'none', bias: axis(0) }),
    text: tinyClipText(answeringRows(wordId, options.swap ? [1, 0, 2] : [0, 1, 2])),
    tokenizer: tokenizerFiles,
    config: options.config,
  });
}

describe("the self-test's decision", () => {
  const image: RegistryFile = { fileName: 'clip-alpha.png', bytes: 0, sha256: '', urls: [] };
  const imagePath = join(goldenDir, 'clip-alpha.png');

  it('passes a model that gives the answer from the right tokens and the right input', async () => {
    const embedder = await Embedder.create({ model: await localClip('pass') });
    try {
      const report = await runSelfTest(embedder, tinySpec(image), imagePath);
      assert.equal(report.passed, true, JSON.stringify(report));
      assert.ok(report.preprocessing.difference < 0.01, `${report.preprocessing.difference}`);
      for (const [i, p] of report.probabilities.found.entries()) assert.ok(Math.abs(p - ANSWER[i]!) < 1e-3);
    } finally {
      await embedder.close();
    }
  });

  it("names the model's answer when tokens and input are right", async () => {
    const embedder = await Embedder.create({ model: await localClip('swapped', { swap: true }) });
    try {
      const spec = tinySpec(image);
      const report = await runSelfTest(embedder, spec, imagePath);
      assert.deepEqual(
        [report.passed, report.tokenizer.passed, report.preprocessing.passed, report.probabilities.passed],
        [false, true, true, false],
      );
      const message = selfTestError('tiny-clip', spec, report).message;
      assert.match(
        message,
        /^tiny-clip failed its self-test on OpenAI's example \(clip-alpha\.png with "a diagram", "a dog", "a cat"\): the model's answer differs \(softmax\(100·cos\) 0\.0042, 0\.9928, 0\.0030 instead of 0\.9928, 0\.0042, 0\.003 ±0\.01\) though its tokens and input are right/,
      );
      assert.doesNotMatch(message, /tokenizer|preprocessing/);
      assert.doesNotMatch(message, /\n/);
    } finally {
      await embedder.close();
    }
  });

  it('names the preprocessing when the image reaches the model differently (alpha flattened onto white)', async () => {
    const white = tinyClipConfig();
    white.input = { ...white.input, alpha: 'white' };
    const embedder = await Embedder.create({ model: await localClip('white', { config: white }) });
    try {
      const spec = tinySpec(image);
      const report = await runSelfTest(embedder, spec, imagePath);
      assert.equal(report.tokenizer.passed, true);
      assert.equal(report.preprocessing.passed, false);
      const message = selfTestError('tiny-clip', spec, report).message;
      assert.match(
        message,
        /: the preprocessing differs \(the image's input tensor is \d\.\d{3} from Pillow's on average, at most 0\.03 allowed\)\. ris refuses/,
      );
    } finally {
      await embedder.close();
    }
  });

  it('names the tokenizer, with the ids it gave and the ids expected', async () => {
    const embedder = await Embedder.create({ model: await localClip('pass') });
    try {
      const spec = {
        ...tinySpec(image),
        tokens: [[49406, 320, 22697, 49407], ...tinySpec(image).tokens.slice(1)],
      };
      const report = await runSelfTest(embedder, spec, imagePath);
      assert.deepEqual([report.tokenizer.passed, report.preprocessing.passed], [false, true]);
      const found = report.tokenizer.found[0]!.join(' ');
      assert.match(
        selfTestError('tiny-clip', spec, report).message,
        new RegExp(
          `: the tokenizer differs \\("a diagram" gives ${found}, expected 49406 320 22697 49407\\)\\. ris refuses`,
        ),
      );
    } finally {
      await embedder.close();
    }
  });
});

describe('the self-test of a built-in model, on its first load on a machine', () => {
  const files = new Map<string, Buffer>();
  /** Registers a model served by the test's server, in the layout of clip-vit-b32's entry. */
  async function register(name: string, options: { swap?: boolean } = {}) {
    const local = await localClip(`${name}-source`, options);
    const folder = join(local, '..');
    const file = async (fileName: string, source: string): Promise<RegistryFile> => {
      const bytes = await readFile(source);
      served.set(`/${name}/${fileName}`, bytes);
      files.set(fileName, bytes);
      return {
        fileName: `${name}/${fileName}`,
        bytes: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        urls: [`${base}/${name}/${fileName}`],
      };
    };
    const vision = await file('vision_model.onnx', local);
    MODEL_REGISTRY[name] = {
      ...vision,
      config: { ...tinyClipConfig(), name },
      files: [
        await file('text_model.onnx', join(folder, 'text_model.onnx')),
        await file('vocab.json', join(folder, 'vocab.json')),
        await file('merges.txt', join(folder, 'merges.txt')),
      ],
      selfTest: tinySpec(await file('clip-alpha.png', join(goldenDir, 'clip-alpha.png'))),
    };
  }
  after(() => {
    for (const name of ['tiny-clip-good', 'tiny-clip-bad']) delete MODEL_REGISTRY[name];
  });

  it('downloads every file, runs the test once, records that it passed, and loads without it after', async () => {
    await register('tiny-clip-good');
    const cacheDir = join(dir, 'cache');
    requests.length = 0;
    const first = await Embedder.create({ model: 'tiny-clip-good', cacheDir });
    await first.close();
    assert.deepEqual(requests.map((r) => basename(r)).sort(), [
      'clip-alpha.png',
      'merges.txt',
      'text_model.onnx',
      'vision_model.onnx',
      'vocab.json',
    ]);
    const record = JSON.parse(await readFile(join(cacheDir, 'tiny-clip-good', 'self-test.json'), 'utf8'));
    assert.match(record.key, /^[0-9a-f]{64}$/);
    assert.ok(Math.abs(record.probabilities[0] - 0.9928) < 1e-3);

    requests.length = 0;
    const second = await Embedder.create({ model: 'tiny-clip-good', cacheDir: cacheDir });
    assert.equal(second.hasText, true);
    await second.close();
    assert.deepEqual(requests, [], 'all files verified from the cache; the test image not even fetched');
    const again = JSON.parse(await readFile(join(cacheDir, 'tiny-clip-good', 'self-test.json'), 'utf8'));
    assert.equal(again.passedAt, record.passedAt, 'not run again');

    // A record for other files (or another machine, another ris) does not count: the test runs again.
    await writeFile(
      join(cacheDir, 'tiny-clip-good', 'self-test.json'),
      JSON.stringify({ ...record, key: 'other' }),
    );
    await (await Embedder.create({ model: 'tiny-clip-good', cacheDir })).close();
    const rerun = JSON.parse(await readFile(join(cacheDir, 'tiny-clip-good', 'self-test.json'), 'utf8'));
    assert.equal(rerun.key, record.key);
  });

  it('refuses a model that fails, and records nothing', async () => {
    await register('tiny-clip-bad', { swap: true });
    const cacheDir = join(dir, 'cache-bad');
    await assert.rejects(Embedder.create({ model: 'tiny-clip-bad', cacheDir }), (error: unknown) => {
      assert.ok(error instanceof ModelError);
      assert.equal(error.code, 'INVALID_MODEL');
      assert.match(
        error.message,
        /^tiny-clip-bad failed its self-test on OpenAI's example \(clip-alpha\.png with/,
      );
      assert.match(error.message, /the model's answer differs/);
      return true;
    });
    assert.ok(!existsSync(join(cacheDir, 'tiny-clip-bad', 'self-test.json')));
    // Refused again on the next load: nothing was recorded.
    await assert.rejects(Embedder.create({ model: 'tiny-clip-bad', cacheDir }), /failed its self-test/);
  });
});

const clipFiles = join(sharedData, 'clip');
describe('the self-test of clip-vit-b32 with its real vocabulary and CLIP.png', {
  skip: existsSync(join(clipFiles, 'CLIP.png'))
    ? false
    : 'needs ../shared/data/clip (development checkout only)',
}, () => {
  it('passes its tokenizer and preprocessing parts, and its answer on towers built to give it', async () => {
    // The real spec, the real config and tokenizer files; only the towers are tiny (no weights here).
    const entry = MODEL_REGISTRY['clip-vit-b32']!;
    const real = ClipTokenizer.fromFiles(join(clipFiles, 'vocab.json'), join(clipFiles, 'merges.txt'));
    const folder = join(dir, 'real-vocab');
    await mkdir(folder, { recursive: true });
    const model = await writeTinyClip(folder, {
      vision: tinyClipVision({ weights: 'none', bias: axis(0) }),
      text: tinyClipText(answeringRows((t) => real.encode(t).at(-2)!)),
      tokenizer: {
        vocab: await readFile(join(clipFiles, 'vocab.json'), 'utf8'),
        merges: await readFile(join(clipFiles, 'merges.txt'), 'utf8'),
      },
      config: { ...entry.config, text: { ...entry.config.text!, model: 'text_model.onnx' } },
    });
    const embedder = await Embedder.create({ model });
    try {
      assert.equal(embedder.dimension, CLIP_DIMENSION);
      const report = await runSelfTest(embedder, entry.selfTest!, join(clipFiles, 'CLIP.png'));
      assert.equal(report.tokenizer.passed, true, JSON.stringify(report.tokenizer.found));
      assert.ok(
        report.preprocessing.difference < 0.01,
        `CLIP.png's input tensor is ${report.preprocessing.difference} from Pillow's`,
      );
      assert.equal(report.passed, true);
    } finally {
      await embedder.close();
    }
  });
});
