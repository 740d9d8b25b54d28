import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Random } from '../src/ann/random.ts';
import { indexCollection } from '../src/collection/build.ts';
import { Collection } from '../src/collection/collection.ts';
import { CollectionError, createNodeHnswBuilder, FlatIndex } from '../src/index.ts';
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
      (await collection.labels()).map((l) => l.label),
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
    assert.equal(report.duplicates.length, 1, 'same bytes as class2/img000.jpg');
    assert.deepEqual(await c.removeImages(['class0/img000.jpg', 5, 'nowhere.jpg']), {
      removed: 2,
      notFound: ['nowhere.jpg'],
    });
    await c.close();
    c = await Collection.open('updates', { home });
    assert.equal(await c.count(), 17);
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

  it('switches from exact search to HNSW as it grows (built on both cores), and rebuilds on demand', async () => {
    const big = join(dir, 'big');
    await writeClassFolders(big, 8, 260, 32, 7); // 2,080 images: past the exact-search threshold
    // As ris index builds it: on every core, images arriving class by class.
    const hnswBuilder = await createNodeHnswBuilder();
    const { collection } = await indexCollection('big', big, {
      model,
      home,
      index: { numPartitions: 16 },
      hnswBuilder,
    });
    assert.equal((await collection.status()).kind, 'hnsw');
    assert.equal((await collection.status()).trainedOn, 2080);
    assert.equal((await collection.status()).built.storage, 'int8');
    const hits = await collection.search(join(big, 'class3', 'img010.jpg'), { k: 5 });
    assert.equal(hits[0]!.path, 'class3/img010.jpg');

    // 10-recall@10 against exact search over the stored vectors, at the default breadth and a wider one.
    const stored = await collection.storedVectors();
    const d = collection.manifest.dimension;
    const exact = new FlatIndex({ dimension: d, distanceType: 'cosine' });
    exact.add(stored.vectors, stored.ids);
    const rows = new Random(3).sample(stored.ids.length, 100);
    const recall = async (efSearch?: number) => {
      let found = 0;
      for (const row of rows) {
        const query = stored.vectors.subarray(row * d, (row + 1) * d);
        const truth = new Set(exact.search(query, 10).ids);
        for (const hit of await collection.searchVector(query, { k: 10, efSearch }))
          if (truth.has(hit.id)) found++;
      }
      return found / (rows.length * 10);
    };
    const atDefault = await recall();
    const wide = await recall(400);
    assert.ok(atDefault >= 0.97, `10-recall@10 ${atDefault} at the default efSearch`);
    assert.ok(wide >= atDefault - 0.005 && wide >= 0.975, `10-recall@10 ${wide} at efSearch 400`);
    await assert.rejects(collection.searchVector(stored.vectors.subarray(0, d), { efSearch: 0 }), /efSearch/);

    await collection.retrain();
    assert.equal((await collection.status()).indexed, 2080);
    await collection.close();
    await hnswBuilder.close();
  });
});

describe('a collection indexed through a learned projection', () => {
  it('ris index --projection keeps the model vectors, indexes them projected, and finds images by them', async () => {
    const { ris } = await import('./ris-process.ts');
    const { learnLda, saveProjection } = await import('../src/embed/projection.ts');
    const projHome = join(dir, 'home-projection');
    // Learn LDA on the raw vectors of a plain collection, then index a new collection through it.
    const { collection: plain } = await indexCollection('plain', images, { model, home: projHome });
    const { vectors, labels } = await plain.storedVectors();
    const names = [...new Set(labels.map((l) => l[0]!))];
    const projection = learnLda(
      vectors,
      Int32Array.from(labels, (l) => names.indexOf(l[0]!)),
      plain.manifest.dimension,
      {
        shrinkage: 0.3,
        modelId: plain.manifest.modelId,
      },
    );
    await plain.close();
    const file = join(dir, 'projection.json');
    await saveProjection(file, projection);
    const run = await ris(projHome, [
      'index',
      images,
      '--collection',
      'projected',
      '--model',
      model,
      '--projection',
      file,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const info = await ris(projHome, ['collections', 'info', 'projected']);
    assert.match(info.stdout, /projection {2}lda to 2 dimensions/);
    const c = await Collection.open('projected', { home: projHome });
    assert.equal(
      (await c.storedVectors()).vectors.length,
      18 * c.manifest.dimension,
      'the model vectors are kept',
    );
    const hits = await c.search(join(images, 'class1', 'img002.jpg'), { k: 6 });
    assert.ok(
      hits.every((h) => h.labels[0] === 'class1'),
      `same-class neighbours: ${hits.map((h) => h.labels)}`,
    );
    await c.close();
    const other = await ris(projHome, ['index', images, '--collection', 'plain', '--projection', file]);
    assert.equal(other.code, 2);
    assert.match(other.stderr, /exists without a projection; leave out --projection/);
  });
});
