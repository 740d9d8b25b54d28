// The library's writes under real processes: uploads, rescans and folder watching killed with SIGKILL
// (at the test-only pause points and at seeded random moments), two writers at once, and a second
// process changing a collection while a server watches its folder. After each, the invariants of
// crash-harness.ts hold and the collection says exactly what its folder and its uploads hold.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Random } from '../src/ann/random.ts';
import { Invariants } from './crash-harness.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { killLeftovers, ris, serveProcess, start } from './ris-process.ts';

const TOKEN = 'library-crash-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
/** Seeded random kills per watch test; RIS_CRASH_ROUNDS raises it, as for test/crash.test.ts. */
const ROUNDS = Number(process.env.RIS_CRASH_ROUNDS ?? 2);

let dir: string;
let model: string;
let nextSeed = 100;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-library-crash-'));
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
});
after(async () => {
  killLeftovers();
  await rm(dir, { recursive: true, force: true });
});

/** `count` new distinct JPEG files (2 classes) in a folder of their own. */
async function freshImages(count: number): Promise<string[]> {
  const seed = nextSeed++;
  const folder = join(dir, 'sets', `set${seed}`);
  return writeClassFolders(folder, 2, Math.ceil(count / 2), 48, seed, `s${seed}-`).then((files) =>
    files.slice(0, count),
  );
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The images rows, read from metadata.db directly. */
function rows(home: string, name: string): { id: number; path: string; sha256: string }[] {
  const db = new Database(join(home, 'collections', name, 'metadata.db'), { readonly: true });
  try {
    return db.prepare('SELECT id, path, sha256 FROM images ORDER BY id').all() as {
      id: number;
      path: string;
      sha256: string;
    }[];
  } finally {
    db.close();
  }
}

/** Image files under a folder, as a collection stores their paths. */
async function folderImages(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && /\.jpe?g$/i.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort();
}

/** The collection holds exactly its folder's images (less those left out), each once. */
async function matchesFolder(home: string, name: string, root: string, leftOut: string[] = []) {
  const stored = rows(home, name).map((r) => r.path);
  assert.equal(new Set(stored).size, stored.length, 'no path stored twice');
  assert.deepEqual(
    stored.sort(),
    (await folderImages(root)).filter((p) => !leftOut.includes(p)),
    'the collection holds what its folder holds',
  );
}

async function indexed(name: string, classes = 3, perClass = 4) {
  const home = join(dir, `home-${name}`);
  const root = join(dir, `photos ${name}`);
  await writeClassFolders(root, classes, perClass, 48, nextSeed++);
  const run = await ris(home, ['index', root, '--collection', name, '--model', model]);
  assert.equal(run.code, 0, run.stderr);
  const invariants = new Invariants(home, name);
  await invariants.check('after indexing');
  return { home, root, invariants };
}

function form(files: { name: string; bytes: Buffer }[]): FormData {
  const body = new FormData();
  for (const file of files) body.append('image', new Blob([new Uint8Array(file.bytes)]), file.name);
  return body;
}

interface UploadAnswer {
  added: { id: number; name: string }[];
  skipped: { name: string; reason: string }[];
  failed: { name: string; code: string }[];
}

async function upload(url: string, name: string, files: { name: string; bytes: Buffer }[]) {
  const response = await fetch(`${url}/api/collections/${name}/images`, {
    method: 'POST',
    headers: auth,
    body: form(files),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()) as UploadAnswer;
}

async function named(files: string[]) {
  return Promise.all(
    files.map(async (file, i) => ({ name: `photo ${i} é.jpg`, bytes: await readFile(file) })),
  );
}

/** Top hit of a search on a running server. */
async function top(url: string, name: string, bytes: Buffer) {
  const body = new FormData();
  body.append('image', new Blob([new Uint8Array(bytes)]), 'q.jpg');
  body.append('k', '1');
  const response = await fetch(`${url}/api/collections/${name}/search`, { method: 'POST', body });
  if (response.status !== 200) return undefined;
  const { results } = (await response.json()) as { results: { id: number; similarity: number }[] };
  return results[0];
}

/** Whether a running server answers `bytes` with the image stored at `path` first. */
async function answers(url: string, home: string, bytes: Buffer, path: string): Promise<boolean> {
  const row = rows(home, 'shared').find((r) => r.path === path);
  const hit = await top(url, 'shared', bytes);
  return row !== undefined && hit?.id === row.id && hit.similarity > 0.999;
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('kill -9 during an upload batch', () => {
  for (const step of ['upload:moved', 'upload:committed'] as const) {
    const kept = step === 'upload:committed';
    it(`killed at ${step}: the next start ${kept ? 'finishes' : 'drops'} the batch, and no file is left over`, async () => {
      const home = join(dir, `home-${step.replace(':', '-')}`);
      const made = await ris(home, ['collections', 'create', 'up', '--model', model]);
      assert.equal(made.code, 0, made.stderr);
      const uploads = join(home, 'collections', 'up', 'uploads');
      let server = await serveProcess(home, ['--collections', 'up'], { RIS_TOKEN: TOKEN });
      const first = await named(await freshImages(4));
      assert.equal((await upload(server.url, 'up', first)).added.length, 4);
      await server.kill();
      const invariants = new Invariants(home, 'up');
      await invariants.check('after a first batch');

      server = await serveProcess(home, ['--collections', 'up'], {
        RIS_TOKEN: TOKEN,
        RIS_TEST_PAUSE_AT: step,
      });
      const batch = await named(await freshImages(4));
      const answer = upload(server.url, 'up', batch).catch(() => undefined);
      assert.ok(await server.waitFor(`ris-paused-at ${step}`), `reached ${step}: ${server.stderr()}`);
      assert.equal((await readdir(uploads)).length, 8, 'the batch is in uploads/ when the kill comes');
      await server.kill();
      assert.equal(await answer, undefined, 'the client heard no success');

      await invariants.check(`upload killed at ${step}`);
      const stored = rows(home, 'up');
      assert.deepEqual(
        (await readdir(uploads)).sort(),
        stored.map((r) => r.path).sort(),
        'uploads/ holds exactly the stored images: the open removed the orphans',
      );
      const batchShas = batch.map((f) => sha256(f.bytes));
      const present = batchShas.filter((s) => stored.some((r) => r.sha256 === s));
      assert.equal(present.length, kept ? 4 : 0, kept ? 'a committed batch is kept' : 'no half-added image');

      // Sent again, the batch is added where it was dropped and skipped where it was kept.
      server = await serveProcess(home, ['--collections', 'up'], { RIS_TOKEN: TOKEN });
      try {
        const again = await upload(server.url, 'up', batch);
        assert.equal(again.added.length, kept ? 0 : 4);
        assert.equal(again.skipped.length, kept ? 4 : 0);
        for (const file of batch) assert.ok((await top(server.url, 'up', file.bytes))!.similarity > 0.999);
      } finally {
        await server.kill();
      }
      await invariants.check('after the batch was sent again');
    });
  }
});

describe('kill -9 during a rescan', () => {
  let c: Awaited<ReturnType<typeof indexed>>;
  before(async () => {
    c = await indexed('rescan');
  });
  for (const step of ['remove:committed', 'add:committed', 'add:committed@2']) {
    it(`killed at ${step}: the next rescan finishes it, moved files keep their ids`, async () => {
      const { home, root, invariants } = c;
      const before = new Map(rows(home, 'rescan').map((r) => [r.path, r.id]));
      const [movedFrom] = [...before.keys()];
      const movedTo = `moved ${step.replace(/[:@]/g, ' ')}.jpg`;
      await rename(join(root, movedFrom!), join(root, movedTo));
      const [, changed, gone] = [...before.keys()].filter((p) => p !== movedFrom);
      await copyFile((await freshImages(1))[0]!, join(root, changed!));
      await rm(join(root, gone!));
      const fresh = await freshImages(40);
      await mkdir(join(root, `new ${step}`));
      for (const [i, file] of fresh.entries()) await copyFile(file, join(root, `new ${step}`, `n${i}.jpg`));

      const killed = start(home, ['rescan', 'rescan'], { RIS_TEST_PAUSE_AT: step });
      assert.ok(await killed.waitFor('ris-paused-at'), `reached ${step}: ${killed.stderr()}`);
      await killed.kill();
      await invariants.check(`rescan killed at ${step}`);
      const after = new Map(rows(home, 'rescan').map((r) => [r.path, r.id]));
      assert.equal(after.get(movedTo), before.get(movedFrom!), 'the move was committed first');
      assert.ok(!after.has(gone!));
      const added = [...after.keys()].filter((p) => p.startsWith(`new ${step}/`)).length;
      assert.equal(
        added,
        { 'remove:committed': 0, 'add:committed': 15, 'add:committed@2': 31 }[step],
        'the changed file is embedded first, then batches of 16',
      );

      const next = await ris(home, ['rescan', 'rescan']);
      assert.equal(next.code, 0, next.stderr);
      await matchesFolder(home, 'rescan', root);
      assert.equal(rows(home, 'rescan').find((r) => r.path === movedTo)?.id, before.get(movedFrom!));
    });
  }
  it('the invariants hold after the last rescan', async () => {
    await c.invariants.check('after the rescans');
  });
});

describe('kill -9 during a watch burst', () => {
  it('killed at its first commit: the next start finishes the burst', async () => {
    const { home, root, invariants } = await indexed('burst');
    const watcher = start(home, ['watch', 'burst'], { RIS_TEST_PAUSE_AT: 'add:committed' });
    assert.ok(await watcher.waitFor('rescanned in'), watcher.stderr());
    const burst = join(root, 'burst');
    await mkdir(burst);
    for (const [i, file] of (await freshImages(40)).entries()) await copyFile(file, join(burst, `b${i}.jpg`));
    assert.ok(await watcher.waitFor('ris-paused-at add:committed'), watcher.stderr());
    await watcher.kill();
    await invariants.check('watch killed in a burst');
    assert.equal(rows(home, 'burst').filter((r) => r.path.startsWith('burst/')).length, 16);

    const again = start(home, ['watch', 'burst']);
    assert.ok(await again.waitFor('rescanned in'), again.stderr());
    assert.match(again.stderr(), /rescanned in [\d.]+ s: 24 added/);
    again.child.kill('SIGINT');
    const stopped = await again.exited;
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /stopping: what was embedded so far is kept/);
    await matchesFolder(home, 'burst', root);
    await invariants.check('after the next start');
  });

  it(`survives ${ROUNDS} kills at seeded random moments of bursts`, async () => {
    const { home, root, invariants } = await indexed('burst-random');
    const random = new Random(21);
    for (let round = 0; round < ROUNDS; round++) {
      const watcher = start(home, ['watch', 'burst-random']);
      assert.ok(await watcher.waitFor('rescanned in'), watcher.stderr());
      // A burst: new files, a changed one, a removed one, a renamed folder.
      const folder = join(root, `round ${round}`);
      await mkdir(folder);
      for (const [i, file] of (await freshImages(30)).entries())
        await copyFile(file, join(folder, `r${i}.jpg`));
      const old = rows(home, 'burst-random').filter((r) => !r.path.startsWith('round'));
      await copyFile((await freshImages(1))[0]!, join(root, old[0]!.path));
      await rm(join(root, old[1]!.path));
      if (round > 0) await rename(join(root, `round ${round - 1}`), join(root, `renamed ${round - 1}`));
      await new Promise((r) => setTimeout(r, 200 + random.int(1500)));
      await watcher.kill();
      await invariants.check(`round ${round}: killed during the burst`);
      const next = await ris(home, ['rescan', 'burst-random']);
      assert.equal(next.code, 0, next.stderr);
      await matchesFolder(home, 'burst-random', root);
    }
    await invariants.check('after the last round');
  });
});

describe('two clients uploading into one collection at once', () => {
  it('two servers of one collection, and two requests to one server: nothing lost, nothing twice', async () => {
    const home = join(dir, 'home-two');
    assert.equal((await ris(home, ['collections', 'create', 'two', '--model', model])).code, 0);
    const [a, b] = await Promise.all([
      serveProcess(home, ['--collections', 'two'], { RIS_TOKEN: TOKEN }),
      serveProcess(home, ['--collections', 'two'], { RIS_TOKEN: TOKEN }),
    ]);
    try {
      const all: { name: string; bytes: Buffer }[] = [];
      for (const [servers, label] of [
        [[a, b], 'two servers'],
        [[a, a], 'one server'],
      ] as const) {
        // 48 images each, 16 of them in both: last in the first request (its third batch), first in the
        // second (its first batch). Each checks its files against the collection before embedding, before
        // the other has committed them: only the check inside the commit can keep them from going in twice.
        const images = await named(await freshImages(80));
        const first = images.slice(0, 48);
        // Sent under other names (a second page's copy of the same photos): only their bytes are the same.
        const second = images.slice(32, 80).map((f) => ({ ...f, name: `copy of ${f.name}` }));
        const [one, two] = await Promise.all([
          upload(servers[0].url, 'two', first),
          upload(servers[1].url, 'two', second),
        ]);
        for (const answer of [one, two]) {
          assert.equal(answer.failed.length, 0);
          assert.equal(answer.added.length + answer.skipped.length, 48, `${label}: every file has its fate`);
        }
        assert.equal(one.added.length + two.added.length, 80, `${label}: each distinct image added once`);
        all.push(...images);
      }
      const stored = rows(join(home), 'two');
      assert.equal(stored.length, all.length);
      assert.deepEqual(new Set(stored.map((r) => r.sha256)), new Set(all.map((f) => sha256(f.bytes))));
      assert.deepEqual(
        (await readdir(join(home, 'collections', 'two', 'uploads'))).sort(),
        stored.map((r) => r.path).sort(),
      );
      // Each server answers every image, its own and the other's.
      for (const server of [a, b])
        for (const file of all.filter((_, i) => i % 10 === 0))
          await until(
            'the server answers the image',
            async () => (await top(server.url, 'two', file.bytes))!.similarity > 0.999,
          );
    } finally {
      await Promise.all([a.kill(), b.kill()]);
    }
    await new Invariants(home, 'two').check('after both servers');
  });
});

describe('a second process changing a collection while a server watches its folder', () => {
  it('ris add, ris remove and ris rescan meanwhile: nothing twice, a removal kept, the server up to date', async () => {
    const { home, root, invariants } = await indexed('shared');
    const server = await serveProcess(home, ['--collections', 'shared', '--watch'], { RIS_TOKEN: TOKEN });
    try {
      await until('the first rescan ran', () => /watching shared: \d+ folders/.test(server.stderr()));

      // The same new file, taken by the watch and by ris add at once.
      const [newFile] = await freshImages(1);
      const both = join(root, 'class0', 'both.jpg');
      await copyFile(newFile!, both);
      const added = await ris(home, ['add', 'shared', both]);
      assert.equal(added.code, 0, added.stderr);
      const bytes = await readFile(both);
      await until(
        'the server answers it',
        async () => await answers(server.url, home, bytes, 'class0/both.jpg'),
      );

      // Removed by another process: a touch of the file (no change) does not bring it back.
      const removed = rows(home, 'shared').find((r) => r.path === 'class1/img000.jpg')!;
      assert.equal((await ris(home, ['remove', 'shared', String(removed.id)])).code, 0);
      await chmod(join(root, 'class1', 'img000.jpg'), 0o600);
      const [marker] = await freshImages(1);
      await copyFile(marker!, join(root, 'class1', 'marker.jpg'));
      const markerBytes = await readFile(marker!);
      await until(
        'the marker is answered',
        async () => await answers(server.url, home, markerBytes, 'class1/marker.jpg'),
      );

      // A burst while ris rescan runs in another process.
      const burst = join(root, 'burst');
      await mkdir(burst);
      const fresh = await freshImages(24);
      const rescanning = ris(home, ['rescan', 'shared']);
      for (const [i, file] of fresh.entries()) await copyFile(file, join(burst, `f${i}.jpg`));
      await rm(join(root, 'class2', 'img001.jpg'));
      await rename(join(root, 'class2', 'img002.jpg'), join(burst, 'moved.jpg'));
      assert.equal((await rescanning).code, 0);
      const last = await readFile(fresh.at(-1)!);
      await until(
        'the burst is answered',
        async () => await answers(server.url, home, last, 'burst/f23.jpg'),
      );
      await until(
        'every file is in',
        async () => rows(home, 'shared').length === (await folderImages(root)).length - 1,
      );
      await matchesFolder(home, 'shared', root, ['class1/img000.jpg']);
      const gone = rows(home, 'shared').find((r) => r.path === 'class2/img001.jpg');
      assert.equal(gone, undefined);
      await writeFile(join(root, 'class1', 'img000.jpg'), await readFile((await freshImages(1))[0]!));
      await until('the changed file is back', () =>
        rows(home, 'shared').some((r) => r.path === 'class1/img000.jpg'),
      );
    } finally {
      await server.kill();
    }
    await invariants.check('after the server');
  });
});
