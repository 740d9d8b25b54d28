import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { indexCollection } from '../src/collection/build.ts';
import { CONNECTION_LIMITS, listen, type RunningServer } from '../src/server/serve.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';

let dir: string;
let server: RunningServer;
let port: number;
let sample: Buffer;
const logged: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-hygiene-'));
  const home = join(dir, 'home');
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  await writeClassFolders(join(dir, 'images'), 2, 4);
  const { collection } = await indexCollection('pics', join(dir, 'images'), { model, home });
  await collection.close();
  sample = await readFile(join(dir, 'images', 'class1', 'img001.jpg'));
  // The real limits, shortened so the test does not wait ten seconds for each.
  server = await listen({
    port: 0,
    collectionOptions: { home },
    connectionLimits: {
      headersTimeout: 400,
      requestTimeout: 800,
      keepAliveTimeout: 300,
      connectionsCheckingInterval: 100,
    },
    log: (line) => logged.push(line),
  });
  port = Number(new URL(server.url).port);
});
after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

/** Opens a raw connection and resolves when the server closes it (or after `patience` ms, with false). */
function opened(): { socket: Socket; closed: Promise<boolean> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  return { socket, closed };
}

const upload = (boundary: string) =>
  Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`,
    ),
    sample,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);

describe('the server closes what would otherwise pile up', () => {
  it('documents limits that close idle and stalled connections', () => {
    assert.deepEqual(CONNECTION_LIMITS, {
      headersTimeout: 10_000,
      requestTimeout: 60_000,
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: 1_000,
    });
  });

  it('closes connections that never send a request, or send headers slowly (slowloris)', async () => {
    const idle = Array.from({ length: 50 }, () => opened());
    const slow = Array.from({ length: 5 }, () => {
      const connection = opened();
      connection.socket.write(`POST /api/collections/pics/search HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
      const drip = setInterval(() => connection.socket.write('X-Drip: 1\r\n'), 100);
      void connection.closed.finally(() => clearInterval(drip));
      return connection;
    });
    const results = await Promise.all([...idle, ...slow].map((c) => c.closed));
    assert.equal(results.filter(Boolean).length, 55, 'every connection was closed by the server');
  });

  it('closes an upload that stalls halfway, and still answers others', async () => {
    const { socket, closed } = opened();
    const body = upload('b0undary');
    socket.write(
      `POST /api/collections/pics/search HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body.subarray(0, body.length / 2));
    assert.ok(await closed, 'the stalled upload was closed');
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(sample)]), 'q.jpg');
    const ok = await fetch(`${server.url}/api/collections/pics/search`, { method: 'POST', body: form });
    assert.equal(ok.status, 200);
  });

  it('logs a client gone mid-upload in one line, without a stack', async () => {
    logged.length = 0;
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    try {
      for (let i = 0; i < 3; i++) {
        const { socket, closed } = opened();
        const body = upload('b0undary');
        socket.write(
          `POST /api/collections/pics/search HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: ${body.length}\r\n\r\n`,
        );
        socket.write(body.subarray(0, 200), () => socket.destroy());
        await closed;
      }
      for (let i = 0; i < 40 && logged.length < 3; i++) await new Promise((r) => setTimeout(r, 25));
    } finally {
      console.error = original;
    }
    assert.deepEqual(
      logged,
      Array(3).fill('client closed the connection during POST /api/collections/pics/search'),
    );
    assert.deepEqual(errors, [], 'no stack printed');
  });

  it('answers a multipart body without a boundary, or with another one, 400 with the reason, logging nothing', async () => {
    logged.length = 0;
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    try {
      for (const path of ['search', 'explore/ivf', 'explore/projection', 'explore/hnsw'])
        for (const [type, reason] of [
          ['multipart/form-data', /^The multipart body has no boundary in its Content-Type/],
          ['multipart/form-data; boundary=', /^The multipart body has no boundary in its Content-Type/],
          [
            'multipart/form-data; boundary=an0ther',
            /^The multipart body does not match its boundary "an0ther" \(.+\); /,
          ],
        ] as const) {
          const response = await fetch(`${server.url}/api/collections/pics/${path}`, {
            method: 'POST',
            headers: { 'content-type': type },
            body: upload('b0undary'),
          });
          const body = (await response.json()) as { error: { code: string; message: string } };
          assert.equal(response.status, 400, `${path}, ${type}: ${JSON.stringify(body)}`);
          assert.equal(body.error.code, 'INVALID_ARGUMENT');
          assert.match(body.error.message, reason);
        }
    } finally {
      console.error = original;
    }
    assert.deepEqual(errors, [], 'no stack printed');
    assert.deepEqual(logged, []);
  });
});
