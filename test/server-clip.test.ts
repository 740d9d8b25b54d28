import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Hono } from 'hono';
import { indexCollection } from '../src/collection/build.ts';
import type { ImageCollection } from '../src/collection/store.ts';
import { MODEL_REGISTRY } from '../src/index.ts';
import { createApp } from '../src/server/app.ts';
import { writeColourClip, writeColourImages } from './fixtures/tiny-clip.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback } from './helpers.ts';

// The API's words: { text }, { query: [...] }, and text fields beside an upload, on a tiny CLIP collection.
let dir: string;
let clip: ImageCollection;
let plain: ImageCollection;
let app: Hono;
let server: Server;
let base: string;
let blue: Buffer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-server-clip-'));
  const images = await writeColourImages(join(dir, 'images'));
  blue = await readFile(join(images, 'blue.png'));
  const model = await writeColourClip(join(dir, 'clip'));
  const home = join(dir, 'home');
  ({ collection: clip } = await indexCollection('colours', images, { model, home }));
  const imageOnly = await writeTinyModel(
    dir,
    'plain',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'avg' }),
  );
  ({ collection: plain } = await indexCollection('plain', images, { model: imageOnly, home }));
  app = createApp({ collections: [clip, plain], allowLoopbackUrls: true, maxUploadBytes: 200_000 });
  server = createServer((req, res) => {
    if (req.url === '/blue.png') return res.writeHead(200, { 'content-type': 'image/png' }).end(blue);
    res.writeHead(404).end();
  });
  base = await listenOnLoopback(server);
});
after(async () => {
  server.close();
  await clip.close();
  await plain.close();
  await rm(dir, { recursive: true, force: true });
});

const json = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});
const search = async (name: string, init: RequestInit) => {
  const response = await app.request(`/api/collections/${name}/search`, init);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};
const paths = async (body: Record<string, unknown>) => {
  const results = body.results as { id: number }[];
  return Promise.all(results.map(async (r) => (await clip.get(r.id))!.path));
};

describe('search by words over HTTP', () => {
  it('lists which collections can be searched by words', async () => {
    const list = (await (await app.request('/api/collections')).json()) as {
      name: string;
      searchByText: boolean;
      textSimilarity?: { min: number; max: number; step: number };
    }[];
    assert.deepEqual(
      list.map((c) => [c.name, c.searchByText, c.textSimilarity]),
      [
        ['colours', true, { min: 0, max: 0.5, step: 0.005 }],
        ['plain', false, undefined],
      ],
    );
    assert.deepEqual(MODEL_REGISTRY['clip-vit-b32']!.textSimilarity, { min: 0.1, max: 0.4, step: 0.005 });
  });

  it('answers { text }', async () => {
    const { status, body } = await search('colours', json({ text: 'a red square', k: 2 }));
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal((await paths(body))[0], 'red.png');
    assert.deepEqual(body.truncatedTexts, []);
  });

  it('answers { query } with weights, negative ones, a stored image by id and an image by URL', async () => {
    const all = await search(
      'colours',
      json({ query: [{ text: 'red' }, { text: 'green', weight: -2 }], k: 4 }),
    );
    assert.equal(all.status, 200, JSON.stringify(all.body));
    const order = await paths(all.body);
    assert.equal(order[0], 'red.png');
    assert.equal(order.at(-1), 'green.png');
    const stored = (await clip.storedVectors()).paths.indexOf('blue.png');
    const ids = (await clip.storedVectors()).ids;
    const byId = await search(
      'colours',
      json({ query: [{ image: ids[stored]! }, { text: 'red', weight: 0.1 }] }),
    );
    assert.equal((await paths(byId.body))[0], 'blue.png');
    const byUrl = await search(
      'colours',
      json({
        query: [
          { image: `${base}/blue.png`, weight: 1 },
          { text: 'red', weight: 3 },
        ],
      }),
    );
    assert.equal(byUrl.status, 200, JSON.stringify(byUrl.body));
    assert.equal((await paths(byUrl.body))[0], 'red.png');
  });

  it('takes text and weight fields beside an upload', async () => {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(blue)]), 'blue.png');
    form.append('text', 'red');
    form.append('weight', '3');
    form.append('k', '4');
    const { status, body } = await search('colours', { method: 'POST', body: form });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal((await paths(body))[0], 'red.png');
    const alone = new FormData();
    alone.append('image', new Blob([new Uint8Array(blue)]), 'blue.png');
    assert.equal(
      (await paths((await search('colours', { method: 'POST', body: alone })).body))[0],
      'blue.png',
    );
  });

  it('says which texts were cut to the 77 tokens the model reads', async () => {
    const long = Array.from({ length: 90 }, () => 'red').join(' ');
    const { body } = await search('colours', json({ query: [{ text: long }, { text: 'blue' }] }));
    assert.deepEqual(body.truncatedTexts, [long]);
  });

  it('refuses words on a collection whose model sees images only, and malformed queries', async () => {
    const expect = async (name: string, init: RequestInit, status: number, code: string, message: RegExp) => {
      const { status: got, body } = await search(name, init);
      assert.equal(got, status, JSON.stringify(body));
      const error = body.error as { code: string; message: string };
      assert.equal(error.code, code);
      assert.match(error.message, message);
    };
    await expect(
      'plain',
      json({ text: 'a dog' }),
      400,
      'INVALID_ARGUMENT',
      /Collection "plain" was indexed with .*, which sees images only/,
    );
    await expect('colours', json({ text: '' }), 400, 'INVALID_ARGUMENT', /text/);
    await expect('colours', json({ text: 'x'.repeat(1001) }), 400, 'INVALID_ARGUMENT', /1000/);
    await expect('colours', json({ query: [] }), 400, 'INVALID_ARGUMENT', /query/);
    await expect(
      'colours',
      json({ query: [{ text: 'red', weight: 0 }] }),
      400,
      'INVALID_ARGUMENT',
      /non-zero/,
    );
    await expect('colours', json({ query: [{ text: 'red', image: 1 }] }), 400, 'INVALID_ARGUMENT', /query/);
    await expect(
      'colours',
      json({ query: Array.from({ length: 9 }, () => ({ text: 'red' })) }),
      400,
      'INVALID_ARGUMENT',
      /query/,
    );
    await expect(
      'colours',
      json({ query: Array.from({ length: 5 }, () => ({ image: 1 })) }),
      400,
      'INVALID_ARGUMENT',
      /at most 4 images/,
    );
    await expect('colours', json({ query: [{ image: 999 }] }), 404, 'NOT_FOUND', /No image 999 in colours/);
    await expect(
      'colours',
      json({ query: [{ text: 'red' }, { text: 'red', weight: -1 }] }),
      400,
      'INVALID_ARGUMENT',
      /cancel/,
    );
    await expect(
      'colours',
      json({ query: [{ image: 'http://169.254.169.254/latest/meta-data/' }] }),
      403,
      'URL_NOT_ALLOWED',
      /./,
    );
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(blue)]), 'blue.png');
    form.append('weight', '2');
    await expect(
      'colours',
      { method: 'POST', body: form },
      400,
      'INVALID_ARGUMENT',
      /no more "weight" fields than "text" fields/,
    );
  });
});
