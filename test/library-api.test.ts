// The library from the page's side: a real `listen` server with a write token, driven over HTTP as a
// browser and an attacker would (Host headers, origins, bodies of every size and type).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { indexCollection } from '../src/collection/build.ts';
import { listen, type RunningServer } from '../src/server/serve.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback } from './helpers.ts';

const TOKEN = 'library-test-token-0123456789';
let dir: string;
let home: string;
let images: string;
let server: RunningServer;
let base: string;
let port: number;
let files: Server;
let filesBase: string;
let sample: Buffer;
const logged: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-library-'));
  home = join(dir, 'home');
  images = join(dir, 'my photos');
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  await writeClassFolders(images, 3, 4);
  const { collection } = await indexCollection('pics', images, { model, home });
  await collection.close();
  sample = await readFile(join(images, 'class1', 'img002.jpg'));
  files = createServer((req, res) => {
    if (req.url === '/photos/sunflower%20%C3%A9t%C3%A9.jpg')
      return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(picture(5));
    res.writeHead(404).end();
  });
  filesBase = await listenOnLoopback(files);
  server = await listen({
    port: 0,
    collectionOptions: { home },
    access: { writeToken: TOKEN },
    allowLoopbackUrls: true,
    allowedHosts: ['photos.lan'],
    maxUploadFiles: 6,
    maxUploadRequestBytes: 2_000_000,
    log: (line) => logged.push(line),
  });
  base = server.url;
  port = Number(new URL(base).port);
});
after(async () => {
  await server.close();
  files.close();
  await rm(dir, { recursive: true, force: true });
});

/** A JPEG unlike the test collection's, different for every seed. */
let pictures = new Map<number, Buffer>();
function picture(seed: number): Buffer {
  return pictures.get(seed) ?? Buffer.alloc(0);
}
before(async () => {
  pictures = new Map();
  for (let seed = 1; seed <= 12; seed++) {
    const raw = Buffer.alloc(48 * 48 * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * seed * 31 + seed * 97) % 251;
    pictures.set(
      seed,
      await sharp(raw, { raw: { width: 48, height: 48, channels: 3 } })
        .jpeg()
        .toBuffer(),
    );
  }
});

const auth = { authorization: `Bearer ${TOKEN}` };

function form(
  parts: { field?: string; name: string; bytes: Uint8Array }[],
  fields: Record<string, string> = {},
) {
  const body = new FormData();
  for (const part of parts)
    body.append(part.field ?? 'image', new Blob([new Uint8Array(part.bytes)]), part.name);
  for (const [k, v] of Object.entries(fields)) body.append(k, v);
  return body;
}

async function upload(collection: string, body: FormData | object, headers: Record<string, string> = auth) {
  const isForm = body instanceof FormData;
  return fetch(`${base}/api/collections/${encodeURIComponent(collection)}/images`, {
    method: 'POST',
    headers: isForm ? headers : { ...headers, 'content-type': 'application/json' },
    body: isForm ? body : JSON.stringify(body),
  });
}

/** A request with any Host header and raw body (fetch refuses to set Host). */
function raw(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    // A connection of its own: one whose body was never sent cannot be used again.
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  return ((await response.json()) as { error: { code: string; message: string } }).error;
}

async function searchTop(collection: string, bytes: Uint8Array, extra: Record<string, string> = {}) {
  const body = form([{ name: 'q.jpg', bytes }], { k: '3', ...extra });
  const response = await fetch(`${base}/api/collections/${collection}/search`, { method: 'POST', body });
  assert.equal(response.status, 200);
  return ((await response.json()) as { results: { id: number; similarity: number }[] }).results;
}

describe('the write token', () => {
  it('every change needs it, checked before the body, the name or the collection', async () => {
    const cases: [string, string, Record<string, string>, string?][] = [
      ['POST', '/api/collections', { 'content-type': 'application/json' }, '{"name":"x"}'],
      ['DELETE', '/api/collections/pics', {}],
      ['DELETE', '/api/collections/no-such-collection', {}],
      ['POST', '/api/collections/no-such-collection/images', { 'content-type': 'text/plain' }, 'x'],
      ['DELETE', '/api/collections/pics/images/1', {}],
      ['POST', '/api/collections/pics/rescan', {}],
      ['POST', '/api/collections/pics/experiments', {}],
      ['PUT', '/api/collections/pics', {}],
    ];
    for (const [method, path, headers, body] of cases) {
      for (const authorization of [undefined, 'Bearer wrong-token', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
        const response = await raw(
          method,
          path,
          { host: `127.0.0.1:${port}`, ...headers, ...(authorization ? { authorization } : {}) },
          body,
        );
        assert.equal(response.status, 401, `${method} ${path} with ${authorization}`);
        assert.equal(response.headers['www-authenticate'], 'Bearer realm="ris"');
        assert.equal(JSON.parse(response.text).error.code, 'UNAUTHORIZED');
      }
    }
    // A huge body is never read: the answer comes from the headers alone.
    const started = Date.now();
    const huge = await raw('POST', '/api/collections/pics/images', {
      host: `localhost:${port}`,
      'content-type': 'multipart/form-data; boundary=x',
      'content-length': String(2 ** 40),
    });
    assert.equal(huge.status, 401);
    assert.ok(Date.now() - started < 5000);
    assert.ok(existsSync(join(home, 'collections', 'pics')), 'nothing was deleted');
  });

  it('searching and reading need no token; the page learns what it may do', async () => {
    assert.equal((await searchTop('pics', sample)).length, 3);
    assert.equal((await fetch(`${base}/api/collections`)).status, 200);
    // The page splits uploads into requests the server takes (this one is started with 6 files, 2 MB).
    const uploads = { maxFiles: 6, maxBytes: 2_000_000 };
    assert.deepEqual(await (await fetch(`${base}/api/session`)).json(), {
      read: true,
      write: false,
      readTokenRequired: false,
      uploads,
    });
    assert.deepEqual(await (await fetch(`${base}/api/session`, { headers: auth })).json(), {
      read: true,
      write: true,
      readTokenRequired: false,
      uploads,
    });
  });

  it('a change from another origin is refused even with the token', async () => {
    for (const headers of <Record<string, string>[]>[
      { origin: 'http://evil.example' },
      { origin: 'null' },
      { origin: `http://localhost:${port + 1}` },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
    ]) {
      const response = await raw(
        'POST',
        '/api/collections',
        { host: `localhost:${port}`, ...auth, 'content-type': 'application/json', ...headers },
        '{"name":"from-elsewhere"}',
      );
      assert.equal(response.status, 403, JSON.stringify(headers));
      assert.equal(JSON.parse(response.text).error.code, 'ORIGIN_NOT_ALLOWED');
    }
    assert.equal(existsSync(join(home, 'collections', 'from-elsewhere')), false);
  });
});

describe('Host names (DNS rebinding)', () => {
  it('answers only to its own addresses with its port, and to names allowed by configuration', async () => {
    for (const host of [
      `localhost:${port}`,
      `127.0.0.1:${port}`,
      `[::1]:${port}`,
      'photos.lan',
      'photos.lan:8080',
      `LOCALHOST:${port}`,
    ])
      assert.equal((await raw('GET', '/api/health', { host })).status, 200, host);
    for (const host of [
      `evil.example:${port}`,
      'evil.example',
      `localhost:${port + 1}`,
      `127.0.0.2:${port}`,
      `localhost.evil.example:${port}`,
      `photos.lan.evil:${port}`,
    ]) {
      for (const path of ['/api/health', '/', '/api/collections/pics/search']) {
        const response = await raw(path.endsWith('search') ? 'POST' : 'GET', path, { host });
        assert.equal(response.status, 403, `${host} ${path}`);
        assert.equal(JSON.parse(response.text).error.code, 'HOST_NOT_ALLOWED');
      }
    }
  });

  it('refuses a request that names no host (HTTP/1.0)', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.end('GET /api/health HTTP/1.0\r\n\r\n'));
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk;
      });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.[01] 403/);
    assert.match(answer, /HOST_NOT_ALLOWED/);
  });
});

describe('collections from the page', () => {
  it('creates one with a model the server already uses, refuses names, models and bodies it cannot take', async () => {
    const models = (await (await fetch(`${base}/api/models`)).json()) as { name: string; label: string }[];
    const tiny = models.find((m) => m.label === 'tiny.onnx');
    assert.ok(tiny, JSON.stringify(models));
    assert.ok(!JSON.stringify(models).includes(dir), 'no server path in the list');
    const create = (body: unknown, type = 'application/json') =>
      fetch(`${base}/api/collections`, {
        method: 'POST',
        headers: { ...auth, 'content-type': type },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    const made = await create({ name: 'holiday', model: tiny.name });
    assert.equal(made.status, 201);
    assert.equal(((await made.json()) as { size: number }).size, 0);
    assert.equal((await create({ name: 'holiday', model: tiny.name })).status, 409);
    for (const [body, status] of [
      [{ name: '../etc' }, 400],
      [{ name: '' }, 400],
      [{ name: 'x'.repeat(65) }, 400],
      [{ name: 'ok-name', model: '/etc/passwd' }, 400],
      [{ name: 'ok-name', model: join(dir, 'tiny.onnx') }, 400],
      [{ name: 'ok-name', index: 'hash' }, 400],
      [{ name: 'ok-name', index: 'hnsw', memoryBudget: 2e9 }, 400],
      [{ name: 'ok-name', memoryBudget: -1 }, 400],
      [{ name: 'ok-name', memoryBudget: '2GB' }, 400],
      [{ name: 'ok-name', extra: 1 }, 400],
      ['{not json', 400],
    ] as const)
      assert.equal((await create(body)).status, status, JSON.stringify(body));
    assert.equal((await create({ name: 'ok-name' }, 'text/plain')).status, 415);
    // The kind at the memory limit, and a budget that lets 'auto' choose (kept in the manifest).
    assert.equal((await create({ name: 'compact', model: tiny.name, index: 'ivf-rabitq' })).status, 201);
    assert.equal((await create({ name: 'budget', model: tiny.name, memoryBudget: 2e9 })).status, 201);
    const manifestOf = async (name: string) =>
      (
        JSON.parse(await readFile(join(home, 'collections', name, 'manifest.json'), 'utf8')) as {
          index: { kind: string; memoryBudget: number | null };
        }
      ).index;
    const compact = await manifestOf('compact');
    assert.deepEqual([compact.kind, compact.memoryBudget], ['ivf-rabitq', null]);
    const budget = await manifestOf('budget');
    assert.deepEqual([budget.kind, budget.memoryBudget], ['auto', 2e9]);
    const big = await create({ name: 'big', padding: 'x'.repeat(300_000) });
    assert.equal(big.status, 413);
    assert.equal(existsSync(join(home, 'collections', 'ok-name')), false);
    const list = (await (await fetch(`${base}/api/collections`)).json()) as { name: string }[];
    assert.ok(list.some((c) => c.name === 'holiday'));
  });

  it('uploads files, each answered in order: added, skipped (same bytes), failed (with why)', async () => {
    const response = await upload(
      'holiday',
      form(
        [
          { name: 'Été à la plage 1.jpg', bytes: picture(1) },
          { name: 'notes.txt', bytes: Buffer.from('not an image at all') },
          { name: '../../../etc/passwd.jpg', bytes: picture(2) },
          { name: 'empty.jpg', bytes: new Uint8Array(0) },
          { name: 'copy of Été.jpg', bytes: picture(1) },
          { name: 'truncated.jpg', bytes: picture(3).subarray(0, 200) },
        ],
        { label: 'plage' },
      ),
    );
    assert.equal(response.status, 200);
    const report = (await response.json()) as {
      added: { index: number; id: number; name: string }[];
      skipped: { index: number; name: string; reason: string }[];
      failed: { index: number; name: string; code: string; message: string }[];
    };
    assert.deepEqual(
      report.added.map((a) => [a.index, a.name]),
      [
        [0, 'Été à la plage 1.jpg'],
        [2, 'passwd.jpg'], // a name is a name: the client's folders never reach the server
      ],
    );
    assert.deepEqual(
      report.skipped.map((s) => [s.index, s.name]),
      [[4, 'copy of Été.jpg']],
    );
    assert.deepEqual(
      report.failed.map((f) => [f.index, f.name, f.code]),
      [
        [1, 'notes.txt', 'UNSUPPORTED_IMAGE'],
        [3, 'empty.jpg', 'EMPTY_IMAGE'],
        [5, 'truncated.jpg', 'CORRUPT_IMAGE'],
      ],
    );
    for (const failure of report.failed) {
      assert.ok(!failure.message.includes(dir), `no server path: ${failure.message}`);
    }
    // Kept under safe names inside the collection's folder; nothing escaped it, nothing left staged.
    const kept = await readdir(join(home, 'collections', 'holiday', 'uploads'));
    assert.equal(kept.length, 2);
    assert.ok(
      kept.some((name) => /^[0-9a-f]{16}-Été à la plage 1\.jpg$/.test(name)),
      kept.join(),
    );
    assert.ok(
      kept.some((name) => /^[0-9a-f]{16}-passwd\.jpg$/.test(name)),
      kept.join(),
    );
    assert.deepEqual(await readdir(join(home, 'collections', 'holiday', '.incoming')), []);
    // Searchable once answered, served back byte for byte, labelled as sent.
    const top = await searchTop('holiday', picture(1));
    assert.equal(top[0]!.id, report.added[0]!.id);
    const back = await fetch(`${base}/api/collections/holiday/images/${report.added[0]!.id}`);
    assert.deepEqual(Buffer.from(await back.arrayBuffer()), picture(1));
    const list = (await (await fetch(`${base}/api/collections`)).json()) as {
      name: string;
      labels: { label: string }[];
    }[];
    assert.deepEqual(
      list.find((c) => c.name === 'holiday')!.labels.map((l) => l.label),
      ['plage'],
    );
  });

  it('fetches URLs the way URL search does: host names, accents, and refusals per URL', async () => {
    const response = await upload('holiday', {
      urls: [
        `${filesBase.replace('127.0.0.1', 'localhost')}/photos/sunflower%20%C3%A9t%C3%A9.jpg`,
        `${filesBase}/missing.jpg`,
        'http://169.254.169.254/latest/meta-data/',
        'file:///etc/passwd',
      ],
    });
    assert.equal(response.status, 200);
    const report = (await response.json()) as {
      added: { name: string }[];
      failed: { index: number; code: string }[];
    };
    assert.deepEqual(
      report.added.map((a) => a.name),
      ['sunflower été.jpg'],
    );
    assert.deepEqual(
      report.failed.map((f) => [f.index, f.code]),
      [
        [1, 'URL_FETCH_FAILED'],
        [2, 'URL_NOT_ALLOWED'],
        [3, 'URL_NOT_ALLOWED'],
      ],
    );
  });

  it('refuses more files or bytes than a request may send, and bodies it cannot read', async () => {
    const seven = form(Array.from({ length: 7 }, (_, i) => ({ name: `${i}.jpg`, bytes: picture(6) })));
    const tooMany = await upload('holiday', seven);
    assert.equal(tooMany.status, 413);
    assert.equal((await errorOf(tooMany)).code, 'UPLOAD_TOO_LARGE');
    const heavy = await upload('holiday', form([{ name: 'big.jpg', bytes: Buffer.alloc(2_500_000, 7) }]));
    assert.equal(heavy.status, 413);
    for (const type of ['multipart/form-data', 'multipart/form-data; boundary=nope']) {
      const response = await raw(
        'POST',
        '/api/collections/holiday/images',
        { host: `localhost:${port}`, ...auth, 'content-type': type },
        '--other\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\nxx\r\n--other--\r\n',
      );
      assert.equal(response.status, 400, type);
      assert.equal(JSON.parse(response.text).error.code, 'INVALID_ARGUMENT');
    }
    const wrongField = await upload('holiday', form([{ field: 'file', name: 'a.jpg', bytes: picture(7) }]));
    assert.equal(wrongField.status, 400);
    const plain = await raw(
      'POST',
      '/api/collections/holiday/images',
      { host: `localhost:${port}`, ...auth, 'content-type': 'text/plain' },
      'hello',
    );
    assert.equal(plain.status, 415);
    assert.deepEqual(await readdir(join(home, 'collections', 'holiday', '.incoming')), []);
    assert.ok(!logged.some((line) => /at .*\.ts:\d+/.test(line)), 'no stack traces logged');
  });

  it('removes an uploaded image with its file; the same bytes can come back', async () => {
    const top = await searchTop('holiday', picture(2));
    const id = top[0]!.id;
    const before = await readdir(join(home, 'collections', 'holiday', 'uploads'));
    const removed = await fetch(`${base}/api/collections/holiday/images/${id}`, {
      method: 'DELETE',
      headers: auth,
    });
    assert.equal(removed.status, 204);
    assert.equal((await fetch(`${base}/api/collections/holiday/images/${id}`)).status, 404);
    assert.equal(
      (await fetch(`${base}/api/collections/holiday/images/${id}`, { method: 'DELETE', headers: auth }))
        .status,
      404,
    );
    assert.equal(
      (await fetch(`${base}/api/collections/holiday/images/abc`, { method: 'DELETE', headers: auth })).status,
      404,
    );
    const after = await readdir(join(home, 'collections', 'holiday', 'uploads'));
    assert.equal(after.length, before.length - 1);
    const again = await upload('holiday', form([{ name: 'back.jpg', bytes: picture(2) }]));
    const report = (await again.json()) as { added: { id: number }[] };
    assert.equal(report.added.length, 1);
    assert.notEqual(report.added[0]!.id, id);
  });

  it('filters answers by similarity: a cutoff above every hit answers nothing', async () => {
    const all = await searchTop('pics', sample);
    assert.equal(all.length, 3);
    const close = await searchTop('pics', sample, { minSimilarity: String(all[1]!.similarity - 1e-6) });
    assert.equal(close.length, 2);
    assert.deepEqual(await searchTop('pics', picture(9), { minSimilarity: '1' }), []);
    const bad = await fetch(`${base}/api/collections/pics/search`, {
      method: 'POST',
      body: form([{ name: 'q.jpg', bytes: sample }], { minSimilarity: '2' }),
    });
    assert.equal(bad.status, 400);
  });

  it('deletes a collection with the files ris kept, never the folder its images came from', async () => {
    const made = await fetch(`${base}/api/collections`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'from-folder',
        model: ((await (await fetch(`${base}/api/models`)).json()) as { name: string; label: string }[]).find(
          (m) => m.label === 'tiny.onnx',
        )!.name,
      }),
    });
    assert.equal(made.status, 201);
    assert.equal(
      (await fetch(`${base}/api/collections/holiday`, { method: 'DELETE', headers: auth })).status,
      204,
    );
    assert.equal(existsSync(join(home, 'collections', 'holiday')), false);
    assert.equal(
      (await fetch(`${base}/api/collections/holiday`, { method: 'DELETE', headers: auth })).status,
      404,
    );
    const list = (await (await fetch(`${base}/api/collections`)).json()) as { name: string }[];
    assert.ok(!list.some((c) => c.name === 'holiday'));
    // A collection indexed from a folder: deleting it leaves the folder alone.
    assert.equal(
      (await fetch(`${base}/api/collections/pics`, { method: 'DELETE', headers: auth })).status,
      204,
    );
    assert.equal((await readdir(join(images, 'class1'))).length, 4);
    const { collection } = await indexCollection('pics', images, { model: join(dir, 'tiny.onnx'), home });
    await collection.close();
  });
});

describe('a collection that follows its folder', () => {
  it('rescans: new, changed, gone and moved files; a removed file stays out until it changes', async () => {
    const response = (path: string, init?: RequestInit) => fetch(`${base}${path}`, init);
    const rescan = async () => {
      const r = await response('/api/collections/pics/rescan', { method: 'POST', headers: auth });
      assert.equal(r.status, 200);
      return (await r.json()) as Record<string, number | unknown[]>;
    };
    assert.deepEqual(await rescan(), {
      added: 0,
      reembedded: 0,
      removed: 0,
      moved: 0,
      excluded: 0,
      unchanged: 12,
      failed: [],
    });
    const idOf = async (bytes: Buffer) => (await searchTop('pics', bytes))[0]!.id;
    const movedBytes = await readFile(join(images, 'class0', 'img000.jpg'));
    const movedId = await idOf(movedBytes);
    await writeFile(join(images, 'class2', 'new one é.jpg'), picture(10));
    await writeFile(join(images, 'class1', 'img000.jpg'), picture(11)); // changed bytes
    await rm(join(images, 'class1', 'img001.jpg'));
    await rename(join(images, 'class0', 'img000.jpg'), join(images, 'class2', 'moved.jpg'));
    const report = await rescan();
    assert.deepEqual(
      { ...report, failed: undefined },
      { added: 1, reembedded: 1, removed: 1, moved: 1, excluded: 0, unchanged: 9, failed: undefined },
    );
    assert.equal(await idOf(movedBytes), movedId, 'a moved file keeps its id');
    const moved = (await (await response(`/api/collections/pics/images/${movedId}`)).arrayBuffer())
      .byteLength;
    assert.equal(moved, movedBytes.length);
    // Removed by hand: it stays out of rescans …
    const newId = await idOf(picture(10));
    assert.equal(
      (await response(`/api/collections/pics/images/${newId}`, { method: 'DELETE', headers: auth })).status,
      204,
    );
    assert.equal((await rescan()).excluded, 1);
    assert.notEqual(await idOf(picture(10)), newId);
    // … until it changes.
    await writeFile(join(images, 'class2', 'new one é.jpg'), picture(12));
    const changed = await rescan();
    assert.equal(changed.added, 1);
    assert.equal(changed.excluded, 0);
    const unchangedStat = await stat(join(images, 'class2', 'moved.jpg'));
    assert.ok(unchangedStat.isFile());
    // Bytes changed behind ris's back, with the size and mtime put back: a rescan alone cannot tell, but
    // once the server has refused to serve the file, the next rescan embeds it again.
    const victim = join(images, 'class1', 'img002.jpg');
    const original = await readFile(victim);
    const stamp = join(dir, 'stamp');
    await writeFile(stamp, '');
    execFileSync('touch', ['-r', victim, stamp]); // to the nanosecond, as ris compares it
    const victimId = await idOf(original);
    const forged = Buffer.from(original);
    forged[10] = forged[10] === 9 ? 10 : 9; // a value of the JPEG's quantization table: still decodes
    await writeFile(victim, forged);
    execFileSync('touch', ['-r', stamp, victim]);
    assert.equal((await rescan()).reembedded, 0, 'size and mtime alone do not show the change');
    assert.equal((await response(`/api/collections/pics/images/${victimId}`)).status, 409);
    const after = await rescan();
    assert.equal(after.reembedded, 1, JSON.stringify(after));
    assert.equal((await response(`/api/collections/pics/images/${victimId}`)).status, 404);
  });
});

describe('every open page hears the same library', () => {
  it('streams creations, uploads in progress and changes made by another process', async () => {
    const controller = new AbortController();
    const response = await fetch(`${base}/api/events`, { signal: controller.signal });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = response.body!.getReader();
    const seen: { event: string; data: Record<string, unknown> }[] = [];
    let buffer = '';
    const waitFor = async (match: (e: { event: string; data: Record<string, unknown> }) => boolean) => {
      const until = Date.now() + 15_000;
      for (;;) {
        const found = seen.find(match);
        if (found) return found;
        assert.ok(Date.now() < until, `no such event in ${JSON.stringify(seen)}`);
        const { value, done } = await reader.read();
        assert.ok(!done);
        buffer += new TextDecoder().decode(value);
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) seen.push({ event, data: JSON.parse(data) as Record<string, unknown> });
        }
      }
    };
    try {
      await waitFor((e) => e.event === 'hello');
      const model = (
        (await (await fetch(`${base}/api/models`)).json()) as { name: string; label: string }[]
      ).find((m) => m.label === 'tiny.onnx')!.name;
      await fetch(`${base}/api/collections`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'events', model }),
      });
      await waitFor((e) => e.event === 'collections');
      const sent = await upload('events', form([{ name: 'a.jpg', bytes: picture(4) }]));
      const { batch } = (await sent.json()) as { batch: string };
      await waitFor(
        (e) => e.event === 'progress' && e.data.id === batch && e.data.done === 1 && e.data.total === 1,
      );
      await waitFor((e) => e.event === 'changed' && e.data.collection === 'events' && e.data.size === 1);
      // A change made outside this server (a library call, as `ris add` makes it) reaches the page too.
      const { Collection } = await import('../src/collection/collection.ts');
      const other = await Collection.open('events', { home });
      await other.addImages([{ path: join(images, 'class0', 'img001.jpg') }]);
      await other.close();
      await waitFor((e) => e.event === 'changed' && e.data.collection === 'events' && e.data.size === 2);
    } finally {
      controller.abort();
    }
  });
});
