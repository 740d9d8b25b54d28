import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { fileServer, writeDatasetArchives } from './fixtures/datasets.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback } from './helpers.ts';
import { bin, OFFLINE, ris } from './ris-process.ts';

let dir: string;
let model: string;
let images: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-cli-'));
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  images = join(dir, 'images');
  await writeClassFolders(images, 4, 5);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `ris start` in the background: its printed URL once it serves, its output, its exit code. */
function startServer(home: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [bin, 'start', '--port', '0', ...args], {
    env: { ...process.env, ...OFFLINE, RIS_HOME: home, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    process: child,
    exited,
    output: () => output,
    async url(): Promise<string> {
      for (let i = 0; i < 600 && !/open http:\/\/\S+\//.test(output) && child.exitCode === null; i++)
        await new Promise((r) => setTimeout(r, 50));
      const url = /open (http:\/\/\S+)\//.exec(output)?.[1];
      assert.ok(url, `no URL printed: ${output}`);
      return url;
    },
  };
}

describe('ris CLI over collections (the real binary)', () => {
  it('index, search (text and JSON), add, remove, collections list/info/delete', async () => {
    const home = join(dir, 'home-a');
    const indexed = await ris(home, ['index', images, '--collection', 'pics', '--model', model]);
    assert.equal(indexed.code, 0, indexed.stderr);
    assert.match(indexed.stdout, /collection pics: 20 images \(20 added of 20 found\)/);

    const text = await ris(home, ['search', 'pics', join(images, 'class2', 'img001.jpg'), '-k', '3']);
    assert.match(text.stdout, /3 most similar in pics/);
    assert.match(text.stdout, /1\. 1\.000 {2}#\d+ {2}class2 +class2\/img001\.jpg/);
    const json = JSON.parse(
      (
        await ris(home, [
          'search',
          'pics',
          join(images, 'class2', 'img001.jpg'),
          '-k',
          '2',
          '--json',
          '--crop',
          '0,0,64,64',
        ])
      ).stdout,
    ) as {
      id: number;
      path: string;
      labels: string[];
      similarity: number;
    }[];
    assert.equal(json.length, 2);
    assert.equal(json[0]!.path, 'class2/img001.jpg');
    assert.deepEqual(json[0]!.labels, ['class2']);

    const added = await ris(home, [
      'add',
      'pics',
      join(images, 'class0', 'img000.jpg'),
      join(dir, 'tiny.onnx'),
    ]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /added 0 images to pics \(now 20\)/);
    assert.match(added.stdout, /skipped 1 unreadable image:\n {2}.*tiny\.onnx: The data is not an image/);
    // A mistyped path, or a folder without images, is refused before anything is added.
    const missing = await ris(home, [
      'add',
      'pics',
      join(images, 'class0', 'img000.jpg'),
      join(dir, 'nosuch'),
    ]);
    assert.equal(missing.code, 2);
    assert.match(
      missing.stderr,
      /^ris: There is no file or folder ".*nosuch"; check the path \(nothing was added\)\n$/,
    );
    await mkdir(join(dir, 'empty-folder'), { recursive: true });
    const empty = await ris(home, ['add', 'pics', join(dir, 'empty-folder')]);
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /^ris: No images \(jpg.*\) found under .*empty-folder; nothing was added\n$/);

    const removed = await ris(home, ['remove', 'pics', String(json[0]!.id), 'class3/img004.jpg']);
    assert.match(removed.stdout, /removed 2 of 2 from pics \(now 18\)/);
    const after = JSON.parse(
      (await ris(home, ['search', 'pics', join(images, 'class2', 'img001.jpg'), '-k', '18', '--json']))
        .stdout,
    ) as { path: string }[];
    assert.ok(!after.some((h) => h.path === 'class2/img001.jpg' || h.path === 'class3/img004.jpg'));

    assert.match((await ris(home, ['collections'])).stdout, /pics +18 images/);
    const info = await ris(home, ['collections', 'info', 'pics']);
    assert.match(info.stdout, /labels {6}4: class0 \(5\)/);
    assert.match(info.stdout, /index {7}flat, 18 vectors/);
    assert.equal((await ris(home, ['collections', 'delete', 'pics'])).code, 0);
    assert.match((await ris(home, ['collections'])).stdout, /no collections/);
  });

  it('fails in one clear line with a non-zero exit, the stack only with --verbose', async () => {
    const home = join(dir, 'home-b');
    const missing = await ris(home, ['search', 'nothing', join(images, 'class0', 'img000.jpg')]);
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
    assert.match(
      missing.stderr,
      /^ris: No collection "nothing"; create it with ris index <folder> --collection nothing/,
    );
    const noName = await ris(home, ['index', images]);
    assert.match(noName.stderr, /ris index needs --collection NAME/);
    const badCrop = await ris(home, ['index', join(dir, 'nowhere'), '--collection', 'x', '--model', model]);
    assert.match(badCrop.stderr, /is neither a folder nor a dataset name/);
    const verbose = await ris(home, ['search', 'nothing', 'x.jpg', '--verbose']);
    assert.match(verbose.stderr, /at .*collection\.ts/);
    const help = await ris(home, ['index', '--help']);
    assert.match(help.stdout, /Examples:[\s\S]*ris index caltech101 --collection caltech101/);
  });

  it('start serves the page and the API with caltech101 first, and stops on SIGTERM', async () => {
    const home = join(dir, 'home-start');
    for (const name of ['alpha', 'caltech101'])
      assert.equal((await ris(home, ['index', images, '--collection', name, '--model', model])).code, 0);
    const child = startServer(home, ['--datasets', 'caltech101']);
    const url = await child.url();
    assert.match(child.output(), /serving caltech101, alpha/);
    const list = (await (await fetch(`${url}/api/collections`)).json()) as { name: string }[];
    assert.deepEqual(
      list.map((c) => c.name),
      ['caltech101', 'alpha'],
    );
    const page = await fetch(`${url}/`);
    assert.match(page.headers.get('content-type')!, /text\/html/);
    const port = new URL(url).port;
    const second = await ris(home, ['serve', '--port', port]);
    assert.equal(second.code, 2);
    assert.match(second.stderr, new RegExp(`^ris: Port ${port} is in use on 127\\.0\\.0\\.1; .*--port`));
    child.process.kill('SIGTERM');
    assert.equal(await child.exited, 0, child.output());
  });

  it('start downloads caltech101 into an empty datasets folder, serves it, and brings voc2012 in while serving', async () => {
    const home = join(dir, 'home-fresh');
    const datasets = join(dir, 'empty-datasets');
    await mkdir(datasets, { recursive: true });
    const archives = await writeDatasetArchives(join(dir, 'archives'));
    const mirror = fileServer(
      new Map([
        ['/caltech-101.zip', archives.caltech],
        ['/VOCtrainval_11-May-2012.tar', archives.voc],
      ]),
    );
    const mirrorUrl = await listenOnLoopback(mirror.server);
    const releaseVoc = mirror.hold('/VOCtrainval_11-May-2012.tar');
    const child = startServer(home, ['--model', model], {
      RIS_DATASETS_DIR: datasets,
      RIS_DATASET_MIRROR: mirrorUrl,
    });
    try {
      const url = await child.url();
      assert.match(child.output(), /preparing the caltech101 collection/);
      assert.match(child.output(), /serving caltech101/);
      type Listed = { name: string; state: string; phase?: string; percent?: number; size?: number };
      const listed = async () => (await (await fetch(`${url}/api/collections`)).json()) as Listed[];
      const first = await listed();
      assert.deepEqual(
        first.map((c) => [c.name, c.state]),
        [
          ['caltech101', 'ready'],
          ['voc2012', 'preparing'],
        ],
      );
      assert.equal(first[0]!.size, 12);
      const early = await fetch(`${url}/api/collections/voc2012/examples`);
      assert.equal(early.status, 503);
      assert.match(
        ((await early.json()) as { error: { message: string } }).error.message,
        /is being prepared/,
      );
      releaseVoc();
      let voc: Listed | undefined;
      for (let i = 0; i < 400 && voc?.state !== 'ready'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        voc = (await listed()).find((c) => c.name === 'voc2012');
      }
      assert.equal(voc?.state, 'ready', child.output());
      assert.equal(voc?.size, 3);
      const search = await fetch(`${url}/api/collections/voc2012/search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: 1, k: 3 }),
      });
      assert.equal(search.status, 200, await search.clone().text());
      assert.deepEqual(
        mirror.requests.filter((r) => r.endsWith('.zip') || r.endsWith('.tar')),
        ['/caltech-101.zip', '/VOCtrainval_11-May-2012.tar'],
      );
    } finally {
      child.process.kill('SIGTERM');
      assert.equal(await child.exited, 0, child.output());
      mirror.server.close();
    }
  });

  it('stops at once on SIGTERM while a dataset is still downloading in the background', async () => {
    const home = join(dir, 'home-start');
    const archives = await writeDatasetArchives(join(dir, 'archives-2'));
    const mirror = fileServer(new Map([['/VOCtrainval_11-May-2012.tar', archives.voc]]));
    const mirrorUrl = await listenOnLoopback(mirror.server);
    mirror.hold('/VOCtrainval_11-May-2012.tar'); // never released
    const child = startServer(home, [], {
      RIS_DATASET_MIRROR: mirrorUrl,
      RIS_DATASETS_DIR: join(dir, 'ds-2'),
    });
    const url = await child.url();
    for (let i = 0; i < 100 && mirror.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(mirror.requests.length, 1, 'the download started');
    const listed = (await (await fetch(`${url}/api/collections`)).json()) as {
      name: string;
      state: string;
    }[];
    assert.deepEqual(listed.at(-1), { name: 'voc2012', state: 'preparing', phase: 'waiting', percent: 0 });
    child.process.kill('SIGTERM');
    assert.equal(await child.exited, 0, child.output());
    mirror.server.closeAllConnections();
    mirror.server.close();
  });

  it('after kill -9 in the middle of indexing, a second run resumes to the same collection', async () => {
    const many = join(dir, 'many');
    await writeClassFolders(many, 6, 100, 160, 3);
    const interrupted = join(dir, 'home-killed');
    const whole = join(dir, 'home-whole');
    const db = join(interrupted, 'collections', 'big', 'metadata.db');
    const child = spawn(process.execPath, [bin, 'index', many, '--collection', 'big', '--model', model], {
      env: { ...process.env, RIS_HOME: interrupted },
      stdio: 'ignore',
    });
    // Wait for some committed batches, then kill without warning.
    let seen = 0;
    for (let i = 0; i < 400 && seen < 32; i++) {
      await new Promise((r) => setTimeout(r, 25));
      if (!existsSync(db)) continue;
      try {
        const reader = new Database(db, { readonly: true, fileMustExist: true });
        seen = (reader.prepare('SELECT count(*) AS n FROM images').get() as { n: number }).n;
        reader.close();
      } catch {
        // table not created yet
      }
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(seen > 0 && seen < 600, `killed after ${seen} of 600 images`);

    const resumed = await ris(interrupted, ['index', many, '--collection', 'big']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /collection big: 600 images \(\d+ added, \d+ already there of 600 found\)/);
    assert.equal((await ris(whole, ['index', many, '--collection', 'big', '--model', model])).code, 0);

    const rows = (home: string) => {
      const reader = new Database(join(home, 'collections', 'big', 'metadata.db'), { readonly: true });
      const all = reader
        .prepare('SELECT id, path, labels, width, height, sha256, vector FROM images ORDER BY id')
        .all();
      reader.close();
      return all;
    };
    assert.deepEqual(rows(interrupted), rows(whole));
    // The same index, but for its stamp (which generation of the database it reflects) and checksum.
    const unstamped = async (home: string) => {
      const bytes = await readFile(join(home, 'collections', 'big', 'index.ris'));
      bytes.fill(0, 72, 96);
      bytes.fill(0, 120, 124);
      return bytes;
    };
    assert.deepEqual(await unstamped(interrupted), await unstamped(whole));
  });
});
