import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import sharp from 'sharp';
import { RequestError } from '../src/errors.ts';
import { fetchImage, type HostResolver } from '../src/server/fetch-image.ts';
import { listenOnLoopback } from './helpers.ts';
import { type ConnectionAttempt, guardConnections } from './network-guard.ts';

let server: Server;
let port: number;
let image: Buffer;
const stalled = new Set<ServerResponse>();
let guard: ReturnType<typeof guardConnections>;

/** Test names: images.test is this machine; mixed.test has one loopback and one private address. */
const resolver: HostResolver = async (hostname) => {
  const table: Record<string, { address: string; family: number }[]> = {
    'images.test': [{ address: '127.0.0.1', family: 4 }],
    'dual.test': [
      { address: '::1', family: 6 },
      { address: '127.0.0.1', family: 4 },
    ],
    'mixed.test': [
      { address: '127.0.0.1', family: 4 },
      { address: '10.0.0.7', family: 4 },
    ],
    'private.test': [{ address: '192.168.1.20', family: 4 }],
    'metadata.test': [{ address: '169.254.169.254', family: 4 }],
  };
  const found = table[hostname];
  if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return found;
};

before(async () => {
  guard = guardConnections();
  image = await sharp({ create: { width: 32, height: 24, channels: 3, background: '#3366cc' } })
    .jpeg()
    .toBuffer();
  server = createServer((req, res) => {
    const stall = () => stalled.add(res); // headers (and maybe a first chunk) sent, the rest never comes
    switch (req.url) {
      case '/cat.jpg':
        return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(image);
      case '/page.html':
        res.writeHead(200, { 'content-type': 'text/html', 'content-length': 200_000 });
        res.write('<html>'.padEnd(16_000, ' '));
        return stall();
      case '/missing.jpg':
        res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 100_000 });
        res.write('not here');
        return stall();
      case '/stall.jpg':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': image.length });
        res.write(image.subarray(0, 10));
        return stall();
      case '/big.jpg':
        return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(Buffer.alloc(600_000));
      case '/to-private':
        return res.writeHead(302, { location: 'http://private.test/secret.jpg' }).end();
      case '/to-metadata':
        return res.writeHead(302, { location: 'http://metadata.test/latest/meta-data/' }).end();
      case '/to-name':
        return res.writeHead(302, { location: `http://images.test:${port}/cat.jpg` }).end();
      case '/loop':
        return res.writeHead(302, { location: '/loop' }).end();
      default:
        return res.writeHead(404).end();
    }
  });
  const base = await listenOnLoopback(server);
  port = Number(new URL(base).port);
});
after(() => {
  for (const res of stalled) res.destroy();
  server.closeAllConnections();
  server.close();
  guard.restore();
});
beforeEach(() => guard.reset());

const options = { maxBytes: 500_000, allowLoopback: true, resolve: resolver };

async function refused(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RequestError, `expected a RequestError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

const onlyLoopback = (attempts: ConnectionAttempt[]) => {
  assert.ok(attempts.length > 0, 'some connection was made');
  for (const a of attempts) assert.ok(a.allowed && /^(127\.|::1)/.test(a.host), `connected to ${a.host}`);
};

describe('fetching an image URL', () => {
  it('fetches by host name through the system resolver (localhost)', async () => {
    const bytes = await fetchImage(`http://localhost:${port}/cat.jpg`, {
      maxBytes: 500_000,
      allowLoopback: true,
    });
    assert.deepEqual(bytes, image);
    onlyLoopback(guard.attempts);
  });

  it('connects only to the checked addresses of a name, trying each in turn', async () => {
    assert.deepEqual(await fetchImage(`http://images.test:${port}/cat.jpg`, options), image);
    assert.deepEqual(
      guard.attempts.map((a) => a.host),
      ['127.0.0.1'],
    );
    guard.reset();
    // ::1 answers nothing here (the server listens on 127.0.0.1 only): the next address is tried.
    assert.deepEqual(await fetchImage(`http://dual.test:${port}/cat.jpg`, options), image);
    assert.deepEqual(
      guard.attempts.map((a) => a.host),
      ['::1', '127.0.0.1'],
    );
  });

  it('refuses a name with any refused address, before any connection', async () => {
    await refused(
      fetchImage(`http://mixed.test:${port}/cat.jpg`, options),
      'URL_NOT_ALLOWED',
      /^That URL is not allowed: mixed\.test resolves to 10\.0\.0\.7, a private, link-local or reserved address; use a public image URL$/,
    );
    assert.deepEqual(guard.attempts, []);
    await refused(
      fetchImage(`http://localhost:${port}/cat.jpg`, { maxBytes: 500_000 }),
      'URL_NOT_ALLOWED',
      /localhost resolves to 127\.0\.0\.1, a loopback address \(this machine\)/,
    );
    await refused(
      fetchImage('http://[fd00:ec2::254]/', { maxBytes: 1000 }),
      'URL_NOT_ALLOWED',
      /fd00:ec2::254 is a private/,
    );
    assert.deepEqual(guard.attempts, []);
  });

  it('checks every redirect again: a name, then a private or metadata address behind a name', async () => {
    assert.deepEqual(await fetchImage(`http://127.0.0.1:${port}/to-name`, options), image);
    onlyLoopback(guard.attempts);
    guard.reset();
    await refused(
      fetchImage(`http://images.test:${port}/to-private`, options),
      'URL_NOT_ALLOWED',
      /private\.test resolves to 192\.168\.1\.20/,
    );
    await refused(
      fetchImage(`http://images.test:${port}/to-metadata`, options),
      'URL_NOT_ALLOWED',
      /metadata\.test resolves to 169\.254\.169\.254/,
    );
    onlyLoopback(guard.attempts);
    await refused(
      fetchImage(`http://images.test:${port}/loop`, { ...options, maxRedirects: 2 }),
      'URL_FETCH_FAILED',
      /redirects more than 2 times/,
    );
  });

  it('refuses a page or an error status on its head, without waiting for the body', async () => {
    // Those bodies never finish: waiting for them would end in URL_TIMEOUT instead.
    const slow = { ...options, timeoutMs: 8000 };
    await refused(
      fetchImage(`http://images.test:${port}/page.html`, slow),
      'URL_FETCH_FAILED',
      /not an image \(content type "text\/html"\)/,
    );
    await refused(
      fetchImage(`http://images.test:${port}/missing.jpg`, slow),
      'URL_FETCH_FAILED',
      /answered HTTP 404/,
    );
  });

  it('gives up on a body that stalls, saying the time limit it was given', async () => {
    await refused(
      fetchImage(`http://images.test:${port}/stall.jpg`, { ...options, timeoutMs: 400 }),
      'URL_TIMEOUT',
      /did not answer within 0\.4 seconds/,
    );
  });

  it('says the size limit it was given, and names what failed on the network', async () => {
    await refused(
      fetchImage(`http://images.test:${port}/big.jpg`, options),
      'UPLOAD_TOO_LARGE',
      /larger than the limit of 500 KB/,
    );
    await refused(
      fetchImage('http://nowhere.test/cat.jpg', options),
      'URL_FETCH_FAILED',
      /ENOTFOUND nowhere\.test/,
    );
    await refused(fetchImage('ftp://images.test/cat.jpg', options), 'URL_NOT_ALLOWED', /not ftp:/);
  });

  it('lets every address through for the CLI (allowPrivate), still by the checked addresses', async () => {
    const bytes = await fetchImage(`http://localhost:${port}/cat.jpg`, {
      maxBytes: 500_000,
      allowPrivate: true,
    });
    assert.deepEqual(bytes, image);
    onlyLoopback(guard.attempts);
  });
});
