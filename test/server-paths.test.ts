import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseDisposition } from 'content-disposition';
import type { Hono } from 'hono';
import sharp from 'sharp';
import { indexCollection } from '../src/collection/build.ts';
import type { ImageCollection } from '../src/collection/store.ts';
import { createApp } from '../src/server/app.ts';
import type { HostResolver } from '../src/server/fetch-image.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback } from './helpers.ts';
import { guardConnections } from './network-guard.ts';

/** File names users have: accents, CJK with a space, emoji, quotes, a newline. */
const NAMES = ['café.jpg', '写真 1.jpg', '🐱 cat.jpg', 'say "hi".jpg', 'two\nlines.jpg'];

let dir: string;
let collection: ImageCollection;
let app: Hono;
let server: Server;
let base: string;
let port: number;
let sample: Buffer;
let guard: ReturnType<typeof guardConnections>;
const ids = new Map<string, number>();

const resolver: HostResolver = async (hostname) => {
  if (hostname === 'images.test') return [{ address: '127.0.0.1', family: 4 }];
  if (hostname === 'intranet.test') return [{ address: '10.20.30.40', family: 4 }];
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
};

before(async () => {
  guard = guardConnections();
  dir = await mkdtemp(join(tmpdir(), 'ris-server-paths-'));
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  const images = join(dir, 'photos');
  const files = await writeClassFolders(join(dir, 'generated'), 1, NAMES.length);
  await mkdir(join(images, 'Été'), { recursive: true });
  for (const [i, name] of NAMES.entries()) await copyFile(files[i]!, join(images, 'Été', name));
  ({ collection } = await indexCollection('pics', images, { model, home: join(dir, 'home') }));
  for (const hit of await collection.sample(1, 0, 100).then((p) => p.images)) ids.set(hit.path, hit.id);
  sample = await readFile(files[0]!);
  app = createApp({ collections: [collection], allowLoopbackUrls: true, resolveHost: resolver });
  server = createServer((req, res) => {
    if (req.url === '/cat.jpg') return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(sample);
    if (req.url === '/to-intranet')
      return res.writeHead(302, { location: 'http://intranet.test/secret.jpg' }).end();
    res.writeHead(404).end();
  });
  base = await listenOnLoopback(server);
  port = Number(new URL(base).port);
});
after(async () => {
  server.close();
  guard.restore();
  await collection.close();
  await rm(dir, { recursive: true, force: true });
});

const json = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

async function expectError(response: Response, status: number, code: string, message: RegExp) {
  const body = (await response.json()) as { error: { code: string; message: string } };
  assert.equal(response.status, status, body.error.message);
  assert.equal(body.error.code, code);
  assert.match(body.error.message, message);
}

describe('files as users name them', () => {
  it('serves images with accented, CJK, emoji, quoted and multi-line names', async () => {
    for (const name of NAMES) {
      const id = ids.get(`Été/${name}`);
      assert.ok(id !== undefined, `${name} was indexed`);
      const response = await app.request(`/api/collections/pics/images/${id}`);
      assert.equal(response.status, 200, `${JSON.stringify(name)}: ${await response.clone().text()}`);
      assert.equal(response.headers.get('content-type'), 'image/jpeg');
      const disposition = parseDisposition(response.headers.get('content-disposition')!);
      assert.equal(disposition.type, 'inline');
      assert.equal(disposition.parameters.filename, name, 'the browser saves it under its own name');
      assert.deepEqual(
        Buffer.from(await response.arrayBuffer()),
        await readFile(join(collection.manifest.root, 'Été', name)),
      );
    }
  });

  it('labels by the accented folder, and finds an image by its odd name', async () => {
    const hits = await collection.search(join(collection.manifest.root, 'Été', '写真 1.jpg'), { k: 1 });
    assert.equal(hits[0]!.path, 'Été/写真 1.jpg');
    assert.deepEqual(hits[0]!.labels, ['Été']);
  });

  it('writes thumbnails whole even when many requests ask at once, and says when the file is gone', async () => {
    const id = ids.get('Été/café.jpg')!;
    const responses = await Promise.all(
      Array.from({ length: 8 }, () => app.request(`/api/collections/pics/thumbnails/${id}`)),
    );
    const bodies = await Promise.all(responses.map(async (r) => Buffer.from(await r.arrayBuffer())));
    for (const body of bodies) {
      assert.equal((await sharp(body).metadata()).format, 'webp');
      assert.deepEqual(body, bodies[0]);
    }
    const files = await readdir(join(collection.dir, 'thumbnails'));
    assert.deepEqual(
      files.filter((f) => f.endsWith('.tmp')),
      [],
      'no temp file left behind',
    );

    const gone = ids.get('Été/🐱 cat.jpg')!;
    const file = join(collection.manifest.root, 'Été', '🐱 cat.jpg');
    await rename(file, `${file}.moved`);
    try {
      await expectError(
        await app.request(`/api/collections/pics/thumbnails/${gone}`),
        404,
        'IMAGE_NOT_FOUND',
        /The file of image \d+ is gone: .*🐱 cat\.jpg/,
      );
      await expectError(
        await app.request(`/api/collections/pics/images/${gone}`),
        404,
        'IMAGE_NOT_FOUND',
        /is gone/,
      );
    } finally {
      await rename(`${file}.moved`, file);
    }
  });

  it('caches images by their content, never by id alone', async () => {
    const id = ids.get('Été/café.jpg')!;
    const record = (await collection.get(id))!;
    const plain = await app.request(`/api/collections/pics/images/${id}`);
    assert.equal(plain.headers.get('cache-control'), 'no-cache', 'an id alone is revalidated');
    const etag = plain.headers.get('etag')!;
    assert.ok(etag.includes(record.sha256.slice(0, 32)), 'the ETag is the content hash');
    const again = await app.request(`/api/collections/pics/images/${id}`, {
      headers: { 'if-none-match': etag },
    });
    assert.equal(again.status, 304);
    const versioned = await app.request(`/api/collections/pics/images/${id}?v=${record.sha256.slice(0, 16)}`);
    assert.equal(versioned.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const stale = await app.request(`/api/collections/pics/thumbnails/${id}?v=0000000000000000`);
    assert.equal(
      stale.headers.get('cache-control'),
      'no-cache',
      'a URL naming another content is not trusted',
    );
  });
});

describe('request bodies that are wrong say how', () => {
  it('names invalid JSON, and takes or refuses a multipart crop by name', async () => {
    await expectError(
      await app.request('/api/collections/pics/search', json('{bad')),
      400,
      'INVALID_ARGUMENT',
      /^The request body is not valid JSON \(.*\); send \{"url": "…"\} or \{"id": …\}/,
    );
    const form = (crop: string) => {
      const body = new FormData();
      body.append('image', new Blob([new Uint8Array(sample)]), 'q.jpg');
      body.append('crop', crop);
      return { method: 'POST', body };
    };
    const cropped = await app.request('/api/collections/pics/search', form('10,10,40,30'));
    assert.equal(cropped.status, 200, await cropped.clone().text());
    await expectError(
      await app.request('/api/collections/pics/search', form('a bit on the left')),
      400,
      'INVALID_ARGUMENT',
      /^Invalid crop: expected \{"left","top","width","height"\} in JSON or x,y,width,height in pixels/,
    );
  });
});

describe('image URLs with host names, through the API', () => {
  it('searches http://localhost with the system resolver', async () => {
    guard.reset();
    const system = createApp({ collections: [collection], allowLoopbackUrls: true });
    const response = await system.request(
      '/api/collections/pics/search',
      json({ url: `http://localhost:${port}/cat.jpg` }),
    );
    assert.equal(response.status, 200, await response.clone().text());
    const body = (await response.json()) as { results: { similarity: number }[] };
    assert.ok(body.results[0]!.similarity > 0.999);
    assert.ok(guard.attempts.every((a) => a.host === '127.0.0.1'));
  });

  it('refuses a redirect from a host name to a private address, connecting only to this machine', async () => {
    guard.reset();
    await expectError(
      await app.request(
        '/api/collections/pics/search',
        json({ url: `http://images.test:${port}/to-intranet` }),
      ),
      403,
      'URL_NOT_ALLOWED',
      /intranet\.test resolves to 10\.20\.30\.40, a private/,
    );
    assert.deepEqual(
      guard.attempts.map((a) => a.host),
      ['127.0.0.1'],
      'the first hop only; the private address was never contacted',
    );
  });
});
