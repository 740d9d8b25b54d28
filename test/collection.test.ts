import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { indexCollection } from '../src/collection/build.ts';
import { Collection } from '../src/collection/collection.ts';
import { CollectionError } from '../src/index.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';

let dir: string;
let home: string;
let model: string;
let images: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-collection-'));
  home = join(dir, 'home');
  images = join(dir, 'images');
  // The whole 4 × 16 × 16 feature map (1,024 dimensions): enough to tell images apart.
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  await writeClassFolders(images, 3, 6);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('collections', () => {
  it('indexes a folder: labels from sub-folders, every image finds itself first', async () => {
    const { collection, report, total } = await indexCollection('folder', images, { model, home });
    assert.equal(total, 18);
    assert.equal(report.added, 18);
    assert.deepEqual(
      collection.labels().map((l) => l.label),
      ['class0', 'class1', 'class2'],
    );
    const hits = await collection.search(join(images, 'class1', 'img003.jpg'), { k: 3 });
    assert.equal(hits[0]!.path, 'class1/img003.jpg');
    assert.ok(hits[0]!.similarity > 0.999);
    assert.deepEqual(hits[0]!.labels, ['class1']);
    assert.equal(hits[0]!.width, 64);
    await collection.close();
  });

  it('adds and removes without rebuilding, and both survive reopening', async () => {
    const { collection } = await indexCollection('updates', images, { model, home });
    await collection.close();
    const extra = join(dir, 'extra.jpg');
    await copyFile(join(images, 'class2', 'img000.jpg'), extra);
    let c = await Collection.open('updates', { home });
    const report = await c.addImages([{ path: extra, labels: ['new'] }]);
    await c.updateIndex();
    assert.equal(report.duplicates.length, 1, 'same bytes as class2/img000.jpg');
    assert.equal(await c.removeImages(['class0/img000.jpg', 5]), 2);
    await c.close();
    c = await Collection.open('updates', { home });
    assert.equal(c.size, 17);
    const hits = await c.search(join(images, 'class0', 'img000.jpg'), { k: 17 });
    assert.ok(!hits.some((h) => h.path === 'class0/img000.jpg' || h.id === 5));
    assert.ok(hits.some((h) => h.path === extra && h.labels[0] === 'new'));
    await c.close();
  });

  it('skips and reports corrupt files, reports exact duplicates', async () => {
    const folder = join(dir, 'mixed');
    await writeClassFolders(folder, 1, 3);
    const good = await readFile(join(folder, 'class0', 'img000.jpg'));
    await writeFile(join(folder, 'class0', 'broken.jpg'), good.subarray(0, good.length / 3));
    await writeFile(join(folder, 'class0', 'copy.jpg'), good);
    const { collection, report } = await indexCollection('mixed', folder, { model, home });
    assert.equal(report.added, 4);
    assert.deepEqual(
      report.failures.map((f) => f.path.split('/').pop()),
      ['broken.jpg'],
    );
    assert.match(report.failures[0]!.error.message, /truncated or corrupt/);
    assert.deepEqual(report.duplicates, [{ path: 'class0/img000.jpg', sameAs: 'class0/copy.jpg' }]);
    await collection.close();
  });

  it('refuses an unknown collection and a model change, naming what to do', async () => {
    await assert.rejects(Collection.open('nope', { home }), (error: unknown) => {
      assert.ok(error instanceof CollectionError);
      assert.equal(error.code, 'COLLECTION_NOT_FOUND');
      assert.match(
        error.message,
        /No collection "nope" \(there are: .*folder.*\); create it with ris index <folder> --collection nope/,
      );
      return true;
    });
    const other = await writeTinyModel(dir, 'other', 'float', tinyConfig({ tensor: 'pooled' }));
    await assert.rejects(indexCollection('folder', images, { model: other, home }), (error: unknown) => {
      assert.ok(error instanceof CollectionError);
      assert.equal(error.code, 'MODEL_MISMATCH');
      return true;
    });
  });

  it('switches from exact search to a trained IVF-PQ index as it grows, and retrains on demand', async () => {
    const big = join(dir, 'big');
    await writeClassFolders(big, 8, 260, 32, 7); // 2,080 images: past the exact-search threshold
    const { collection } = await indexCollection('big', big, { model, home, numPartitions: 16 });
    assert.equal(collection.indexState.kind, 'ivf-pq');
    assert.equal(collection.indexState.trainedOn, 2080);
    const hits = await collection.search(join(big, 'class3', 'img010.jpg'), { k: 5 });
    assert.equal(hits[0]!.path, 'class3/img010.jpg');
    await collection.retrain();
    assert.equal(collection.indexState.indexed, 2080);
    await collection.close();
  });
});
