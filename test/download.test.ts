import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { downloadVerified, Embedder, MODEL_REGISTRY, ModelError } from '../src/index.ts';
import { tinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback, noSharedData, sharedData } from './helpers.ts';
import { guardConnections } from './network-guard.ts';

// No test here may reach the real model sources, online or not: connections go to loopback or nowhere.
const guard = guardConnections();

const payload = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251));
const sha256 = createHash('sha256').update(payload).digest('hex');
let server: Server;
let base: string;
let dir: string;
const log: { path: string; range: string | undefined }[] = [];
let cutNext = 0;
let mirrorFile: string | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-download-'));
  server = createServer((req, res) => {
    log.push({ path: req.url!, range: req.headers.range });
    if (req.url === '/redirect') {
      res.writeHead(302, { location: '/file' }).end();
      return;
    }
    if (req.url!.startsWith('/mirror/') && mirrorFile) {
      void readFile(mirrorFile).then((bytes) =>
        res.writeHead(200, { 'content-length': bytes.length }).end(bytes),
      );
      return;
    }
    if (req.url === '/missing' || req.url!.startsWith('/missing')) {
      res.writeHead(404).end();
      return;
    }
    const body = req.url === '/wrong' ? Buffer.from(payload).fill(1, 0, 10) : payload;
    const match = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    const start = match ? Number(match[1]) : 0;
    res.writeHead(match ? 206 : 200, {
      'content-length': body.length - start,
      ...(match ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    if (cutNext > 0) {
      // Send part of the body, then drop the connection mid-transfer.
      const cut = cutNext;
      cutNext = 0;
      res.write(body.subarray(start, start + cut), () => res.destroy());
      return;
    }
    res.end(body.subarray(start));
  });
  base = await listenOnLoopback(server);
});
after(async () => {
  server.close();
  guard.restore();
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(
    guard.attempts.filter((a) => !a.allowed),
    [],
    'every connection went to this machine',
  );
});

describe('model download', () => {
  it('resumes a cut connection with an HTTP Range request and reports progress', async () => {
    log.length = 0;
    cutNext = 100_000;
    const target = join(dir, 'a', 'model.onnx');
    const progress: number[] = [];
    await downloadVerified(
      [`${base}/file`],
      target,
      { bytes: payload.length, sha256 },
      { onProgress: (p) => progress.push(p.receivedBytes) },
    );
    assert.deepEqual(await readFile(target), payload);
    assert.equal(log.length, 2);
    assert.equal(log[0]!.range, undefined);
    assert.match(log[1]!.range!, /^bytes=\d+-$/);
    assert.ok(Number(/\d+/.exec(log[1]!.range!)![0]) >= 65_536, 'resumed from what had arrived');
    assert.equal(progress.at(-1), payload.length);
    assert.deepEqual(await readdir(join(dir, 'a')), ['model.onnx'], 'no .part file left');
  });

  it('follows redirects and falls back to the next source', async () => {
    const target = join(dir, 'b', 'model.onnx');
    await downloadVerified([`${base}/missing`, `${base}/redirect`], target, {
      bytes: payload.length,
      sha256,
    });
    assert.deepEqual(await readFile(target), payload);
  });

  it('refuses a wrong checksum and leaves nothing in the cache', async () => {
    const target = join(dir, 'c', 'model.onnx');
    await assert.rejects(
      downloadVerified([`${base}/wrong`], target, { bytes: payload.length, sha256 }),
      (error: unknown) => {
        assert.ok(error instanceof ModelError);
        assert.equal(error.code, 'CHECKSUM_MISMATCH');
        assert.match(error.message, /differs from the expected/);
        return true;
      },
    );
    assert.deepEqual(await readdir(join(dir, 'c')), []);
  });

  it('reports a failed server as DOWNLOAD_FAILED, naming every source tried', async () => {
    const target = join(dir, 'd', 'model.onnx');
    await assert.rejects(
      downloadVerified([`${base}/missing`, 'http://127.0.0.1:9/none'], target, { bytes: 10, sha256 }),
      (error: unknown) => {
        assert.ok(error instanceof ModelError);
        assert.equal(error.code, 'DOWNLOAD_FAILED');
        assert.match(error.message, /\/missing: HTTP 404.*127\.0\.0\.1:9\/none/);
        return true;
      },
    );
    assert.ok(!existsSync(`${target}.part`));
  });

  it('replaces a corrupt cached model from a mirror, then loads it from the cache without a request', {
    skip: noSharedData,
  }, async () => {
    const entry = MODEL_REGISTRY['mobilenetv2-int8']!;
    const cacheDir = join(dir, 'cache');
    await mkdir(cacheDir, { recursive: true });
    await writeFile(join(cacheDir, entry.fileName), tinyModel()); // wrong content under the right name
    mirrorFile = join(sharedData, 'models', entry.fileName);
    log.length = 0;
    const embedder = await Embedder.create({
      model: 'mobilenetv2-int8',
      cacheDir,
      mirrors: [`${base}/mirror`],
    });
    assert.equal(embedder.dimension, 1280);
    assert.deepEqual(
      log.map((l) => l.path),
      ['/mirror/mobilenetv2-12-int8.onnx'],
    );
    await embedder.close();
    log.length = 0;
    await (
      await Embedder.create({ model: 'mobilenetv2-int8', cacheDir, mirrors: [`${base}/mirror`] })
    ).close();
    assert.equal(log.length, 0, 'the verified cached copy is used as is');
  });

  it('fails clearly when no source can deliver a model', async () => {
    await assert.rejects(
      Embedder.create({
        model: 'resnet50-int8',
        cacheDir: join(dir, 'empty'),
        mirrors: [`${base}/missing-mirror`],
        officialSources: false,
      }),
      (error: unknown) => {
        assert.ok(error instanceof ModelError);
        assert.equal(error.code, 'DOWNLOAD_FAILED');
        assert.match(
          error.message,
          /^Could not download resnet50-v1-12-int8\.onnx \(http:\/\/127\.0\.0\.1:\d+\/missing-mirror\/resnet50-v1-12-int8.onnx: HTTP 404\)/,
        );
        assert.match(error.message, /place a verified copy at .*resnet50-v1-12-int8\.onnx/);
        return true;
      },
    );
  });

  it('says a cached copy failed its sha256 check, with both hashes, before why no fresh one came', async () => {
    const entry = MODEL_REGISTRY['resnet50-int8']!;
    const cacheDir = join(dir, 'corrupt-cache');
    await mkdir(cacheDir, { recursive: true });
    const copy = Buffer.from('not the model at all');
    await writeFile(join(cacheDir, entry.fileName), copy);
    const found = createHash('sha256').update(copy).digest('hex');
    await assert.rejects(
      Embedder.create({
        model: 'resnet50-int8',
        cacheDir,
        mirrors: [`${base}/missing`],
        officialSources: false,
      }),
      (error: unknown) => {
        assert.ok(error instanceof ModelError);
        assert.equal(error.code, 'CHECKSUM_MISMATCH');
        assert.match(
          error.message,
          new RegExp(
            `^The copy of resnet50-int8 at .*corrupt-cache/${entry.fileName} failed its sha256 check \\(expected ${entry.sha256}, found ${found}\\), and no fresh copy could be downloaded`,
          ),
        );
        assert.match(error.message, /Delete that file and run again with network access/);
        return true;
      },
    );
  });

  it('says a model file that is not there is missing, with its full path', async () => {
    await assert.rejects(Embedder.create({ model: join(dir, 'no such', 'model.onnx') }), (error: unknown) => {
      assert.ok(error instanceof ModelError);
      assert.equal(error.code, 'MODEL_NOT_FOUND');
      assert.match(error.message, /^The model file .*\/no such\/model\.onnx does not exist; check the path/);
      return true;
    });
  });
});
