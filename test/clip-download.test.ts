import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, buildConnector } from 'undici';
import { downloadVerified, Embedder, MODEL_REGISTRY, ModelError, type RegistryFile } from '../src/index.ts';
import { tinyClipConfig } from './fixtures/tiny-clip.ts';
import { listenOnLoopback } from './helpers.ts';
import { guardConnections } from './network-guard.ts';

// Offline, as a user's laptop on a train is: names that do not resolve, a port that refuses, a host that
// accepts and then says nothing. Connections go to loopback or nowhere.
const guard = guardConnections();
let dir: string;
let silent: Server;
let silentPort: number;
let closedPort: number;
const held: Socket[] = [];

/**
 * A dispatcher standing in for the system's resolver: `*.invalid` names fail as getaddrinfo fails
 * offline (ENOTFOUND), `refused.test` reaches a closed port and any other name the silent server (over
 * HTTPS, a server that speaks plain HTTP: a failed handshake). Counts the connections asked for, by host.
 */
function offlineDispatcher(options: { headersTimeout?: number } = {}) {
  const asked = new Map<string, number>();
  const connect = buildConnector({});
  const agent = new Agent({
    headersTimeout: options.headersTimeout,
    connect(opts, callback) {
      asked.set(opts.hostname, (asked.get(opts.hostname) ?? 0) + 1);
      if (opts.hostname.endsWith('.invalid')) {
        const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${opts.hostname}`), {
          code: 'ENOTFOUND',
          syscall: 'getaddrinfo',
          hostname: opts.hostname,
        });
        return void setImmediate(() => callback(error, null));
      }
      const port = opts.hostname === 'refused.test' ? closedPort : silentPort;
      connect(
        { ...opts, hostname: '127.0.0.1', port: String(port) } as Parameters<typeof connect>[0],
        callback,
      );
    },
  });
  return { agent, asked };
}

const file = (folder: string, name: string, origin: string): RegistryFile => ({
  fileName: `${folder}/${name}`,
  bytes: 1000,
  sha256: '0'.repeat(64),
  urls: [`${origin}/${folder}/${name}`],
});

/** A CLIP-like entry of five files, all at `origin`. */
function register(name: string, origin: string) {
  MODEL_REGISTRY[name] = {
    ...file(name, 'vision_model.onnx', origin),
    config: { ...tinyClipConfig(), name },
    files: ['text_model.onnx', 'vocab.json', 'merges.txt'].map((f) => file(name, f, origin)),
    selfTest: {
      image: file(name, 'CLIP.png', origin),
      texts: ['a dog'],
      tokens: [[1, 2]],
      preprocessing: { grid: 1, means: [0, 0, 0], tolerance: 1 },
      probabilities: [1],
      tolerance: 0.01,
    },
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-offline-'));
  silent = createServer(() => {
    // Accepts the request and never answers.
  });
  silent.on('connection', (socket) => held.push(socket));
  silentPort = Number(new URL(await listenOnLoopback(silent)).port);
  const closed = createServer();
  await listenOnLoopback(closed);
  closedPort = (closed.address() as AddressInfo).port;
  closed.close(); // nothing listens there now: connections are refused
});
after(async () => {
  for (const name of ['clip-offline', 'clip-refused', 'clip-silent', 'clip-partial', 'clip-tls'])
    delete MODEL_REGISTRY[name];
  for (const socket of held) socket.destroy();
  silent.close();
  guard.restore();
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(
    guard.attempts.filter((a) => !a.allowed),
    [],
    'every connection went to this machine',
  );
});

describe('a model whose files cannot be downloaded', () => {
  it('offline: one line naming every missing file and the folder to put them in, within seconds', async () => {
    register('clip-offline', 'https://hf.invalid');
    const { agent, asked } = offlineDispatcher();
    const cacheDir = join(dir, 'cache');
    const start = performance.now();
    await assert.rejects(
      Embedder.create({ model: 'clip-offline', cacheDir, dispatcher: agent }),
      (error: unknown) => {
        assert.ok(error instanceof ModelError);
        assert.equal(error.code, 'DOWNLOAD_FAILED');
        assert.doesNotMatch(error.message, /\n/);
        assert.equal(
          error.message,
          `Cannot get the files of clip-offline (hf.invalid cannot be resolved (is this machine offline?)): ` +
            'put vision_model.onnx, text_model.onnx, vocab.json, merges.txt, CLIP.png (from https://hf.invalid/clip-offline/) ' +
            `in ${join(cacheDir, 'clip-offline')}, or run again with network access`,
        );
        return true;
      },
    );
    assert.ok(performance.now() - start < 5000, 'no long retries');
    assert.deepEqual([...asked], [['hf.invalid', 1]], 'the host was tried once, not once per file and retry');
    await agent.close();
  });

  it('names only the files still missing when some are in place', async () => {
    register('clip-partial', 'https://hf.invalid');
    const cacheDir = join(dir, 'cache-partial');
    // Files in place with the right checksum count as there.
    const entry = MODEL_REGISTRY['clip-partial']!;
    await mkdir(join(cacheDir, 'clip-partial'), { recursive: true });
    for (const name of ['vocab.json', 'merges.txt']) {
      const bytes = Buffer.from(`${name} contents`);
      await writeFile(join(cacheDir, 'clip-partial', name), bytes);
      const f = entry.files!.find((x) => x.fileName.endsWith(name))!;
      f.bytes = bytes.length;
      f.sha256 = (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex');
    }
    const { agent } = offlineDispatcher();
    await assert.rejects(
      Embedder.create({ model: 'clip-partial', cacheDir, dispatcher: agent }),
      /: put vision_model\.onnx, text_model\.onnx, CLIP\.png \(from https:\/\/hf\.invalid\/clip-partial\/\) in /,
    );
    await agent.close();
  });

  it('a refused connection is not retried', async () => {
    register('clip-refused', 'http://refused.test');
    const { agent, asked } = offlineDispatcher();
    await assert.rejects(
      Embedder.create({ model: 'clip-refused', cacheDir: join(dir, 'cache-refused'), dispatcher: agent }),
      /: Cannot get the files of clip-refused \(refused\.test refused the connection\): put vision_model\.onnx/,
    );
    assert.deepEqual([...asked], [['refused.test', 1]]);
    await agent.close();
  });

  it('a host that accepts and says nothing is given up after the wait, once', async () => {
    register('clip-silent', 'http://silent.test');
    const { agent, asked } = offlineDispatcher({ headersTimeout: 300 });
    const start = performance.now();
    await assert.rejects(
      Embedder.create({ model: 'clip-silent', cacheDir: join(dir, 'cache-silent'), dispatcher: agent }),
      /: Cannot get the files of clip-silent \(silent\.test accepted the connection but sent no answer\): put/,
    );
    assert.ok(performance.now() - start < 5000);
    assert.deepEqual([...asked], [['silent.test', 1]]);
    await agent.destroy();
  });

  it('a failed TLS handshake is not retried either, and says what it may be', async () => {
    register('clip-tls', 'https://tls.test');
    const { agent, asked } = offlineDispatcher();
    await assert.rejects(
      Embedder.create({ model: 'clip-tls', cacheDir: join(dir, 'cache-tls'), dispatcher: agent }),
      /: Cannot get the files of clip-tls \(the secure connection to tls\.test failed \([^\n)]*\); a proxy or a network that intercepts HTTPS\?\): put vision_model/,
    );
    assert.deepEqual([...asked], [['tls.test', 1]]);
    await agent.destroy();
  });

  it('a single download says the same, without retries', async () => {
    const { agent, asked } = offlineDispatcher();
    const target = join(dir, 'single', 'model.onnx');
    await assert.rejects(
      downloadVerified(
        ['https://a.invalid/model.onnx', 'https://b.invalid/model.onnx'],
        target,
        { bytes: 10 },
        { dispatcher: agent },
      ),
      (error: unknown) => {
        assert.ok(error instanceof ModelError);
        assert.equal(
          error.message,
          `Could not download model.onnx (https://a.invalid/model.onnx: a.invalid cannot be resolved (is this machine offline?); ` +
            `https://b.invalid/model.onnx: b.invalid cannot be resolved (is this machine offline?)); check the network, or place a verified copy at ${target}`,
        );
        return true;
      },
    );
    assert.deepEqual(
      [...asked],
      [
        ['a.invalid', 1],
        ['b.invalid', 1],
      ],
    );
    await assert.rejects(readFile(`${target}.part`), { code: 'ENOENT' });
    await agent.close();
  });
});
