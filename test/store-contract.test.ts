import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { imagesToAdd, indexCollection } from '../src/collection/build.ts';
import { localStore } from '../src/collection/local-store.ts';
import { postgresStore } from '../src/collection/postgres/store.ts';
import type { CollectionStore, ImageCollection } from '../src/collection/store.ts';
import { ArgumentError, CollectionError, ImageError } from '../src/index.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { startTestDatabase, type TestDatabase } from './fixtures/pg-server.ts';
import { tinyConfig, tinyModel, writeTinyModel } from './fixtures/tiny-models.ts';
import { guardConnections } from './network-guard.ts';

/**
 * The contract of a collection store (src/collection/store.ts), run against the local store (SQLite and
 * index files) and the Postgres store (PGlite over the wire protocol, or RIS_TEST_DATABASE_URL): the same
 * calls must give the same answers, and the same errors with the same codes.
 */

let dir: string;
let images: string;
let model: string;
let database: TestDatabase;
const guard = guardConnections();

interface Subject {
  name: 'local' | 'postgres';
  /** A store object; each call gives a new one, as a new process would open. */
  open: () => CollectionStore;
  opened: CollectionStore[];
}

const subjects: Subject[] = [
  { name: 'local', open: () => localStore(join(dir, 'home')), opened: [] },
  { name: 'postgres', open: () => postgresStore(database.url, { home: join(dir, 'pg-home') }), opened: [] },
];

function storeOf(subject: Subject): CollectionStore {
  const store = subject.open();
  subject.opened.push(store);
  return store;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-contract-'));
  images = join(dir, 'images');
  // The whole 4 × 16 × 16 feature map (1,024 dimensions): enough to tell images apart.
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  await writeClassFolders(images, 3, 6);
  database = await startTestDatabase();
});

after(async () => {
  for (const subject of subjects)
    for (const store of subject.opened) await store.close().catch(() => undefined);
  await database?.close();
  guard.restore();
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(
    guard.attempts.filter((a) => !a.allowed),
    [],
    'no connection left this machine',
  );
});

const codeOf = (code: string) => (error: unknown) => {
  assert.ok(error instanceof CollectionError || error instanceof ArgumentError, String(error));
  assert.equal((error as CollectionError).code, code, (error as Error).message);
  return true;
};

for (const subject of subjects) {
  describe(`store contract: ${subject.name}`, () => {
    it('indexes a folder: labels from sub-folders, every image finds itself first', async () => {
      const store = storeOf(subject);
      const { collection, report, total } = await indexCollection('folder', images, { model, store });
      assert.equal(total, 18);
      assert.equal(report.added, 18);
      assert.equal(report.ids.length, 18);
      assert.equal(await collection.count(), 18);
      assert.deepEqual(await collection.labels(), [
        { label: 'class0', count: 6 },
        { label: 'class1', count: 6 },
        { label: 'class2', count: 6 },
      ]);
      for (const file of ['class0/img000.jpg', 'class1/img003.jpg', 'class2/img005.jpg']) {
        const hits = await collection.search(join(images, file), { k: 3 });
        assert.equal(hits.length, 3);
        assert.equal(hits[0]!.path, file);
        assert.ok(hits[0]!.similarity > 0.999, `${hits[0]!.similarity}`);
        assert.ok(hits[0]!.distance <= hits[1]!.distance && hits[1]!.distance <= hits[2]!.distance);
      }
      const hit = (await collection.search(join(images, 'class1', 'img003.jpg'), { k: 1 }))[0]!;
      assert.deepEqual(hit.labels, ['class1']);
      assert.equal(hit.width, 64);
      assert.equal(hit.height, 64);
      assert.equal(hit.absolutePath, join(images, 'class1', 'img003.jpg'));
      const bytes = await readFile(join(images, 'class1', 'img003.jpg'));
      assert.equal(hit.bytes, bytes.length);
      assert.deepEqual(await collection.readImage(hit), bytes);
      const thumbnail = await collection.thumbnail(hit);
      assert.equal(thumbnail.subarray(8, 12).toString('latin1'), 'WEBP');
      const { distance: _d, similarity: _s, ...record } = hit;
      assert.deepEqual(await collection.get(hit.id), record);
      assert.equal(await collection.get(999_999), undefined);
      await collection.close();
    });

    it('resumes: indexing the same folder again adds nothing', async () => {
      const store = storeOf(subject);
      const { collection, report } = await indexCollection('folder', images, { model, store });
      assert.equal(report.added, 0);
      assert.equal(report.alreadyPresent, 18);
      assert.equal(await collection.count(), 18);
      await collection.close();
    });

    it('adds with given labels, reports exact duplicates and corrupt files, removes by id and path', async () => {
      const store = storeOf(subject);
      const folder = join(dir, `mixed-${subject.name}`);
      await writeClassFolders(folder, 1, 3, 64, 5);
      const good = await readFile(join(folder, 'class0', 'img000.jpg'));
      const { collection } = await indexCollection('mixed', folder, { model, store });
      const extra = join(dir, `extra-${subject.name}`);
      await mkdir(extra, { recursive: true });
      await writeFile(join(extra, 'broken.jpg'), good.subarray(0, good.length / 3));
      await writeFile(join(extra, 'copy.jpg'), good);
      await copyFile(join(images, 'class2', 'img001.jpg'), join(extra, 'new.jpg'));
      const report = await collection.addImages(
        await imagesToAdd([extra], collection.manifest.root, ['new', 'pet']),
      );
      assert.equal(report.added, 2);
      assert.deepEqual(
        report.failures.map((f) => f.path.split('/').pop()),
        ['broken.jpg'],
      );
      assert.match(report.failures[0]!.error.message, /truncated or corrupt/);
      assert.deepEqual(report.duplicates, [{ path: join(extra, 'copy.jpg'), sameAs: 'class0/img000.jpg' }]);
      assert.deepEqual(
        (await collection.labels()).map((l) => `${l.label}:${l.count}`),
        ['class0:3', 'new:2', 'pet:2'],
      );
      const [copyId, newId] = report.ids as [number, number];
      assert.deepEqual(await collection.removeImages([copyId, 'class0/img001.jpg', 'nowhere.jpg']), {
        removed: 2,
        notFound: ['nowhere.jpg'],
      });
      assert.equal(await collection.count(), 3);
      assert.equal(await collection.get(copyId), undefined);
      const hits = await collection.search(join(folder, 'class0', 'img000.jpg'), { k: 10 });
      assert.deepEqual(
        hits.map((h) => h.path).sort(),
        ['class0/img000.jpg', 'class0/img002.jpg', join(extra, 'new.jpg')].sort(),
      );
      assert.ok(!hits.some((h) => h.id === copyId));
      // Ids are never reused: the next image gets a new one.
      const again = await collection.addImages([{ path: join(extra, 'copy.jpg') }]);
      assert.equal(again.added, 1);
      assert.ok(again.ids[0]! > Math.max(copyId, newId), `${again.ids[0]} after ${copyId}, ${newId}`);
      await collection.close();
    });

    it('reopens from a new store object with the same contents and answers', async () => {
      const first = storeOf(subject);
      const a = await first.open('folder');
      const before = await a.search(join(images, 'class0', 'img002.jpg'), { k: 5 });
      const vectorsBefore = await a.storedVectors();
      await a.close();
      await first.close();
      const second = storeOf(subject);
      assert.deepEqual(await second.list(), ['folder', 'mixed']);
      assert.equal(await second.exists('folder'), true);
      assert.equal(await second.exists('nope'), false);
      const b = await second.open('folder');
      assert.equal(await b.count(), 18);
      const after = await b.search(join(images, 'class0', 'img002.jpg'), { k: 5 });
      assert.deepEqual(
        after.map((h) => [h.id, h.path]),
        before.map((h) => [h.id, h.path]),
      );
      const vectors = await b.storedVectors();
      assert.deepEqual(vectors.ids, vectorsBefore.ids);
      assert.deepEqual(vectors.vectors, vectorsBefore.vectors);
      assert.equal(vectors.vectors.length, 18 * b.manifest.dimension);
      assert.equal(vectors.paths.length, 18);
      // Seeded pages: the same seed gives the same order, pages never repeat an image.
      const page0 = await b.sample(7, 0, 10);
      const page1 = await b.sample(7, 1, 10);
      assert.equal(page0.total, 18);
      assert.equal(page0.images.length + page1.images.length, 18);
      assert.equal(new Set([...page0.images, ...page1.images].map((r) => r.id)).size, 18);
      assert.deepEqual(
        (await b.sample(7, 0, 10)).images.map((r) => r.id),
        page0.images.map((r) => r.id),
      );
      await b.close();
    });

    it('refuses an unknown collection, a second one of the same name, and a changed model file', async () => {
      const store = storeOf(subject);
      await assert.rejects(store.open('nope'), (error: unknown) => {
        codeOf('COLLECTION_NOT_FOUND')(error);
        assert.match((error as Error).message, /No collection "nope".*\(there are: folder, mixed\)/);
        return true;
      });
      await assert.rejects(store.create('folder', { model, root: images }), codeOf('COLLECTION_EXISTS'));
      await assert.rejects(store.create('bad name!', { model, root: images }), codeOf('INVALID_ARGUMENT'));
      const own = join(dir, `model-${subject.name}`);
      await mkdir(own, { recursive: true });
      const ownModel = await writeTinyModel(
        own,
        'tiny',
        'float',
        tinyConfig({ tensor: 'features', pooling: 'none' }),
      );
      const { collection } = await indexCollection('changing', images, { model: ownModel, store });
      await collection.close();
      await writeFile(ownModel, tinyModel('float', 99)); // same name, other weights
      const reopened = await store.open('changing');
      await assert.rejects(reopened.embedder(), codeOf('MODEL_MISMATCH'));
      await assert.rejects(reopened.search(join(images, 'class0', 'img000.jpg')), codeOf('MODEL_MISMATCH'));
      await reopened.close();
      const other = await writeTinyModel(
        dir,
        `other-${subject.name}`,
        'float',
        tinyConfig({ tensor: 'pooled' }),
      );
      await assert.rejects(
        indexCollection('folder', images, { model: other, store }),
        codeOf('MODEL_MISMATCH'),
      );
    });

    it('an empty collection says so when searched; deleting one removes it', async () => {
      const store = storeOf(subject);
      const empty = await store.create('empty', { model, root: images });
      assert.equal(await empty.count(), 0);
      assert.deepEqual(await empty.labels(), []);
      assert.equal((await empty.sample(1, 0, 5)).total, 0);
      await assert.rejects(empty.search(join(images, 'class0', 'img000.jpg')), (error: unknown) => {
        codeOf('EMPTY_COLLECTION')(error);
        assert.match((error as Error).message, /has no images yet; add some with ris add empty/);
        return true;
      });
      await assert.rejects(empty.searchVector(new Float32Array(3)), (error: unknown) => {
        assert.equal((error as ArgumentError).code, 'DIMENSION_MISMATCH');
        assert.match(
          (error as Error).message,
          /Expected a query vector of 1024 values \(the model of "empty"\)/,
        );
        return true;
      });
      await empty.close();
      await store.delete('empty');
      assert.equal(await store.exists('empty'), false);
      await assert.rejects(store.delete('empty'), codeOf('COLLECTION_NOT_FOUND'));
    });

    it('moves to an approximate index as it grows, and retrains it on demand', {
      timeout: 180_000,
    }, async () => {
      const store = storeOf(subject);
      const big = join(dir, 'big');
      if (subject.name === 'local') await writeClassFolders(big, 6, 50, 32, 7);
      // 'ivf-pq' is approximate from 256 images: IVF-PQ locally, pgvector's HNSW in PostgreSQL.
      const { collection } = await indexCollection('big', big, { model, store, index: { kind: 'ivf-pq' } });
      const status = await collection.status();
      assert.equal(status.kind, subject.name === 'local' ? 'ivf-pq' : 'hnsw');
      assert.equal(status.indexed, 300);
      for (const file of ['class0/img000.jpg', 'class4/img031.jpg']) {
        const hits = await collection.search(join(big, file), { k: 5 });
        assert.equal(hits[0]!.path, file);
      }
      await collection.retrain();
      assert.equal((await collection.status()).kind, status.kind);
      assert.equal(
        (await collection.search(join(big, 'class2/img010.jpg'), { k: 1 }))[0]!.path,
        'class2/img010.jpg',
      );
      await collection.close();
    });

    it('checks k and efSearch as the other store does, and takes efSearch whatever the index', async () => {
      const store = storeOf(subject);
      const c = await store.open('folder');
      await assert.rejects(
        c.searchVector(new Float32Array(c.manifest.dimension), { efSearch: 0 }),
        /Expected efSearch to be/,
      );
      const first = await c.search(join(images, 'class1/img002.jpg'), { k: 3, efSearch: 300 });
      assert.equal(first[0]!.path, 'class1/img002.jpg');
      await assert.rejects(
        c.searchVector(new Float32Array(c.manifest.dimension), { k: 0 }),
        /between 1 and 1000/,
      );
      await assert.rejects(
        c.searchVector(new Float32Array(c.manifest.dimension), { k: 1001 }),
        /between 1 and 1000/,
      );
      await c.close();
    });

    it('serves an image only while its file is the one indexed: not replaced, edited, linked away or a pipe', async () => {
      const folder = join(dir, `swap-${subject.name}`);
      await writeClassFolders(folder, 1, 5, 48, 17, 'swap');
      const store = storeOf(subject);
      const { collection } = await indexCollection('swapped', folder, { model, store });
      const { images: records } = await collection.sample(1, 0, 5);
      const byPath = new Map(records.map((r) => [r.path, r]));
      const file = (i: number) => join(folder, 'swap0', `img00${i}.jpg`);
      const record = (i: number) => byPath.get(`swap0/img00${i}.jpg`)!;
      assert.deepEqual(await collection.readImage(record(0)), await readFile(file(0)));
      const kept = join(dir, `kept-${subject.name}.jpg`);
      await copyFile(file(1), kept);
      // Replaced by a link to a file of the system, by another image, edited in place, by a pipe.
      await rm(file(1));
      await symlink('/etc/passwd', file(1));
      await rm(file(2));
      await copyFile(file(3), file(2));
      const edited = await readFile(file(3));
      edited[edited.length - 3] = edited[edited.length - 3]! ^ 0xff; // same size, other bytes
      await writeFile(file(3), edited);
      await rm(file(4));
      execFileSync('mkfifo', [file(4)]);
      for (const [i, how] of [
        [1, /\d+ bytes instead of \d+/],
        [2, /\d+ bytes instead of \d+|other content/],
        [3, /other content, of the same size/],
        [4, /no longer a regular file/],
      ] as const)
        await assert.rejects(collection.readImage(record(i)), (error: unknown) => {
          assert.ok(error instanceof ImageError, String(error));
          assert.equal(error.code, 'IMAGE_CHANGED');
          assert.match(error.message, how);
          assert.match((error as Error).message, /changed since it was indexed/);
          return true;
        });
      // A link to the very bytes indexed is the same image.
      await rm(file(1));
      await symlink(kept, file(1));
      assert.deepEqual(await collection.readImage(record(1)), await readFile(kept));
      await rm(file(0));
      await assert.rejects(collection.readImage(record(0)), { code: 'IMAGE_NOT_FOUND' });
      await collection.close();
    });
  });
}

describe('store contract: both stores answer alike', () => {
  it('the same images give the same ranking and similarities in both stores', async () => {
    const [local, pg] = [storeOf(subjects[0]!), storeOf(subjects[1]!)];
    const a: ImageCollection = await local.open('folder');
    const b: ImageCollection = await pg.open('folder');
    for (const file of ['class0/img004.jpg', 'class2/img000.jpg']) {
      const x = await a.search(join(images, file), { k: 18 });
      const y = await b.search(join(images, file), { k: 18 });
      assert.deepEqual(
        y.map((h) => h.path),
        x.map((h) => h.path),
      );
      for (const [i, hit] of y.entries()) assert.ok(Math.abs(hit.similarity - x[i]!.similarity) < 1e-5);
    }
    assert.deepEqual(await b.labels(), await a.labels());
    assert.equal(b.manifest.modelId, a.manifest.modelId);
    await a.close();
    await b.close();
  });
});
