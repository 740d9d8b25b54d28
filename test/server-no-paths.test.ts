// No answer of the server names a folder of its machine: a broken collection, a gone image, the model
// of a collection, an experiment started from the page and its report files, and the errors of every
// route name the collection, the image and the model, not where they are on the disk.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { indexCollection } from '../src/collection/build.ts';
import { listen, type RunningServer } from '../src/server/serve.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';

let dir: string;
let server: RunningServer;
let sample: Buffer;
const TOKEN = 'write-token-of-the-test';

before(async () => {
  // A folder name that stands out wherever it shows up.
  dir = await mkdtemp(join(tmpdir(), 'ris-server-disk-'));
  const home = join(dir, 'home');
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  await writeClassFolders(join(dir, 'pics'), 4, 20, 48, 5, 'pic');
  await writeClassFolders(join(dir, 'gone'), 1, 3, 48, 6, 'gone');
  await writeClassFolders(join(dir, 'brk'), 1, 3, 48, 7, 'brk');
  for (const name of ['pics', 'gone', 'brk'])
    await (await indexCollection(name, join(dir, name), { model, home })).collection.close();
  await writeFile(join(home, 'collections', 'brk', 'metadata.db'), 'not a database');
  sample = await readFile(join(dir, 'pics', 'pic1', 'img001.jpg'));
  await rm(join(dir, 'gone', 'gone0', 'img000.jpg'));
  server = await listen({
    port: 0,
    collectionOptions: { home },
    log: () => undefined,
    access: { writeToken: TOKEN },
  });
});
after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Fetches a path of the server; fails if the answer names the test's folder anywhere. */
async function answer(path: string, init?: RequestInit): Promise<{ status: number; text: string }> {
  const response = await fetch(`${server.url}${path}`, init);
  const text = await response.text();
  assert.ok(!text.includes(dir), `${path} names the server's folder: ${text.slice(0, 400)}`);
  assert.ok(!text.includes(tmpdir()), `${path} names the server's temporary folder: ${text.slice(0, 400)}`);
  return { status: response.status, text };
}

const error = (text: string) => (JSON.parse(text) as { error: { code: string; message: string } }).error;

describe('answers name collections, images and models, never the server’s disk', () => {
  it('a broken collection, its model, a gone image, errors', async () => {
    const list = await answer('/api/collections');
    const collections = JSON.parse(list.text) as {
      name: string;
      state: string;
      model?: string;
      reason?: string;
    }[];
    const broken = collections.find((c) => c.name === 'brk')!;
    assert.equal(broken.state, 'broken');
    assert.match(broken.reason!, /^Collection "brk" is broken: metadata\.db is not a SQLite database/);
    assert.equal(collections.find((c) => c.name === 'pics')!.model, 'tiny.onnx');

    const brk = await answer('/api/collections/brk/examples');
    assert.equal(brk.status, 503);
    assert.match(error(brk.text).message, /metadata\.db is not a SQLite database/);

    const gallery = JSON.parse((await answer('/api/collections/gone/gallery?count=10')).text) as {
      images: { id: number; imageUrl: string }[];
    };
    const statuses = [];
    for (const image of gallery.images) {
      const got = await answer(image.imageUrl);
      statuses.push(got.status);
      if (got.status === 404) {
        assert.equal(error(got.text).code, 'IMAGE_NOT_FOUND');
        assert.match(
          error(got.text).message,
          /^The file of image \d+ is gone: img000\.jpg \(collection "gone"\)/,
        );
      }
    }
    assert.deepEqual(statuses.sort(), [200, 200, 404]);

    const form = new FormData();
    form.set('image', new Blob([new Uint8Array(sample)], { type: 'image/jpeg' }), 'q.jpg');
    assert.equal((await answer('/api/collections/pics/search', { method: 'POST', body: form })).status, 200);
    for (const path of [
      '/api/health',
      '/api/collections/pics/examples',
      '/api/collections/pics/explore',
      '/api/collections/nope/examples',
      '/api/collections/pics/images/999999',
    ])
      await answer(path);
  });

  it('a file replaced by a link to /etc/passwd: 409 IMAGE_CHANGED, never its bytes, nothing cached', async () => {
    const gallery = JSON.parse((await answer('/api/collections/gone/gallery?count=10')).text) as {
      images: { id: number; imageUrl: string }[];
    };
    const records = await Promise.all(
      gallery.images.map(async (image) => ({ image, got: await answer(image.imageUrl) })),
    );
    const served = records.find((r) => r.got.status === 200)!;
    const path = (await import('../src/collection/local-store.ts')).localStore(join(dir, 'home'));
    const collection = await path.open('gone');
    const record = (await collection.get(served.image.id))!;
    await collection.close();
    await rm(record.absolutePath);
    await symlink('/etc/passwd', record.absolutePath);
    const response = await fetch(`${server.url}${served.image.imageUrl}`);
    const text = await response.text();
    assert.equal(response.status, 409);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.equal(response.headers.get('etag'), null);
    assert.equal(error(text).code, 'IMAGE_CHANGED');
    assert.ok(!text.includes('root:'), text);
    assert.match(
      error(text).message,
      /^The file of image \d+ changed since it was indexed: img00\d\.jpg \(collection "gone": /,
    );
  });

  it('an experiment started from the page: its listing and its report files', {
    timeout: 120_000,
  }, async () => {
    const started = await answer('/api/collections/pics/experiments', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: '{}',
    });
    assert.equal(started.status, 202, started.text);
    type Listing = {
      running: unknown;
      reports: {
        status: string;
        command: string;
        resultsUrl: string;
        reportUrl: string;
        plots: { url: string }[];
      }[];
    };
    let listing = JSON.parse((await answer('/api/collections/pics/experiments')).text) as Listing;
    for (let i = 0; i < 600 && (listing.running || listing.reports[0]?.status !== 'done'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      listing = JSON.parse((await answer('/api/collections/pics/experiments')).text) as Listing;
    }
    const report = listing.reports[0]!;
    assert.equal(report.status, 'done');
    assert.equal(report.command, 'ris experiment pics');
    for (const url of [report.resultsUrl, report.reportUrl, ...report.plots.map((p) => p.url)])
      assert.equal((await answer(url)).status, 200, url);
  });
});
