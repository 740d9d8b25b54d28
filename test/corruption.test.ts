import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, open, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Invariants } from './crash-harness.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { ris, start } from './ris-process.ts';

let dir: string;
let model: string;
let pristine: string;
let images: string;
let copies = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-corrupt-'));
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  images = join(dir, 'images');
  await writeClassFolders(images, 4, 8, 48, 21);
  await writeClassFolders(join(dir, 'other-images'), 2, 6, 48, 22);
  pristine = join(dir, 'pristine');
  for (const [name, folder] of [
    ['pics', images],
    ['other', join(dir, 'other-images')],
  ] as const) {
    const run = await ris(pristine, ['index', folder, '--collection', name, '--model', model]);
    assert.equal(run.code, 0, run.stderr);
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A fresh copy of the two collections to damage. */
async function copy(): Promise<{ home: string; file: (name: string) => string }> {
  const home = join(dir, `home-${copies++}`);
  await cp(pristine, home, { recursive: true });
  return { home, file: (name) => join(home, 'collections', 'pics', name) };
}

const query = () => join(images, 'class2', 'img003.jpg');

async function searchesRight(home: string): Promise<string> {
  const run = await ris(home, ['search', 'pics', query(), '--json', '-k', '2']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal((JSON.parse(run.stdout) as { path: string }[])[0]!.path, 'class2/img003.jpg');
  return run.stderr;
}

describe('a damaged index.ris is rebuilt from the database by the next command', () => {
  for (const [damage, harm, reason] of [
    [
      'truncated',
      (f: string) => truncate(f, 1000),
      /index\.ris cannot be used \(.*is truncated \(1000 bytes of \d+\)/,
    ],
    [
      'bit-flipped',
      async (f: string) => {
        const bytes = await readFile(f);
        bytes[bytes.length - 100]! ^= 0x10;
        await writeFile(f, bytes);
      },
      /index\.ris cannot be used \(.*is corrupt \(checksum/,
    ],
    ['deleted', (f: string) => unlink(f), /index\.ris is missing/],
  ] as const) {
    it(`${damage}: says so on stderr, rebuilds, answers right, exit 0`, async () => {
      const { home, file } = await copy();
      await harm(file('index.ris'));
      const stderr = await searchesRight(home);
      assert.match(
        stderr,
        new RegExp(`rebuilding the index of pics from its 32 stored vectors: ${reason.source}`),
      );
      assert.equal(await searchesRight(home), '', 'rebuilt once, then used as it is');
      await new Invariants(home, 'pics').check(`after a ${damage} index`);
    });
  }
});

describe('a damaged collection is reported as broken, the others keep working, repair restores it', () => {
  it('a corrupt database header: what is wrong, where, and what to do; listed and served as broken', async () => {
    const { home, file } = await copy();
    const handle = await open(file('metadata.db'), 'r+');
    await handle.write(Buffer.from('definitely not SQLite'), 0, 21, 0);
    await handle.close();
    const run = await ris(home, ['search', 'pics', query()]);
    assert.equal(run.code, 2);
    assert.equal(
      run.stderr.trim(),
      `ris: Collection "pics" is broken: ${file('metadata.db')} is not a SQLite database (file is not a database); ` +
        'restore it from a backup, or delete the collection (ris collections delete pics) and index its images again',
    );
    const list = await ris(home, ['collections']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^other +12 images/m);
    assert.match(list.stdout, /^pics +broken: Collection "pics" is broken: .*not a SQLite database/m);
    const server = start(home, ['serve', '--port', '0']);
    try {
      for (let i = 0; i < 400 && !/open http/.test(server.stdout()); i++)
        await new Promise((r) => setTimeout(r, 25));
      assert.match(server.stdout(), /ris is serving other/);
      assert.match(server.stdout(), /not serving pics: Collection "pics" is broken/);
      const url = /open (http:\S+)\//.exec(server.stdout())![1];
      const listed = (await (await fetch(`${url}/api/collections`)).json()) as {
        name: string;
        state: string;
      }[];
      assert.deepEqual(
        listed.map((c) => [c.name, c.state]),
        [
          ['other', 'ready'],
          ['pics', 'broken'],
        ],
      );
      const answer = await fetch(`${url}/api/collections/pics/examples`);
      assert.equal(answer.status, 503);
      assert.equal(((await answer.json()) as { error: { code: string } }).error.code, 'COLLECTION_BROKEN');
      assert.equal((await fetch(`${url}/api/collections/other/examples`)).status, 200);
    } finally {
      await server.kill();
    }
  });

  it('garbage pages in the database: broken, then repair keeps what SQLite can read', async () => {
    const { home, file } = await copy();
    const handle = await open(file('metadata.db'), 'r+');
    // Pages 3 to 6 (4 KB each) overwritten: b-tree and overflow pointers are garbage.
    await handle.write(Buffer.alloc(4 * 4096, 0x5a), 0, 4 * 4096, 2 * 4096);
    await handle.close();
    const run = await ris(home, ['search', 'pics', query()]);
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      /^ris: Collection "pics" is broken: .*metadata\.db is damaged \(.+\); run ris collections repair pics\n$/,
    );
    const repaired = await ris(home, ['collections', 'repair', 'pics']);
    assert.equal(repaired.code, 0, repaired.stderr);
    assert.match(
      repaired.stdout,
      /^repaired pics:\n {2}.*metadata\.db was damaged \(.+\): copied the \d+ images SQLite could still read/,
    );
    assert.match(repaired.stdout, /the damaged file is kept as .*metadata\.db\.damaged-/);
    assert.match(repaired.stdout, /rebuilt index\.ris from the \d+ stored vectors/);
    const search = await ris(home, ['search', 'pics', query(), '--json']);
    assert.equal(search.code, 0, search.stderr);
    await new Invariants(home, 'pics').check('after repairing garbage pages');
  });

  for (const [damage, harm, message] of [
    [
      'a truncated manifest',
      async (f: string) => writeFile(f, (await readFile(f, 'utf8')).slice(0, 40)),
      /manifest\.json is not valid JSON \(.+\); run ris collections repair pics$/,
    ],
    [
      'an empty manifest {}',
      (f: string) => writeFile(f, '{}'),
      /manifest\.json is invalid at "formatVersion": .+; run ris collections repair pics$/,
    ],
    [
      'a changed dimension',
      async (f: string) =>
        writeFile(f, (await readFile(f, 'utf8')).replace('"dimension": 1024', '"dimension": 2048')),
      /manifest\.json differs from the copy in metadata\.db \(dimension is 2048 there, 1024 in the database\); run ris collections repair pics to restore it from the database$/,
    ],
  ] as const) {
    it(`${damage}: broken with the reason, and repair restores the manifest from the database`, async () => {
      const { home, file } = await copy();
      await harm(file('manifest.json'));
      const run = await ris(home, ['search', 'pics', query()]);
      assert.equal(run.code, 2);
      assert.match(run.stderr.trim(), message);
      assert.doesNotMatch(run.stderr, /download|resnet50/, 'no attempt to fetch a model');
      const repaired = await ris(home, ['collections', 'repair', 'pics']);
      assert.equal(repaired.code, 0, repaired.stderr);
      assert.match(repaired.stdout, /restored manifest\.json from the copy in metadata\.db/);
      await searchesRight(home);
    });
  }

  it('a manifest from a newer ris: says to upgrade, and changes nothing', async () => {
    const { home, file } = await copy();
    const text = (await readFile(file('manifest.json'), 'utf8')).replace(
      '"formatVersion": 2',
      '"formatVersion": 9',
    );
    await writeFile(file('manifest.json'), text);
    const run = await ris(home, ['search', 'pics', query()]);
    assert.equal(run.code, 2);
    assert.equal(
      run.stderr.trim(),
      'ris: Collection "pics" was written by a newer ris (format 9; this one reads up to 2); upgrade ris to use it',
    );
    assert.equal(await readFile(file('manifest.json'), 'utf8'), text, 'left as it was');
  });

  it('a temp file left by a killed write is removed by repair (and by the next write)', async () => {
    const { home, file } = await copy();
    await writeFile(file('.0123456789ab.tmp'), Buffer.alloc(50_000));
    const repaired = await ris(home, ['collections', 'repair', 'pics']);
    assert.match(repaired.stdout, /removed 1 temp files left by interrupted writes/);
  });
});

describe('a full disk', () => {
  const mount = (target: string, size: string) => {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', target], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  it('is DISK_FULL with advice, loses nothing, and the same command succeeds once there is room', async (t) => {
    const home = join(dir, 'small-disk');
    await mkdir(home, { recursive: true });
    if (!mount(home, '3m')) return t.skip('needs root to mount a small tmpfs');
    try {
      assert.equal(
        (await ris(home, ['index', join(dir, 'other-images'), '--collection', 'pics', '--model', model]))
          .code,
        0,
      );
      const filler = join(home, 'filler');
      // Fill the disk but for a few KB: the next batch of vectors cannot be stored.
      await writeFile(filler, Buffer.alloc(0));
      for (;;) {
        try {
          await writeFile(filler, Buffer.alloc(64 * 1024), { flag: 'a' });
        } catch {
          break;
        }
      }
      const full = await ris(home, ['add', 'pics', images]);
      assert.equal(full.code, 2, full.stderr);
      assert.match(
        full.stderr,
        /^ris: The disk is full while writing .*; free some space and run the command again/,
      );
      await rm(filler);
      const again = await ris(home, ['add', 'pics', images]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /added \d+ images to pics \(now 44\)/);
      await new Invariants(home, 'pics').check('after a full disk');
    } finally {
      execFileSync('umount', [home]);
    }
  });
});
