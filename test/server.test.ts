import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Hono } from 'hono';
import sharp from 'sharp';
import { indexCollection } from '../src/collection/build.ts';
import type { ImageCollection } from '../src/collection/store.ts';
import { createApp } from '../src/server/app.ts';
import { refusedAddress } from '../src/server/fetch-image.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback } from './helpers.ts';

let dir: string;
let collection: ImageCollection;
let app: Hono;
let strict: Hono;
let server: Server;
let base: string;
let sample: Buffer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-server-'));
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  await writeClassFolders(join(dir, 'images'), 3, 5);
  ({ collection } = await indexCollection('pics', join(dir, 'images'), { model, home: join(dir, 'home') }));
  sample = await readFile(join(dir, 'images', 'class1', 'img002.jpg'));
  app = createApp({ collections: [collection], allowLoopbackUrls: true, maxUploadBytes: 200_000 });
  strict = createApp({ collections: [collection] });
  server = createServer((req, res) => {
    if (req.url === '/cat.jpg') return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(sample);
    if (req.url === '/redirect') return res.writeHead(302, { location: '/cat.jpg' }).end();
    if (req.url === '/to-metadata')
      return res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
    if (req.url === '/loop') return res.writeHead(302, { location: '/loop' }).end();
    if (req.url === '/page.html')
      return res.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>');
    res.writeHead(404).end();
  });
  base = await listenOnLoopback(server);
});
after(async () => {
  server.close();
  await collection.close();
  await rm(dir, { recursive: true, force: true });
});

const upload = (bytes: Uint8Array, fields: Record<string, string> = {}, name = 'image') => {
  const form = new FormData();
  form.append(name, new Blob([new Uint8Array(bytes)]), 'query.jpg');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return { method: 'POST', body: form };
};
const json = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});
async function expectError(response: Response, status: number, code: string, message?: RegExp) {
  assert.equal(response.status, status);
  const body = (await response.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, code);
  if (message) assert.match(body.error.message, message);
}

describe('HTTP API', () => {
  it('reports health and lists collections with their labels', async () => {
    assert.deepEqual(await (await app.request('/api/health')).json(), {
      status: 'ok',
      collections: 1,
      staleHitsDropped: 0,
    });
    const list = (await (await app.request('/api/collections')).json()) as {
      name: string;
      state: string;
      size: number;
      labels: { label: string }[];
    }[];
    assert.equal(list[0]!.name, 'pics');
    assert.equal(list[0]!.state, 'ready');
    assert.equal(list[0]!.size, 15);
    assert.equal(list[0]!.labels.length, 3);
  });

  it('pages seeded random examples without repeats', async () => {
    const page = async (n: number) =>
      (await (await app.request(`/api/collections/pics/examples?count=6&page=${n}&seed=7`)).json()) as {
        images: { id: number }[];
        hasMore: boolean;
      };
    const pages = [await page(0), await page(1), await page(2)];
    const ids = pages.flatMap((p) => p.images.map((i) => i.id));
    assert.equal(ids.length, 15);
    assert.equal(new Set(ids).size, 15);
    assert.equal(pages[2]!.hasMore, false);
    assert.deepEqual((await page(0)).images, pages[0]!.images, 'same seed, same page');
  });

  it('serves images and cached thumbnails by id only', async () => {
    const full = await app.request('/api/collections/pics/images/3');
    assert.equal(full.headers.get('content-type'), 'image/jpeg');
    assert.equal(full.headers.get('x-content-type-options'), 'nosniff');
    const thumb = await app.request('/api/collections/pics/thumbnails/3');
    assert.equal(thumb.headers.get('content-type'), 'image/webp');
    const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
    assert.equal(meta.format, 'webp');
    await expectError(await app.request('/api/collections/pics/images/999'), 404, 'NOT_FOUND');
    await expectError(
      await app.request('/api/collections/pics/images/..%2F..%2Fmanifest.json'),
      404,
      'NOT_FOUND',
    );
    await expectError(await app.request('/api/collections/pics/images/../../etc/passwd'), 404, 'NOT_FOUND');
    await expectError(await app.request('/api/collections/nope/images/1'), 404, 'COLLECTION_NOT_FOUND');
  });

  it('searches by upload, by id and by URL, with k and a crop', async () => {
    const byUpload = (await (
      await app.request('/api/collections/pics/search', upload(sample, { k: '3' }))
    ).json()) as {
      results: { rank: number; labels: string[]; similarity: number; thumbnailUrl: string }[];
      timeMs: number;
    };
    assert.equal(byUpload.results.length, 3);
    assert.deepEqual(byUpload.results[0]!.labels, ['class1']);
    assert.ok(byUpload.results[0]!.similarity > 0.999);
    assert.match(
      byUpload.results[0]!.thumbnailUrl,
      /^\/api\/collections\/pics\/thumbnails\/\d+\?v=[0-9a-f]{16}$/,
    );
    const id = (await (await app.request('/api/collections/pics/search', json({ id: 4, k: 1 }))).json()) as {
      results: { id: number }[];
    };
    assert.equal(id.results[0]!.id, 4);
    const url = (await (
      await app.request('/api/collections/pics/search', json({ url: `${base}/redirect`, k: 2 }))
    ).json()) as { results: { similarity: number }[] };
    assert.ok(url.results[0]!.similarity > 0.999);
    const cropped = (await (
      await app.request(
        '/api/collections/pics/search',
        upload(sample, { k: '1', crop: JSON.stringify({ left: 0, top: 0, width: 20, height: 20 }) }),
      )
    ).json()) as {
      results: { similarity: number }[];
    };
    assert.ok(cropped.results[0]!.similarity < 0.999, 'a crop searches for something else');
  });

  it('refuses bad uploads by content: oversized, not an image, truncated JPEG, SVG', async () => {
    await expectError(
      await app.request('/api/collections/pics/search', upload(new Uint8Array(300_000))),
      413,
      'UPLOAD_TOO_LARGE',
      /larger than the limit of 200 KB; send a smaller one/,
    );
    await expectError(
      await app.request('/api/collections/pics/search', upload(Buffer.from('hello'))),
      415,
      'UNSUPPORTED_IMAGE',
    );
    await expectError(
      await app.request('/api/collections/pics/search', upload(sample.subarray(0, sample.length / 2))),
      400,
      'CORRUPT_IMAGE',
    );
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>');
    await expectError(
      await app.request('/api/collections/pics/search', upload(svg)),
      415,
      'UNSUPPORTED_IMAGE',
      /SVG/,
    );
    await expectError(
      await app.request('/api/collections/pics/search', upload(sample, {}, 'file')),
      400,
      'INVALID_ARGUMENT',
      /field named "image"/,
    );
    await expectError(
      await app.request('/api/collections/pics/search', json({ k: 99, id: 1 })),
      400,
      'INVALID_ARGUMENT',
      /Invalid k/,
    );
    await expectError(
      await app.request('/api/collections/pics/search', json({ efSearch: 0, id: 1 })),
      400,
      'INVALID_ARGUMENT',
      /Invalid efSearch/,
    );
    const wide = (await (
      await app.request('/api/collections/pics/search', json({ efSearch: 200, nprobes: 4, k: 2, id: 1 }))
    ).json()) as { results: { id: number }[] };
    assert.equal(wide.results[0]!.id, 1, 'efSearch and nprobes are taken by any index');
    await expectError(
      await app.request(
        '/api/collections/pics/search',
        upload(sample, { crop: JSON.stringify({ left: 50, top: 0, width: 50, height: 10 }) }),
      ),
      400,
      'CROP_OUT_OF_BOUNDS',
    );
  });

  it('refuses URLs to loopback, private, link-local and metadata addresses, before and after redirects', async () => {
    const search = (url: string) => strict.request('/api/collections/pics/search', json({ url }));
    await expectError(await search(`${base}/cat.jpg`), 403, 'URL_NOT_ALLOWED', /loopback/);
    await expectError(await search('http://10.1.2.3/x.jpg'), 403, 'URL_NOT_ALLOWED', /private/);
    await expectError(await search('http://169.254.169.254/latest/meta-data/'), 403, 'URL_NOT_ALLOWED');
    await expectError(await search('http://[::1]/x.jpg'), 403, 'URL_NOT_ALLOWED');
    await expectError(
      await search('http://localhost:8080/x.jpg'),
      403,
      'URL_NOT_ALLOWED',
      /^That URL is not allowed: localhost resolves to 127\.0\.0\.1, a loopback address \(this machine\); use a public image URL$/,
    );
    await expectError(await search('file:///etc/passwd'), 403, 'URL_NOT_ALLOWED', /Only http and https/);
    // Through the test-only loopback allowance, a redirect to the metadata address is still refused.
    await expectError(
      await app.request('/api/collections/pics/search', json({ url: `${base}/to-metadata` })),
      403,
      'URL_NOT_ALLOWED',
    );
    await expectError(
      await app.request('/api/collections/pics/search', json({ url: `${base}/loop` })),
      422,
      'URL_FETCH_FAILED',
      /redirects more than 3 times/,
    );
    await expectError(
      await app.request('/api/collections/pics/search', json({ url: `${base}/page.html` })),
      422,
      'URL_FETCH_FAILED',
      /not an image/,
    );
    // Every row of the registries: test/fetch-image.test.ts.
    assert.equal(
      refusedAddress('::ffff:127.0.0.1'),
      'an IPv4-mapped form of 127.0.0.1, a loopback address (this machine)',
    );
    assert.equal(
      refusedAddress('fd00:ec2::254'),
      'a private, link-local or reserved address (Unique-Local, fc00::/7)',
    );
    assert.equal(refusedAddress('93.184.216.34'), undefined);
    for (const reserved of ['192.0.2.123', '198.51.100.7', '203.0.113.9', '2001:db8::1', '2002:a00:1::1'])
      assert.match(refusedAddress(reserved)!, /^a private, link-local or reserved address \(/, reserved);
    // NAT64 (what an IPv6-only network's DNS64 answers): the IPv4 address inside is what counts.
    assert.equal(
      refusedAddress('64:ff9b::a00:1'),
      'a NAT64 form of 10.0.0.1, a private, link-local or reserved address (Private-Use, 10.0.0.0/8)',
    );
    assert.equal(refusedAddress('64:ff9b::10.0.0.1'), refusedAddress('64:ff9b::a00:1'));
    assert.equal(
      refusedAddress('64:ff9b::7f00:1'),
      'a NAT64 form of 127.0.0.1, a loopback address (this machine)',
    );
    assert.equal(refusedAddress('64:ff9b::5db8:d822'), undefined);
    // This machine's own addresses, whatever network they are on.
    const own = Object.values(networkInterfaces())
      .flatMap((list) => list ?? [])
      .filter((entry) => !entry.internal);
    // (Under `unshare -n` there is only loopback, and nothing more to check here.)
    for (const { address } of own)
      assert.equal(refusedAddress(address.replace(/%.*$/, '')), 'an address of this machine', address);
  });

  it('answers 503 with Retry-After when the queue is full, and keeps serving', async () => {
    const tiny = createApp({ collections: [collection], maxQueue: 1 });
    const responses = await Promise.all(
      Array.from({ length: 6 }, () => tiny.request('/api/collections/pics/search', upload(sample))),
    );
    const statuses = responses.map((r) => r.status);
    assert.ok(statuses.includes(503), `statuses ${statuses}`);
    const busy = responses.find((r) => r.status === 503)!;
    assert.equal(busy.headers.get('retry-after'), '1');
    assert.equal((await tiny.request('/api/collections/pics/search', upload(sample))).status, 200);
  });
});

describe('web page', () => {
  it('serves the built page with a strict content policy, and immutable hashed assets', async () => {
    const webRoot = join(dir, 'web');
    await mkdir(join(webRoot, 'assets'), { recursive: true });
    await writeFile(
      join(webRoot, 'index.html'),
      '<!doctype html><script type="module" src="./assets/app-1a2b.js"></script>',
    );
    await writeFile(join(webRoot, 'assets', 'app-1a2b.js'), 'console.log(1)');
    const web = createApp({ collections: [collection], webRoot });

    const page = await web.request('/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /text\/html/);
    const policy = page.headers.get('content-security-policy')!;
    assert.match(policy, /default-src 'self'/);
    assert.match(policy, /frame-ancestors 'none'/);
    assert.match(page.headers.get('permissions-policy')!, /camera=\(self\)/);

    const script = await web.request('/assets/app-1a2b.js');
    assert.equal(script.status, 200);
    assert.match(script.headers.get('cache-control')!, /immutable/);

    // No file outside the page's folder, however the path is written; API paths keep their JSON 404.
    for (const path of [
      '/../server.test.ts',
      '/assets/..%2F..%2Fpackage.json',
      '/%2e%2e/%2e%2e/etc/passwd',
    ]) {
      const response = await web.request(path);
      assert.equal(response.status, 404, path);
    }
    await expectError(await web.request('/api/nothing-here'), 404, 'NOT_FOUND', /No route GET/);
  });

  it('says how to build the page when it is not built', async () => {
    const unbuilt = createApp({ collections: [collection], webRoot: join(dir, 'no-such-dir') });
    const response = await unbuilt.request('/');
    assert.equal(response.status, 503);
    assert.match(await response.text(), /npm run build:web/);
    assert.equal((await unbuilt.request('/api/health')).status, 200);
  });
});
