import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeColourClip, writeColourImages } from './fixtures/tiny-clip.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { ris } from './ris-process.ts';

// Search by words through the real binary, with a tiny CLIP whose vision tower sees colour and whose text
// tower knows "red", "green", "blue" and "dog".
let dir: string;
let home: string;
let images: string;
let clipModel: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-cli-clip-'));
  home = join(dir, 'home');
  images = await writeColourImages(join(dir, 'images'));
  clipModel = await writeColourClip(join(dir, 'clip'));
  const indexed = await ris(home, ['index', images, '--collection', 'colours', '--model', clipModel]);
  assert.equal(indexed.code, 0, indexed.stderr);
});
after(() => rm(dir, { recursive: true, force: true }));

const firstPaths = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => /^\s+\d+\./.test(l))
    .map((l) => l.trim().split(/\s+/).at(-1));

describe('ris search with words', () => {
  it('finds images by a sentence, with no image given', async () => {
    const out = await ris(home, ['search', 'colours', '--text', 'a photo of a red square', '-k', '2']);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^2 most similar in colours \(\d+ ms\):/);
    assert.equal(firstPaths(out.stdout)[0], 'red.png');
    const blue = await ris(home, ['search', 'colours', '--text', 'blue', '--json']);
    assert.equal(JSON.parse(blue.stdout)[0].path, 'blue.png');
  });

  it('weighs and subtracts terms: --text "2:red" --text blue --not green', async () => {
    const out = await ris(home, [
      'search',
      'colours',
      '--text',
      '2:red',
      '--text',
      'blue',
      '--not',
      'green',
      '--json',
    ]);
    assert.equal(out.code, 0, out.stderr);
    const paths = (JSON.parse(out.stdout) as { path: string }[]).map((h) => h.path);
    assert.equal(paths.at(-1), 'green.png', 'green is pushed to the end');
    assert.ok(paths.indexOf('red.png') < paths.indexOf('blue.png'), `red weighs double: ${paths}`);
  });

  it('mixes an image with words', async () => {
    const alone = await ris(home, ['search', 'colours', join(images, 'blue.png'), '--json']);
    const mixed = await ris(home, [
      'search',
      'colours',
      join(images, 'blue.png'),
      '--text',
      '3:red',
      '--json',
    ]);
    assert.equal(mixed.code, 0, mixed.stderr);
    assert.equal(JSON.parse(alone.stdout)[0].path, 'blue.png');
    assert.equal(JSON.parse(mixed.stdout)[0].path, 'red.png', 'three times red outweighs the blue picture');
  });

  it('refuses, in one line with exit 2: no query, only --not, --crop without an image', async () => {
    for (const [args, message] of [
      [['search', 'colours'], /^ris: Give an image \(a file or an http\(s\) URL\), --text "words", or both/],
      [
        ['search', 'colours', '--not', 'red'],
        /^ris: --not only takes away from a query: give an image or --text "words" too/,
      ],
      [['search', 'colours', '--text', 'red', '--crop', '0,0,5,5'], /^ris: --crop needs an image to crop/],
      [
        ['search', 'colours', '--text', 'red', '--text', 'red', '--not', 'red', '--not', 'red'],
        /cancel each other out/,
      ],
    ] as const) {
      const out = await ris(home, [...args]);
      assert.equal(out.code, 2, `${args.join(' ')}: ${out.stderr}`);
      assert.equal(out.stderr.trim().split('\n').length, 1, out.stderr);
      assert.match(out.stderr, message);
    }
  });

  it('says in one line that a collection without a text tower cannot be searched by words', async () => {
    const model = await writeTinyModel(
      dir,
      'image-only',
      'float',
      tinyConfig({ tensor: 'features', pooling: 'avg' }),
    );
    const indexed = await ris(home, ['index', images, '--collection', 'plain', '--model', model]);
    assert.equal(indexed.code, 0, indexed.stderr);
    const out = await ris(home, ['search', 'plain', '--text', 'a dog']);
    assert.equal(out.code, 2);
    assert.equal(out.stderr.trim().split('\n').length, 1, out.stderr);
    assert.match(
      out.stderr,
      /^ris: Collection "plain" was indexed with .*image-only\.onnx, which sees images only: search it by image, or index the images again with --model clip-vit-b32/,
    );
  });

  it('without the model files and no way to fetch them: one line naming them and the folder, exit 2, at once', async () => {
    const cache = join(dir, 'empty-cache');
    await mkdir(cache);
    const start = performance.now();
    const out = await ris(home, ['index', images, '--collection', 'offline', '--model', 'clip-vit-b32'], {
      XDG_CACHE_HOME: cache,
    });
    assert.equal(out.code, 2, out.stderr);
    assert.ok(performance.now() - start < 20_000);
    const lines = out.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('ris:'));
    assert.equal(lines.length, 1, out.stderr);
    assert.match(
      lines[0]!,
      new RegExp(
        `^ris: Cannot get the files of clip-vit-b32 \\(127\\.0\\.0\\.1:9 uses a port that fetch refuses \\(one kept for another protocol\\); serve it on another port\\): put vision_model\\.onnx, text_model_quantized\\.onnx, vocab\\.json, merges\\.txt, CLIP\\.png \\(from .*\\) in ${join(cache, 'ris', 'models', 'clip-vit-b32').replaceAll('.', '\\.')}, or run again with network access$`,
      ),
    );
  });
});

it('the search help shows words and weights', async () => {
  const out = await ris(join(dir ?? tmpdir(), 'h'), ['search', '--help']);
  assert.match(out.stdout, /search <collection> \[image\]/);
  assert.match(out.stdout, /--text <words>/);
  assert.match(out.stdout, /ris search photos pool\.jpg --text "2:golden retriever" --not people/);
  await writeFile(join(dir, 'unused'), '');
});
