import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { createCollection, rescan } from '../src/collection/library.ts';
import { localStore } from '../src/collection/local-store.ts';
import { postgresStore } from '../src/collection/postgres/store.ts';
import { emptyRescanReport } from '../src/collection/rescan.ts';
import {
  type CollectionStore,
  isLibraryCollection,
  type LibraryCollection,
} from '../src/collection/store.ts';
import { startTestDatabase, type TestDatabase } from './fixtures/pg-server.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { guardConnections } from './network-guard.ts';

/**
 * A rescan of some paths (what a watch batch is) reads only the stored images at or below them, in both
 * stores: a folder's neighbours whose names begin alike ('a' beside 'ab', 'a b', 'a.jpg', 'a-', 'a_', '%')
 * are neither read nor touched, whatever the database's ordering of '/' and of accented names.
 */

let dir: string;
let model: string;
let database: TestDatabase;
const guard = guardConnections();
const stores: CollectionStore[] = [];

const subjects: { name: string; open: () => CollectionStore }[] = [
  { name: 'local', open: () => localStore(join(dir, 'home')) },
  { name: 'postgres', open: () => postgresStore(database.url, { home: join(dir, 'pg-home') }) },
];

/** Files of the folder: the 'a' folder and its look-alike neighbours. */
const FILES = [
  'a/x.jpg',
  'a/b/y.jpg',
  'a/é/t.jpg',
  'a.jpg',
  'ab/z.jpg',
  'a b/w.jpg',
  'a-/v.jpg',
  'a_/s.jpg',
  '%/r.jpg',
  'é/u.jpg',
  'éa/q.jpg',
];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-rescan-scope-'));
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  database = await startTestDatabase();
});

after(async () => {
  for (const store of stores) await store.close().catch(() => undefined);
  await database?.close();
  guard.restore();
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(
    guard.attempts.filter((a) => !a.allowed),
    [],
    'no connection left this machine',
  );
});

async function picture(seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(32 * 32 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * seed * 31 + seed * 97) % 251;
  return sharp(raw, { raw: { width: 32, height: 32, channels: 3 } })
    .jpeg()
    .toBuffer();
}

for (const subject of subjects) {
  describe(`a rescan of some paths: ${subject.name}`, () => {
    it('reads the stored images at or below them, never a neighbour whose name begins alike', async () => {
      const root = join(dir, `folder-${subject.name}`);
      for (const [i, file] of FILES.entries()) {
        await mkdir(dirname(join(root, file)), { recursive: true });
        await writeFile(join(root, file), await picture(i + 1));
      }
      const store = subject.open();
      stores.push(store);
      const collection = await createCollection(store, 'scoped', { model, root });
      assert.ok(isLibraryCollection(collection));
      assert.equal((await rescan(collection)).added, FILES.length);
      const under = async (paths: string[]) =>
        (await (collection as LibraryCollection).storedFiles(paths)).map((f) => f.path).sort();

      assert.deepEqual(await under(['a']), ['a/b/y.jpg', 'a/x.jpg', 'a/é/t.jpg']);
      assert.deepEqual(await under(['a.jpg']), ['a.jpg']);
      assert.deepEqual(await under(['a/b', 'é', 'a_']), ['a/b/y.jpg', 'a_/s.jpg', 'é/u.jpg']);
      assert.deepEqual(await under(['%']), ['%/r.jpg']);
      assert.deepEqual(await under(['a/x.jpg', 'a/x.jpg']), ['a/x.jpg'], 'a path named twice is read once');
      assert.deepEqual(await under(['nothing here']), []);
      assert.equal((await under([''])).length, FILES.length, "'' is the whole folder");
      assert.equal((await collection.storedFiles()).length, FILES.length);

      // A batch for 'a' (a watch's scope) while the neighbours changed: only 'a' is judged.
      await rm(join(root, 'ab/z.jpg'));
      await writeFile(join(root, 'a b/new.jpg'), await picture(100));
      await rm(join(root, 'a/x.jpg'));
      assert.deepEqual(await rescan(collection, { scope: [join(root, 'a')] }), {
        ...emptyRescanReport(),
        removed: 1,
        unchanged: 2,
      });
      // The whole folder then finds the rest.
      assert.deepEqual(await rescan(collection), {
        ...emptyRescanReport(),
        added: 1,
        removed: 1,
        unchanged: FILES.length - 2,
      });
      await collection.close();
    });
  });
}
