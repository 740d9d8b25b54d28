// Folder watching on real folders: a collection follows its folder through fs.watch (one watch per
// folder), settles partial writes, takes renames as moves, and sweeps for what the watches missed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { indexCollection } from '../src/collection/build.ts';
import type { Collection } from '../src/collection/collection.ts';
import {
  type FolderWatch,
  type WatchProgress,
  watchableFolder,
  watchFolder,
} from '../src/collection/folder-watch.ts';
import { createCollection, removeImages } from '../src/collection/library.ts';
import { localStore } from '../src/collection/local-store.ts';
import type { RescanReport } from '../src/collection/rescan.ts';
import { CollectionError } from '../src/errors.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';

/** Generous for a busy machine: the 5 s target is measured by npm run bench:watch, not here. */
const WAIT_MS = 15_000;

let dir: string;
let home: string;
let model: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-watch-'));
  home = join(dir, 'home');
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A JPEG unlike every other one made here (seeded). */
async function picture(seed: number, size = 48): Promise<Buffer> {
  const raw = Buffer.alloc(size * size * 3);
  for (let i = 0; i < raw.length; i++)
    raw[i] = (i * ((seed % 13) + 3) * 31 + seed * 97 + (i >> 7) * seed) % 251;
  return sharp(raw, { raw: { width: size, height: size, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

/** A collection indexed from a folder of its own (3 classes × 3 images), watched, with what it reported. */
async function watched(name: string, options: Parameters<typeof watchFolder>[1] = {}) {
  const folder = join(dir, `photos ${name} é`);
  await writeClassFolders(folder, 3, 3, 48, name.length);
  const { collection } = await indexCollection(name, folder, { model, home });
  const events: WatchProgress[] = [];
  const watch = await watchFolder(collection, {
    ...options,
    onProgress: (event) => {
      events.push(event);
      options.onProgress?.(event);
    },
  });
  await watch.started;
  return { folder, collection: collection as Collection, watch, events };
}

async function stored(collection: Collection): Promise<Map<string, { id: number; sha256: string }>> {
  return new Map((await collection.storedFiles()).map((f) => [f.path, { id: f.id, sha256: f.sha256 }]));
}

async function until(what: string, check: () => Promise<boolean>, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The batches' reports added up. */
function total(events: WatchProgress[]): Omit<RescanReport, 'failures'> & { failures: number } {
  const sum = { added: 0, reembedded: 0, removed: 0, moved: 0, excluded: 0, unchanged: 0, failures: 0 };
  for (const e of events) {
    if (e.type !== 'batch' || e.cause === 'start') continue;
    for (const key of ['added', 'reembedded', 'removed', 'moved', 'excluded', 'unchanged'] as const)
      sum[key] += e.report[key];
    sum.failures += e.report.failures.length;
  }
  return sum;
}

async function close(w: { watch: FolderWatch; collection: Collection }) {
  await w.watch.close();
  await w.collection.close();
}

describe('a watched folder', () => {
  it('new, changed, deleted and renamed images are followed; a rename keeps the id', async () => {
    const w = await watched('follows');
    const { folder, collection } = w;
    try {
      const before = await stored(collection);
      assert.equal(before.size, 9);

      const fresh = join(folder, 'class1', 'nouvelle photo é.jpg');
      await writeFile(fresh, await picture(1));
      await until('the new image is stored', async () =>
        (await stored(collection)).has('class1/nouvelle photo é.jpg'),
      );
      const hits = await collection.search(fresh, { k: 1 });
      assert.equal(hits[0]?.path, 'class1/nouvelle photo é.jpg', 'the new image is searchable');
      assert.ok(hits[0]!.similarity > 0.999);

      const changedPath = join(folder, 'class0', 'img001.jpg');
      const oldId = before.get('class0/img001.jpg')!.id;
      await writeFile(changedPath, await picture(2));
      await until('the changed image is embedded again', async () => {
        const now = (await stored(collection)).get('class0/img001.jpg');
        return now !== undefined && now.id !== oldId;
      });
      assert.equal((await collection.search(changedPath, { k: 1 }))[0]?.path, 'class0/img001.jpg');

      const gone = join(folder, 'class2', 'img000.jpg');
      const goneBytes = await readFile(gone);
      const goneId = before.get('class2/img000.jpg')!.id;
      await rm(gone);
      await until(
        'the deleted image is removed',
        async () => !(await stored(collection)).has('class2/img000.jpg'),
      );
      const after = await collection.search(goneBytes, { k: 20 });
      assert.ok(!after.some((hit) => hit.id === goneId), 'a deleted image is no longer answered');

      const movedId = before.get('class0/img002.jpg')!.id;
      await mkdir(join(folder, 'class3'));
      await rename(join(folder, 'class0', 'img002.jpg'), join(folder, 'class3', 'renamed ü.jpg'));
      await until('the moved image has its new path', async () =>
        (await stored(collection)).has('class3/renamed ü.jpg'),
      );
      const moved = (await stored(collection)).get('class3/renamed ü.jpg')!;
      assert.equal(moved.id, movedId, 'a moved file keeps its id');
      assert.deepEqual((await collection.get(movedId))?.labels, ['class3'], 'labels follow the folder rule');
      assert.equal(total(w.events).failures, 0);
    } finally {
      await close(w);
    }
  });

  it('a folder renamed with its images keeps their ids; new folders are watched, removed ones are not', async () => {
    const w = await watched('folders');
    const { folder, collection, watch } = w;
    try {
      const before = await stored(collection);
      assert.equal(watch.folders, 4, 'the folder and its 3 sub-folders, one watch each');
      await rename(join(folder, 'class1'), join(folder, 'renamed class'));
      await until('the images have their new paths', async () =>
        (await stored(collection)).has('renamed class/img000.jpg'),
      );
      const now = await stored(collection);
      for (const i of ['000', '001', '002'])
        assert.equal(now.get(`renamed class/img${i}.jpg`)?.id, before.get(`class1/img${i}.jpg`)?.id);
      assert.equal(now.size, 9);

      // A tree made at once: its folders are watched before, or read after, the files in them appear.
      const deep = join(folder, 'a', 'b', 'c');
      await mkdir(deep, { recursive: true });
      await writeFile(join(deep, 'deep.jpg'), await picture(3));
      await until('the image in the new tree is stored', async () =>
        (await stored(collection)).has('a/b/c/deep.jpg'),
      );
      assert.equal(watch.folders, 7);
      await writeFile(join(deep, 'later.jpg'), await picture(4));
      await until('a later image in the new tree is stored', async () =>
        (await stored(collection)).has('a/b/c/later.jpg'),
      );

      await rm(join(folder, 'a'), { recursive: true });
      await until('the removed tree is gone', async () => !(await stored(collection)).has('a/b/c/deep.jpg'));
      await until('its watches are gone', async () => watch.folders === 4);
      assert.equal((await stored(collection)).size, 9);
    } finally {
      await close(w);
    }
  });

  it('a file still being written is waited out, then embedded once', async () => {
    const w = await watched('partial');
    const { folder, collection } = w;
    try {
      const bytes = await picture(5, 256);
      const file = join(folder, 'class0', 'slow copy.jpg');
      const handle = await open(file, 'w');
      // Pieces a little further apart than the debounce: only the two looks can tell it is not done.
      const pieces = 6;
      const step = Math.ceil(bytes.length / pieces);
      for (let i = 0; i < pieces; i++) {
        await handle.write(bytes, i * step, Math.min(step, bytes.length - i * step), i * step);
        await new Promise((r) => setTimeout(r, 250));
      }
      await handle.close();
      await until('the copied image is stored', async () =>
        (await stored(collection)).has('class0/slow copy.jpg'),
      );
      const report = total(w.events);
      assert.equal(report.failures, 0, 'no half-written file was read');
      assert.equal(report.added, 1);
      assert.equal(report.reembedded, 0, 'embedded once, whole');
      const hit = (await collection.search(bytes, { k: 1 }))[0];
      assert.equal(hit?.path, 'class0/slow copy.jpg');
      assert.ok(hit.similarity > 0.999);
    } finally {
      await close(w);
    }
  });

  it('an image a user removed stays out until it changes', async () => {
    const w = await watched('excluded', { sweepIntervalMs: 500 });
    const { folder, collection, events } = w;
    try {
      const { removed } = await removeImages(collection, ['class2/img001.jpg']);
      assert.equal(removed, 1);
      const sweeps = () => events.filter((e) => e.type === 'batch' && e.cause === 'sweep').length;
      const seen = sweeps();
      await until('two sweeps ran', async () => sweeps() >= seen + 2);
      assert.ok(!(await stored(collection)).has('class2/img001.jpg'), 'the sweep left it out');
      await writeFile(join(folder, 'class2', 'img001.jpg'), await picture(6));
      await until('the changed file is back', async () =>
        (await stored(collection)).has('class2/img001.jpg'),
      );
    } finally {
      await close(w);
    }
  });

  it('the sweep finds what the watches missed (an overflowing event queue)', async () => {
    const w = await watched('overflow', { sweepIntervalMs: 3_000 });
    const { folder, collection } = w;
    try {
      // While this process is blocked, another makes more entries than the kernel queues for it
      // (fs.inotify.max_queued_events, 16,384 by default), then the image: its event is dropped.
      const queued = Number(
        (await readFile('/proc/sys/fs/inotify/max_queued_events', 'utf8').catch(() => '16384')).trim(),
      );
      const noise = join(folder, 'noise');
      await mkdir(noise);
      await writeFile(join(noise, 'marker.jpg'), await picture(10));
      await until('the new folder is taken in', async () =>
        (await stored(collection)).has('noise/marker.jpg'),
      );
      assert.equal(w.watch.folders, 5);
      const image = join(noise, 'after the flood.jpg');
      await writeFile(join(dir, 'late.jpg'), await picture(7));
      execFileSync(process.execPath, [
        '-e',
        `const fs = require('node:fs'); for (let i = 0; i < ${queued + 500}; i++) fs.closeSync(fs.openSync(${JSON.stringify(noise)} + '/n' + i + '.txt', 'w'));
         fs.copyFileSync(${JSON.stringify(join(dir, 'late.jpg'))}, ${JSON.stringify(image)});`,
      ]);
      const sweeps = () => w.events.filter((e) => e.type === 'batch' && e.cause === 'sweep').length;
      const seen = sweeps();
      await new Promise((r) => setTimeout(r, 1_500));
      if (sweeps() === seen)
        assert.ok(
          !(await stored(collection)).has('noise/after the flood.jpg'),
          'the event was lost, as meant',
        );
      await until('the sweep found the image', async () =>
        (await stored(collection)).has('noise/after the flood.jpg'),
      );
    } finally {
      await close(w);
    }
  });

  it('a folder that goes away removes nothing, and is followed again once it is back', async () => {
    const w = await watched('unplugged', { goneCheckMs: 200 });
    const { folder, collection, events } = w;
    const away = `${folder} away`;
    try {
      await rename(folder, away);
      await until('the watch says the folder is gone', async () =>
        events.some((e) => e.type === 'folder-gone'),
      );
      await new Promise((r) => setTimeout(r, 600));
      assert.equal((await stored(collection)).size, 9, 'nothing removed while the folder is away');
      await writeFile(join(away, 'class0', 'while away.jpg'), await picture(8));
      await rename(away, folder);
      await until('the watch says it is back', async () => events.some((e) => e.type === 'folder-back'));
      await until('what changed meanwhile is found', async () =>
        (await stored(collection)).has('class0/while away.jpg'),
      );
      await writeFile(join(folder, 'class1', 'after.jpg'), await picture(9));
      await until('it is watched again', async () => (await stored(collection)).has('class1/after.jpg'));
      assert.equal((await stored(collection)).size, 11);
    } finally {
      await close(w);
    }
  });
});

describe('what cannot be watched', () => {
  it('a collection without a folder of its own, and a folder that is gone, are refused with why', async () => {
    const store = localStore(home);
    const own = await createCollection(store, 'uploads-only', { model }, { home });
    try {
      assert.throws(
        () => watchableFolder(own),
        (error: unknown) =>
          error instanceof CollectionError &&
          error.code === 'NO_FOLDER' &&
          /no folder of its own/.test(error.message),
      );
      await assert.rejects(watchFolder(own), { code: 'NO_FOLDER' });
    } finally {
      await own.close();
    }
    const folder = join(dir, 'soon gone');
    await writeClassFolders(folder, 1, 2);
    const { collection } = await indexCollection('gone', folder, { model, home });
    try {
      await rm(folder, { recursive: true });
      assert.throws(
        () => watchableFolder(collection, { mustExist: true }),
        (error: unknown) =>
          error instanceof CollectionError && error.code === 'NO_IMAGES' && error.message.includes(folder),
      );
    } finally {
      await collection.close();
    }
  });
});
