// What an independent probe of the running server found, each as the request that found it: bodies and
// connections that could pile up in memory, answers that named too much, inputs read too loosely. A real
// `listen` server over loopback, with small caps so each limit is reached quickly.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { type ClientRequest, createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { indexCollection } from '../src/collection/build.ts';
import { EVENT_STREAMS, QUERY_BODIES_AT_ONCE } from '../src/server/load-guards.ts';
import { listen, type RunningServer } from '../src/server/serve.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback } from './helpers.ts';

const TOKEN = 'probe-test-token-0123456789';
const READ_TOKEN = 'probe-read-token-0123456789';
/** The largest image these servers take, sent or fetched. */
const MAX_IMAGE = 60_000;
let dir: string;
let home: string;
let model: string;
let server: RunningServer;
let files: Server;
/** The image server by host name, as users give addresses (`localhost`, resolved by ris itself). */
let filesHost: string;
/** Paths the image server was asked for, in order. */
const asked: string[] = [];
let small: Buffer;
let large: Buffer;
const auth = { authorization: `Bearer ${TOKEN}` };

async function picture(seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(40 * 40 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * seed * 31 + seed * 97) % 251;
  return sharp(raw, { raw: { width: 40, height: 40, channels: 3 } })
    .jpeg()
    .toBuffer();
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-probes-'));
  home = join(dir, 'home');
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  await writeClassFolders(join(dir, 'pics'), 2, 3);
  const { collection } = await indexCollection('pics', join(dir, 'pics'), { model, home });
  await collection.close();
  small = await picture(3);
  // A JPEG that decodes (what follows its end is ignored) but is larger than the servers take.
  large = Buffer.concat([await picture(4), Buffer.alloc(MAX_IMAGE * 2)]);
  files = createServer((req, res) => {
    asked.push(req.url ?? '');
    if (req.url === '/small.jpg') return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(small);
    if (req.url === '/large.jpg') return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(large);
    if (req.url?.startsWith('/slow/')) {
      const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'image/jpeg' }).end(small), 1_500);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    res.writeHead(404).end();
  });
  filesHost = (await listenOnLoopback(files)).replace('127.0.0.1', 'localhost');
  server = await listen({
    port: 0,
    collectionOptions: { home },
    access: { writeToken: TOKEN },
    allowLoopbackUrls: true,
    maxUploadBytes: MAX_IMAGE,
    log: () => undefined,
  });
});
after(async () => {
  await server.close();
  files.close();
  await rm(dir, { recursive: true, force: true });
});

const url = (path: string) => `${server.url}${path}`;
const errorOf = async (response: Response) =>
  ((await response.json()) as { error: { code: string; message: string } }).error;

/** A POST whose body is declared but sent only in part, held open until `end` or `destroy`. */
function heldPost(path: string, length: number, headers: Record<string, string> = {}): ClientRequest {
  const { port } = new URL(server.url);
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path,
    agent: false,
    headers: { 'content-type': 'multipart/form-data; boundary=xyz', 'content-length': length, ...headers },
  });
  req.on('error', () => undefined);
  req.write('--xyz\r\n');
  return req;
}

describe('probed as an attacker would', () => {
  it('holds only so many query images at once: past that, 503 BUSY before the body is read', async () => {
    const held = Array.from({ length: QUERY_BODIES_AT_ONCE }, () =>
      heldPost('/api/collections/pics/search', MAX_IMAGE),
    );
    try {
      // Once every held request has reached the server (however long that takes here), a search is refused.
      let refused: Response;
      const until = Date.now() + 15_000;
      for (;;) {
        const body = new FormData();
        body.append('image', new Blob([new Uint8Array(small)]), 'q.jpg');
        refused = await fetch(url('/api/collections/pics/search'), { method: 'POST', body });
        if (refused.status !== 200) break;
        assert.ok(Date.now() < until, 'the held requests never filled the budget');
        await sleep(100);
      }
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get('retry-after'), '1');
      assert.equal((await errorOf(refused)).code, 'BUSY');
    } finally {
      for (const req of held) req.destroy();
    }
    // The places come back once those requests end.
    const until = Date.now() + 10_000;
    for (;;) {
      const body = new FormData();
      body.append('image', new Blob([new Uint8Array(small)]), 'q.jpg');
      const again = await fetch(url('/api/collections/pics/search'), { method: 'POST', body });
      if (again.status === 200) break;
      assert.ok(Date.now() < until, `still ${again.status}`);
      await sleep(100);
    }
  });

  it('keeps only so many event streams per client: past that, 503 BUSY; a closed one frees its place', async () => {
    const streams = await Promise.all(
      Array.from({ length: EVENT_STREAMS.perAddress }, async () => {
        const controller = new AbortController();
        const response = await fetch(url('/api/events'), { signal: controller.signal });
        assert.equal(response.status, 200);
        return controller;
      }),
    );
    try {
      const refused = await fetch(url('/api/events'));
      assert.equal(refused.status, 503);
      assert.equal((await errorOf(refused)).code, 'BUSY');
      streams.pop()!.abort();
      const until = Date.now() + 10_000;
      for (;;) {
        const controller = new AbortController();
        const again = await fetch(url('/api/events'), { signal: controller.signal });
        controller.abort();
        if (again.status === 200) break;
        assert.ok(Date.now() < until, 'the closed stream gave its place back');
        await sleep(100);
      }
    } finally {
      for (const controller of streams) controller.abort();
    }
  });

  it('one image over the per-image cap fails on its own, sent or fetched; the others are added', async () => {
    const body = new FormData();
    body.append('image', new Blob([new Uint8Array(small)]), 'petit.jpg');
    body.append('image', new Blob([new Uint8Array(large)]), 'énorme.jpg');
    body.append('image', new Blob([new Uint8Array(await picture(5))]), 'autre.jpg');
    const sent = await fetch(url('/api/collections/pics/images'), { method: 'POST', headers: auth, body });
    assert.equal(sent.status, 200);
    const report = (await sent.json()) as {
      added: { index: number }[];
      failed: { index: number; name: string; code: string; message: string }[];
    };
    assert.deepEqual(
      report.added.map((a) => a.index),
      [0, 2],
    );
    assert.deepEqual(
      report.failed.map((f) => [f.index, f.name, f.code]),
      [[1, 'énorme.jpg', 'IMAGE_TOO_LARGE']],
    );
    assert.match(report.failed[0]!.message, /^The image is over 60 KB, the most this server takes per image/);
    assert.deepEqual(
      await readdir(join(home, 'collections', 'pics', '.incoming')),
      [],
      'nothing staged is left',
    );

    const fetched = await fetch(url('/api/collections/pics/images'), {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ urls: [`${filesHost}/large.jpg`, `${filesHost}/small.jpg`] }),
    });
    assert.equal(fetched.status, 200);
    const urls = (await fetched.json()) as {
      added: { index: number }[];
      failed: { index: number; code: string }[];
    };
    assert.deepEqual(
      urls.failed.map((f) => [f.index, f.code]),
      [[0, 'IMAGE_TOO_LARGE']],
    );
    assert.equal(urls.added.length + (urls as unknown as { skipped: unknown[] }).skipped.length, 1);
  });

  it('a list of addresses is small JSON: over 256 KB (chunked too) is 413, an unknown field 400', async () => {
    const padded = JSON.stringify({ urls: [`${filesHost}/small.jpg`], pad: 'y'.repeat(300 * 1024) });
    const { port } = new URL(server.url);
    const status = await new Promise<number>((resolve, reject) => {
      // No Content-Length: the body arrives in chunks, as a client that hides its size sends it.
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/api/collections/pics/images',
          agent: false,
          headers: { ...auth, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', reject);
      for (let at = 0; at < padded.length; at += 16 * 1024) req.write(padded.slice(at, at + 16 * 1024));
      req.end();
    });
    assert.equal(status, 413);
    const unknown = await fetch(url('/api/collections/pics/images'), {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ urls: [`${filesHost}/small.jpg`], pad: 'y' }),
    });
    assert.equal(unknown.status, 400);
    assert.match((await errorOf(unknown)).message, /Unknown field "pad"/);
  });

  it('stops fetching addresses for a client that went away', async () => {
    asked.length = 0;
    const urls = [1, 2, 3].map((n) => `${filesHost}/slow/${n}`);
    const controller = new AbortController();
    const sent = fetch(url('/api/collections/pics/images'), {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ urls }),
      signal: controller.signal,
    }).catch(() => undefined);
    // The client leaves while the first address is being fetched.
    for (const until = Date.now() + 15_000; !asked.includes('/slow/1'); await sleep(20))
      assert.ok(Date.now() < until, 'the first address was never fetched');
    controller.abort();
    await sent;
    await sleep(4_000); // time enough for all three, one after another
    assert.deepEqual(asked, ['/slow/1']);
  });

  it('names images by their id in digits only', async () => {
    for (const id of ['0x1', '1e0', '%201', '1.0', '0b1', '+1'])
      assert.equal((await fetch(url(`/api/collections/pics/images/${id}`))).status, 404, id);
    assert.equal((await fetch(url('/api/collections/pics/images/1'))).status, 200);
    const removed = await fetch(url('/api/collections/pics/images/0x1'), { method: 'DELETE', headers: auth });
    assert.equal(removed.status, 404);
    assert.equal((await fetch(url('/api/collections/pics/images/1'))).status, 200, 'image 1 is still there');
  });

  it('answers a collection made from the page with its model by file name, never its folder', async () => {
    const models = (await (await fetch(url('/api/models'))).json()) as { name: string; label: string }[];
    const tiny = models.find((m) => m.label === 'tiny.onnx')!;
    const made = await fetch(url('/api/collections'), {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'sent', model: tiny.name }),
    });
    assert.equal(made.status, 201);
    const text = await made.text();
    assert.equal((JSON.parse(text) as { model: string }).model, 'tiny.onnx');
    assert.ok(!text.includes(dir), text);
  });

  it('a collection deleted while its images arrive: the upload is 404, and nothing of it is left', async () => {
    const boundary = 'b0undary';
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="lent.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const { port } = new URL(server.url);
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/api/collections/sent/images',
          agent: false,
          headers: {
            ...auth,
            'content-type': `multipart/form-data; boundary=${boundary}`,
            'content-length': head.length + small.length + tail.length,
          },
        },
        (res) => {
          let text = '';
          res.on('data', (chunk) => {
            text += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode!, text }));
        },
      );
      req.on('error', reject);
      req.write(head);
      req.write(small.subarray(0, 100));
      setTimeout(async () => {
        const deleted = await fetch(url('/api/collections/sent'), { method: 'DELETE', headers: auth });
        assert.equal(deleted.status, 204);
        req.end(Buffer.concat([small.subarray(100), tail]));
      }, 500);
    });
    const { status, text } = await answer;
    assert.equal(status, 404, text);
    assert.equal((JSON.parse(text) as { error: { code: string } }).error.code, 'COLLECTION_NOT_FOUND');
    await sleep(200);
    assert.equal(existsSync(join(home, 'collections', 'sent')), false, 'no folder came back');
  });

  it('searches for duplicates one threshold at a time, and refuses to queue many (503 BUSY)', async () => {
    const thresholds = Array.from({ length: 16 }, (_, i) => 0.5 + i * 0.025);
    const answers = await Promise.all(
      thresholds.map((t) => fetch(url(`/api/collections/pics/duplicates?threshold=${t}`))),
    );
    const statuses = answers.map((a) => a.status);
    assert.ok(statuses.includes(503), `${statuses}`);
    assert.ok(statuses.includes(200), `${statuses}`);
    for (const answer of answers)
      if (answer.status === 503) assert.equal((await errorOf(answer)).code, 'BUSY');
      else await answer.body?.cancel();
    // Once they are done, another threshold is searched.
    const later = await fetch(url('/api/collections/pics/duplicates?threshold=0.9'));
    assert.equal(later.status, 200);
  });

  it('starts an experiment only for a JSON body (another type is 415)', async () => {
    const started = await fetch(url('/api/collections/pics/experiments'), {
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/plain' },
      body: 'garbage',
    });
    assert.equal(started.status, 415);
    assert.equal((await errorOf(started)).code, 'UNSUPPORTED_CONTENT_TYPE');
  });
});

describe('the read cookie', () => {
  it("counts only for this server's own page: a request another page of this host made is 401", async () => {
    const guarded = await listen({
      port: 0,
      collectionOptions: { home },
      access: { writeToken: TOKEN, readToken: READ_TOKEN },
      log: () => undefined,
    });
    try {
      const read = (site?: string) =>
        fetch(`${guarded.url}/api/collections`, {
          headers: { cookie: `ris_read=${READ_TOKEN}`, ...(site ? { 'sec-fetch-site': site } : {}) },
        });
      assert.equal((await read()).status, 200, 'a client that is not a browser');
      assert.equal((await read('same-origin')).status, 200, 'the page itself');
      assert.equal((await read('same-site')).status, 401, 'a page on another port of this host');
      assert.equal((await read('cross-site')).status, 401, 'another site');
    } finally {
      await guarded.close();
    }
  });
});
