import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { MODEL_REGISTRY } from '../src/index.ts';
import { noSharedData, sharedData } from './helpers.ts';

const bin = join(import.meta.dirname, '..', 'bin', 'ris.js');
let dir: string;
const heldOut: { file: string; label: string }[] = [];

const ris = (...args: string[]) =>
  promisify(execFile)(process.execPath, [bin, ...args], {
    env: { ...process.env, RIS_HOME: join(dir, 'home'), XDG_CACHE_HOME: join(dir, 'cache') },
  });

describe('ris on 10 Caltech101 classes with mobilenetv2-int8', { skip: noSharedData }, () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ris-caltech-'));
    const entry = MODEL_REGISTRY['mobilenetv2-int8']!;
    await mkdir(join(dir, 'cache', 'ris', 'models'), { recursive: true });
    await copyFile(
      join(sharedData, 'models', entry.fileName),
      join(dir, 'cache', 'ris', 'models', entry.fileName),
    );
    // Every 9th class (not the background), 10 images indexed and 3 held out as queries.
    const classes = (await readdir(join(sharedData, 'caltech101')))
      .filter((c) => c !== 'BACKGROUND_Google')
      .sort()
      .filter((_, i) => i % 10 === 3)
      .slice(0, 10);
    for (const c of classes) {
      const files = (await readdir(join(sharedData, 'caltech101', c))).sort();
      await mkdir(join(dir, 'images', c), { recursive: true });
      for (const f of files.slice(0, 10))
        await copyFile(join(sharedData, 'caltech101', c, f), join(dir, 'images', c, f));
      for (const f of files.slice(10, 13))
        heldOut.push({ file: join(sharedData, 'caltech101', c, f), label: c });
    }
    const sample = await readFile(
      join(dir, 'images', classes[0]!, (await readdir(join(dir, 'images', classes[0]!)))[0]!),
    );
    await writeFile(join(dir, 'images', classes[0]!, 'corrupt.jpg'), sample.subarray(0, sample.length / 2));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('indexes, skips the corrupt JPEG, and finds held-out images among their own class', async () => {
    const { stdout } = await ris(
      'index',
      join(dir, 'images'),
      '--collection',
      'c10',
      '--model',
      'mobilenetv2-int8',
    );
    assert.match(stdout, /collection c10: 100 images \(100 added of 101 found\)/);
    assert.match(
      stdout,
      /skipped 1 unreadable image:\n {2}.*corrupt\.jpg: The image is truncated or corrupt/,
    );
    let same = 0;
    for (const { file, label } of heldOut) {
      const hits = JSON.parse((await ris('search', 'c10', file, '-k', '5', '--json')).stdout) as {
        labels: string[];
      }[];
      same += hits.filter((h) => h.labels[0] === label).length;
    }
    const precision = same / (heldOut.length * 5);
    assert.ok(precision >= 0.7, `same-label share of the top 5: ${precision.toFixed(2)}`);
  });
});
