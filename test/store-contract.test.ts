import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import sharp from 'sharp';
import { imagesToAdd, indexCollection } from '../src/collection/build.ts';
import {
  addUploads,
  createCollection,
  deleteCollection,
  removeImages,
  rescan,
} from '../src/collection/library.ts';
import { localStore } from '../src/collection/local-store.ts';
import { postgresStore } from '../src/collection/postgres/store.ts';
import { emptyRescanReport } from '../src/collection/rescan.ts';
import { type CollectionStore, type ImageCollection, isLibraryCollection } from '../src/collection/store.ts';
import { STAGING_DIR, stagingPath, type Upload, type UploadReport } from '../src/collection/uploads.ts';
import { type ArgumentError, ImageError, RisError } from '../src/index.ts';
import { listen } from '../src/server/serve.ts';
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

/** A rescan's report where nothing changed; each case spreads what did over it. */
const nothing = emptyRescanReport();

const codeOf = (code: string) => (error: unknown) => {
  assert.ok(error instanceof RisError, String(error));
  assert.equal((error as RisError).code, code, (error as Error).message);
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

/** JPEGs unlike the class folders' and unlike each other, one per seed. */
const pictures = new Map<number, Buffer>();
async function picture(seed: number): Promise<Buffer> {
  let bytes = pictures.get(seed);
  if (!bytes) {
    const raw = Buffer.alloc(48 * 48 * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * seed * 31 + seed * 97) % 251;
    bytes = await sharp(raw, { raw: { width: 48, height: 48, channels: 3 } })
      .jpeg()
      .toBuffer();
    pictures.set(seed, bytes);
  }
  return bytes;
}

/** Files as the server receives them: staged in the collection's own folder, then handed over. */
async function staged(
  collection: ImageCollection,
  files: { name: string; bytes: Uint8Array; labels?: string[]; index?: number }[],
): Promise<Upload[]> {
  await mkdir(join(collection.dir, STAGING_DIR), { recursive: true });
  const uploads: Upload[] = [];
  for (const { name, bytes, labels, index } of files) {
    const file = stagingPath(collection.dir);
    await writeFile(file, bytes);
    uploads.push({ name, file, labels, index });
  }
  return uploads;
}

/** How many files ris keeps for uploads: in the collections' uploads folders, or in the database. */
async function keptCopies(subject: Subject): Promise<number> {
  if (subject.name === 'local') {
    const collections = join(dir, 'home', 'collections');
    let n = 0;
    for (const name of await readdir(collections))
      n += (await readdir(join(collections, name, 'uploads')).catch(() => [])).length;
    return n;
  }
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    return Number((await client.query('SELECT count(*) AS n FROM ris_uploads')).rows[0].n);
  } finally {
    await client.end();
  }
}

for (const subject of subjects) {
  describe(`store contract, the library: ${subject.name}`, () => {
    it('takes files sent to it: each answered in order, same bytes skipped naming the image, bad files failed by their name', async () => {
      const store = storeOf(subject);
      const sent = await createCollection(store, 'sent', { model });
      assert.ok(isLibraryCollection(sent));
      assert.equal(sent.followsFolder, false);
      const [a, b, c] = [await picture(1), await picture(2), await picture(3)];
      const progress: { done: number; total: number }[] = [];
      const report = await addUploads(
        sent,
        await staged(sent, [
          { name: 'Été à la plage 1.jpg', bytes: a, labels: ['plage'] },
          { name: 'notes.txt', bytes: Buffer.from('not an image at all') },
          { name: '../../etc/b.jpg', bytes: b, labels: ['plage'] },
          { name: 'copy of Été.jpg', bytes: a },
          { name: 'truncated.jpg', bytes: c.subarray(0, 200) },
          { name: 'empty.jpg', bytes: new Uint8Array(0) },
        ]),
        { onProgress: (e) => e.type === 'upload' && progress.push({ done: e.done, total: e.total }) },
      );
      assert.deepEqual(
        report.added.map((x) => [x.index, x.name]),
        [
          [0, 'Été à la plage 1.jpg'],
          [2, '../../etc/b.jpg'],
        ],
      );
      assert.deepEqual(report.skipped, [
        {
          index: 3,
          name: 'copy of Été.jpg',
          reason: 'the same bytes as "Été à la plage 1.jpg", sent with it',
        },
      ]);
      assert.deepEqual(
        report.failed.map((f) => [f.index, f.name, f.code]),
        [
          [1, 'notes.txt', 'UNSUPPORTED_IMAGE'],
          [4, 'truncated.jpg', 'CORRUPT_IMAGE'],
          [5, 'empty.jpg', 'EMPTY_IMAGE'],
        ],
      );
      for (const failure of report.failed) {
        assert.ok(failure.message.includes(failure.name), failure.message);
        assert.ok(!failure.message.includes(dir), `no server path: ${failure.message}`);
      }
      assert.deepEqual(progress.at(-1), { done: 6, total: 6 });
      // Nothing left staged; searchable once answered; served back byte for byte; labelled as sent.
      assert.deepEqual(await readdir(join(sent.dir, STAGING_DIR)), []);
      const [first, second] = [report.added[0]!, report.added[1]!];
      const hit = (await sent.search(a, { k: 1 }))[0]!;
      assert.equal(hit.id, first.id);
      assert.ok(hit.similarity > 0.999);
      assert.ok(sent.isUpload(hit));
      assert.deepEqual(await sent.readImage(hit), a);
      assert.equal((await sent.thumbnail(hit)).subarray(8, 12).toString('latin1'), 'WEBP');
      assert.match(hit.path, /[0-9a-f]{16}-Été à la plage 1\.jpg$/);
      assert.match((await sent.get(second.id))!.path, /[0-9a-f]{16}-b\.jpg$/);
      assert.deepEqual(await sent.labels(), [{ label: 'plage', count: 2 }]);
      assert.equal(await keptCopies(subject), 2);
      // Sent again (another request, its files after two refused on arrival): skipped, naming the image.
      const again = await addUploads(sent, await staged(sent, [{ name: 'again.jpg', bytes: b, index: 2 }]));
      assert.deepEqual(again.added, []);
      assert.equal(again.skipped[0]!.index, 2);
      assert.match(
        again.skipped[0]!.reason,
        new RegExp(
          `^already in the collection: image ${second.id} \\([0-9a-f]{16}-b\\.jpg\\) has the same bytes$`,
        ),
      );
      assert.equal(await sent.count(), 2);
      assert.deepEqual(await readdir(join(sent.dir, STAGING_DIR)), []);
      await sent.close();
    });

    it('sent from two places at once, the same bytes are kept once', async () => {
      const [x, y] = [await storeOf(subject).open('sent'), await storeOf(subject).open('sent')];
      const bytes = await picture(4);
      // Models loaded and files staged first: both look for the bytes before either has stored them.
      await Promise.all([x.embedder(), y.embedder()]);
      const [forX, forY] = [
        await staged(x, [{ name: 'from x.jpg', bytes }]),
        await staged(y, [{ name: 'from y.jpg', bytes }]),
      ];
      const [p, q] = await Promise.all([addUploads(x, forX), addUploads(y, forY)]);
      assert.equal(p.added.length + q.added.length, 1, JSON.stringify([p, q]));
      const [added, skipped] = p.added.length ? [p, q] : [q, p];
      assert.match(
        skipped.skipped[0]!.reason,
        new RegExp(`^already in the collection: image ${added.added[0]!.id} `),
      );
      assert.equal(await x.count(), 3);
      assert.equal(await keptCopies(subject), 3);
      await x.close();
      await y.close();
    });

    it('removes a sent file with the copy ris kept; the same bytes come back as a new image', async () => {
      const sent = await storeOf(subject).open('sent');
      const bytes = await picture(2);
      const old = (await sent.search(bytes, { k: 1 }))[0]!;
      assert.deepEqual(await removeImages(sent, [old.id]), { removed: 1, notFound: [] });
      assert.equal(await sent.get(old.id), undefined);
      assert.equal(await keptCopies(subject), 2);
      await assert.rejects(sent.readImage(old), codeOf('IMAGE_NOT_FOUND'));
      assert.ok(isLibraryCollection(sent));
      assert.deepEqual(await sent.exclusions(), [], 'a sent file is not kept out of anything');
      assert.deepEqual(await removeImages(sent, [old.id]), { removed: 0, notFound: [old.id] });
      const back = await addUploads(sent, await staged(sent, [{ name: 'back.jpg', bytes }]));
      assert.equal(back.added.length, 1);
      assert.ok(back.added[0]!.id > old.id);
      assert.equal((await sent.search(bytes, { k: 1 }))[0]!.id, back.added[0]!.id);
      assert.deepEqual(await sent.readImage((await sent.get(back.added[0]!.id))!), bytes);
      // A collection that follows no folder has nothing to rescan.
      assert.deepEqual(await rescan(sent), nothing);
      assert.equal(await sent.count(), 3);
      // What a request killed mid-way left staged is removed when the collection is next opened, once it
      // is older than any request (an hour); a file of a request still arriving stays.
      const [stale, arriving] = [stagingPath(sent.dir), stagingPath(sent.dir)];
      await writeFile(stale, bytes);
      await writeFile(arriving, bytes);
      const twoHoursAgo = new Date(Date.now() - 7_200_000);
      await utimes(stale, twoHoursAgo, twoHoursAgo);
      await (await storeOf(subject).open('sent')).close();
      assert.deepEqual(await readdir(join(sent.dir, STAGING_DIR)), [basename(arriving)]);
      await rm(arriving);
      await sent.close();
    });

    it('follows its folder: a removed file stays out of rescans until it changes; a moved file keeps its id and vector', async () => {
      const root = join(dir, `followed-${subject.name}`);
      await writeClassFolders(root, 2, 3, 64, 11);
      const followed = await createCollection(storeOf(subject), 'followed', { model, root });
      assert.ok(isLibraryCollection(followed));
      assert.equal(followed.followsFolder, true);
      assert.deepEqual(await rescan(followed), { ...nothing, added: 6 });
      const idOf = async (file: string) => (await followed.search(join(root, file), { k: 1 }))[0]!;
      // Removed by hand: kept out, until the file changes.
      const removed = await idOf('class0/img001.jpg');
      assert.equal(removed.path, 'class0/img001.jpg');
      await removeImages(followed, [removed.id]);
      const onDisk = await stat(join(root, 'class0/img001.jpg'));
      assert.deepEqual(await followed.exclusions(), [
        { path: 'class0/img001.jpg', bytes: onDisk.size, mtimeMs: onDisk.mtimeMs },
      ]);
      assert.deepEqual(await rescan(followed), { ...nothing, excluded: 1, unchanged: 5 });
      assert.equal(await followed.count(), 5);
      await writeFile(join(root, 'class0/img001.jpg'), await picture(5));
      assert.deepEqual(await rescan(followed), { ...nothing, added: 1, unchanged: 5 });
      assert.deepEqual(await followed.exclusions(), []);
      assert.equal((await idOf('class0/img001.jpg')).path, 'class0/img001.jpg');
      // Moved to another folder: the same id and vector under the new path, labelled by it.
      const before = await idOf('class0/img002.jpg');
      const vectorOf = async (id: number) => {
        const { ids, vectors } = await followed.storedVectors();
        const row = ids.indexOf(id);
        const d = followed.manifest.dimension;
        return vectors.slice(row * d, (row + 1) * d);
      };
      const vector = await vectorOf(before.id);
      await rename(join(root, 'class0/img002.jpg'), join(root, 'class1/moved é.jpg'));
      assert.deepEqual(await rescan(followed), { ...nothing, moved: 1, unchanged: 5 });
      const moved = (await followed.get(before.id))!;
      assert.equal(moved.path, 'class1/moved é.jpg');
      assert.deepEqual(moved.labels, ['class1']);
      assert.deepEqual(await vectorOf(before.id), vector);
      assert.equal((await idOf('class1/moved é.jpg')).id, before.id);
      assert.deepEqual(await followed.readImage(moved), await readFile(join(root, 'class1/moved é.jpg')));
      // Touched but unchanged: read again, not embedded again; its new time is kept.
      const later = new Date(Date.now() + 60_000);
      await utimes(join(root, 'class1/img000.jpg'), later, later);
      assert.deepEqual(await rescan(followed), { ...nothing, unchanged: 6 });
      const file = (await followed.storedFiles()).find((f) => f.path === 'class1/img000.jpg')!;
      assert.equal(file.mtimeMs, (await stat(join(root, 'class1/img000.jpg'))).mtimeMs);
      // Gone from the folder: removed, and not kept out.
      await rm(join(root, 'class1/img001.jpg'));
      assert.deepEqual(await rescan(followed), { ...nothing, removed: 1, unchanged: 5 });
      assert.deepEqual(await followed.exclusions(), []);
      if (subject.name === 'postgres') {
        // Removed through a server without the folder (another machine): kept out by the size and time
        // the file had when embedded, which is how the machines with the folder see it.
        await rename(root, `${root}-elsewhere`);
        const elsewhere = await storeOf(subject).open('followed');
        assert.ok(isLibraryCollection(elsewhere));
        const file = (await elsewhere.storedFiles()).find((f) => f.path === 'class1/img000.jpg')!;
        await removeImages(elsewhere, [file.id]);
        await elsewhere.close();
        await rename(`${root}-elsewhere`, root);
        assert.deepEqual(await rescan(followed), { ...nothing, excluded: 1, unchanged: 4 });
      }
      await followed.close();
    });

    it('deleting a collection removes the files ris kept for it, never the folder its images came from', async () => {
      const store = storeOf(subject);
      const sent = await store.open('sent');
      const own = sent.dir;
      await sent.close();
      assert.ok((await keptCopies(subject)) > 0);
      await deleteCollection(store, 'sent');
      assert.equal(await keptCopies(subject), 0);
      assert.equal(existsSync(own), false, 'its folder of ris is gone');
      assert.equal(await store.exists('sent'), false);
      const root = join(dir, `followed-${subject.name}`);
      const files = async () => [...(await readdir(root, { recursive: true }))].sort();
      const before = await files();
      await deleteCollection(store, 'followed');
      assert.deepEqual(await files(), before);
      assert.equal(before.length, 7);
    });
  });
}

describe('store contract: two servers on one PostgreSQL database', () => {
  it('a file sent through one is found, served and removed through the other', async () => {
    const token = 'contract-test-token-0123456789';
    const auth = { authorization: `Bearer ${token}` };
    const serve = (machine: string) =>
      listen({
        port: 0,
        store: storeOf(subjects[1]!),
        access: { writeToken: token },
        log: () => undefined,
        collectionOptions: { home: join(dir, machine) },
      });
    // A server needs a collection to start with; the one sent to is made through A once both run.
    const first = await createCollection(storeOf(subjects[1]!), 'served-first', { model });
    await first.close();
    // Two machines: each its own home (staging, derived files), one database.
    const [a, b] = [await serve('machine-a'), await serve('machine-b')];
    try {
      const models = (await (await fetch(`${a.url}/api/models`)).json()) as { name: string; label: string }[];
      const created = await fetch(`${a.url}/api/collections`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'shared', model: models.find((m) => m.label === 'tiny.onnx')!.name }),
      });
      assert.equal(created.status, 201);
      const send = async (base: string, files: { name: string; bytes: Buffer }[]) => {
        const body = new FormData();
        for (const file of files) body.append('image', new Blob([new Uint8Array(file.bytes)]), file.name);
        const response = await fetch(`${base}/api/collections/shared/images`, {
          method: 'POST',
          headers: auth,
          body,
        });
        assert.equal(response.status, 200);
        return (await response.json()) as UploadReport;
      };
      const [one, two] = [await picture(6), await picture(7)];
      const sent = await send(a.url, [
        { name: 'one é.jpg', bytes: one },
        { name: 'two.jpg', bytes: two },
      ]);
      assert.equal(sent.added.length, 2);
      const [idOne, idTwo] = [sent.added[0]!.id, sent.added[1]!.id];
      // Machine B has never seen the collection nor the files: it finds, shows and serves them.
      const search = async (base: string, bytes: Buffer) => {
        const body = new FormData();
        body.append('image', new Blob([new Uint8Array(bytes)]), 'q.jpg');
        body.append('k', '1');
        const response = await fetch(`${base}/api/collections/shared/search`, { method: 'POST', body });
        assert.equal(response.status, 200);
        return ((await response.json()) as { results: { id: number; similarity: number }[] }).results;
      };
      assert.equal((await search(b.url, one))[0]!.id, idOne);
      const image = await fetch(`${b.url}/api/collections/shared/images/${idOne}`);
      assert.equal(image.status, 200);
      assert.deepEqual(Buffer.from(await image.arrayBuffer()), one);
      assert.match(image.headers.get('content-disposition') ?? '', /one/);
      const thumbnail = await fetch(`${b.url}/api/collections/shared/thumbnails/${idTwo}`);
      assert.equal(thumbnail.headers.get('content-type'), 'image/webp');
      // The same bytes sent through B are the image sent through A.
      const again = await send(b.url, [{ name: 'two again.jpg', bytes: two }]);
      assert.deepEqual(again.added, []);
      assert.match(again.skipped[0]!.reason, new RegExp(`image ${idTwo} \\([0-9a-f]{16}-two\\.jpg\\)`));
      // Removed through B: gone for A too, with its bytes.
      const removed = await fetch(`${b.url}/api/collections/shared/images/${idOne}`, {
        method: 'DELETE',
        headers: auth,
      });
      assert.equal(removed.status, 204);
      assert.equal((await fetch(`${a.url}/api/collections/shared/images/${idOne}`)).status, 404);
      assert.notEqual((await search(a.url, one))[0]!.id, idOne);
      const deleted = await fetch(`${b.url}/api/collections/shared`, { method: 'DELETE', headers: auth });
      assert.equal(deleted.status, 204);
      assert.equal(await keptCopies(subjects[1]!), 0);
      await deleteCollection(storeOf(subjects[1]!), 'served-first');
    } finally {
      await a.close();
      await b.close();
    }
  });
});

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
