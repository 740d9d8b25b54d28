import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { bin, OFFLINE, ris } from './ris-process.ts';

let dir: string;
let home: string;
let model: string;
let images: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-user-paths-'));
  home = join(dir, 'home');
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  images = join(dir, 'photos');
  await writeClassFolders(images, 3, 4, 48, 31);
  for (const name of ['alpha', 'beta', 'pics']) {
    const run = await ris(home, ['index', images, '--collection', name, '--model', model]);
    assert.equal(run.code, 0, run.stderr);
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A shell pipeline, as a user types it: the status of each command and what the shell printed. */
async function pipeline(command: string) {
  const { stdout, stderr } = await promisify(execFile)(
    'bash',
    ['-c', `${command}; echo "status \${PIPESTATUS[*]}" >&2`],
    { env: { ...process.env, ...OFFLINE, RIS_HOME: home } },
  );
  return { stdout, stderr };
}

describe('what a user types', () => {
  it('ends quietly when the reader of its output stops reading (| head, | true)', async () => {
    const ris_ = `node ${bin}`;
    const early = await pipeline(`${ris_} collections | true`);
    assert.equal(early.stderr, 'status 0 0\n', 'no EPIPE stack, exit 0');
    const head = await pipeline(`${ris_} collections | head -1`);
    assert.match(head.stdout, /^alpha +12 images/);
    assert.equal(head.stderr, 'status 0 0\n');
    const search = await pipeline(
      `${ris_} search pics ${join(images, 'class0', 'img001.jpg')} -k 12 | head -2`,
    );
    assert.equal(search.stdout.split('\n').length, 3);
    assert.equal(search.stderr, 'status 0 0\n');
  });

  it('labels images added under the root by their folder, like index; --labels sets them; says what was already there', async () => {
    const more = join(images, 'class9');
    await writeClassFolders(join(dir, 'more'), 1, 2, 48, 32, 'x');
    await cp(join(dir, 'more', 'x0'), more, { recursive: true });
    const added = await ris(home, ['add', 'pics', more, join(images, 'class0')]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^added 2 images to pics \(now 14\), ids \d+, \d+; 4 already there$/m);
    const json = async (file: string) =>
      JSON.parse((await ris(home, ['search', 'pics', file, '--json', '-k', '1'])).stdout) as {
        labels: string[];
      }[];
    assert.deepEqual((await json(join(more, 'img000.jpg')))[0]!.labels, ['class9']);
    // A folder outside the root: labelled by its own sub-folders; --labels overrides.
    await writeClassFolders(join(dir, 'elsewhere'), 1, 1, 48, 33, 'outside');
    await ris(home, ['add', 'pics', join(dir, 'elsewhere')]);
    assert.deepEqual((await json(join(dir, 'elsewhere', 'outside0', 'img000.jpg')))[0]!.labels, ['outside0']);
    await writeClassFolders(join(dir, 'tagged'), 1, 1, 48, 34, 'tag');
    await ris(home, ['add', 'pics', join(dir, 'tagged'), '--labels', 'cat,pet']);
    assert.deepEqual((await json(join(dir, 'tagged', 'tag0', 'img000.jpg')))[0]!.labels, ['cat', 'pet']);
  });

  it('records the index settings it builds with, and shows what was built', async () => {
    const manifest = JSON.parse(
      await readFile(join(home, 'collections', 'alpha', 'manifest.json'), 'utf8'),
    ) as {
      index: object;
    };
    assert.deepEqual(manifest.index, {
      kind: 'auto',
      numPartitions: 'auto',
      numSubVectors: 'auto',
      refineStorage: 'float16',
      m: 16,
      efConstruction: 200,
      hnswStorage: 'int8',
      memoryBudget: null,
    });
    const info = await ris(home, ['collections', 'info', 'alpha']);
    assert.match(
      info.stdout,
      /settings {4}kind auto, numPartitions auto, numSubVectors auto, refineStorage float16/,
    );
    await writeClassFolders(join(dir, 'many'), 4, 70, 48, 35);
    const ivf = await ris(home, [
      'index',
      join(dir, 'many'),
      '--collection',
      'ivf',
      '--model',
      model,
      '--index',
      'ivf-pq',
      '--sub-vectors',
      '16',
    ]);
    assert.equal(ivf.code, 0, ivf.stderr);
    const ivfInfo = await ris(home, ['collections', 'info', 'ivf']);
    assert.match(
      ivfInfo.stdout,
      /index {7}ivf-pq, 280 vectors, trained on 280 \(numPartitions 17, .*numSubVectors 16, .*refineStorage float16/,
    );
    assert.match(ivfInfo.stdout, /settings {4}kind ivf-pq, numPartitions auto, numSubVectors 16/);
    const retrained = await ris(home, ['retrain', 'ivf']);
    assert.match(retrained.stdout, /retrained ivf: ivf-pq index of 280 images/);
  });

  it('checks every option before any work, the same way whatever the index', async () => {
    const query = join(images, 'class0', 'img000.jpg');
    for (const [args, message] of [
      [
        ['search', 'pics', query, '--nprobes', 'abc'],
        /^ris: Expected --nprobes to be a whole number from 1 to 1048576 but received string "abc"\n$/,
      ],
      [
        ['search', 'pics', query, '--ef-search', '1.5'],
        /^ris: Expected --ef-search to be a whole number from 1 to 1048576 but received (string "1.5"|number 1.5)\n$/,
      ],
      [
        ['index', images, '--collection', 'graph', '--index', 'hnsw', '--partitions', '5'],
        /^ris: --partitions and --sub-vectors set an IVF-PQ index; leave them out with --index hnsw, or use --index ivf-pq\n$/,
      ],
      [
        ['search', 'pics', query, '--bogus'],
        /^ris: Unknown option `--bogus`; run ris search --help for the usage\n$/,
      ],
      [
        ['remove', 'pics'],
        /^ris: missing required args for command `remove <collection> <...targets>`; run ris remove --help for the usage\n$/,
      ],
      [
        ['search', 'pics', query, '-k', '0'],
        /^ris: Expected -k to be a whole number from 1 to 1000 but received number 0\n$/,
      ],
      [
        ['serve', '--port', 'abc'],
        /^ris: Expected --port to be a whole number from 0 to 65535 but received string "abc"\n$/,
      ],
      [
        ['index', images, '--collection', 'bad name!', '--model', model],
        /^ris: Expected a collection name of letters/,
      ],
      [
        ['index', images, '--collection', 'x', '--index', 'hash'],
        /^ris: Expected --index to be one of auto, flat, hnsw, ivf-pq, ivf-rabitq but received string "hash"\n$/,
      ],
      [['search', 'pics', query, '--crop', '1,2,3'], /^ris: Expected --crop as x,y,width,height/],
      [['--bogus'], /^ris: Unknown option `--bogus`; run ris --help for the usage\n$/],
      [
        ['serve', '--host', '999.1.1.1', '--port', '0'],
        /^ris: Cannot serve on 999\.1\.1\.1: no such address or host name \(ENOTFOUND\); give --host an address of this machine, such as 127\.0\.0\.1 or 0\.0\.0\.0 for every interface\n$/,
      ],
      [
        ['serve', '--host', '192.0.2.1', '--port', '0'],
        /^ris: Cannot serve on 192\.0\.2\.1: not an address of this machine \(EADDRNOTAVAIL\); give --host an address of this machine, such as 127\.0\.0\.1 or 0\.0\.0\.0 for every interface\n$/,
      ],
    ] as const) {
      const run = await ris(home, [...args]);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.doesNotMatch(run.stderr, /images found/, 'refused before scanning');
    }
  });

  it('ris index resumes a collection only from its own folder, and says how to add another', async () => {
    const other = join(dir, 'other folder');
    await writeClassFolders(other, 1, 2, 48, 35, 'other');
    const count = async () => /^pics +(\d+) images/m.exec((await ris(home, ['collections'])).stdout)?.[1];
    const before = await count();
    assert.ok(before, 'pics is listed with its size');
    const run = await ris(home, ['index', other, '--collection', 'pics']);
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      /ris: Collection "pics" was indexed from .*, and ris index resumes it only from there; add .*other folder to it with ris add pics .*other folder, or choose another collection name\n$/,
    );
    assert.equal(await count(), before, 'nothing was added');
  });

  it('search results line up in a terminal, whatever script the labels are in', async () => {
    const wide = join(dir, 'wide');
    await writeClassFolders(wide, 1, 1, 48, 41, 'wide');
    const file = join(wide, 'wide0', 'img000.jpg');
    const added = await ris(home, ['add', 'pics', file, '--labels', '写真,猫']);
    assert.equal(added.code, 0, added.stderr);
    const run = await ris(home, ['search', 'pics', file, '-k', '6']);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split('\n').filter((line) => /^ +\d+\. /.test(line));
    assert.equal(lines.length, 6);
    assert.match(lines[0]!, /写真,猫/);
    // Where each path starts, in terminal columns (CJK characters take two).
    const columns = lines.map((line) => {
      const before = line.slice(0, line.lastIndexOf(' ') + 1);
      return [...before].reduce((sum, ch) => sum + (/[\u3000-\u9fff]/.test(ch) ? 2 : 1), 0);
    });
    assert.equal(new Set(columns).size, 1, run.stdout);
  });

  it('Ctrl-C during ris index ends it with a line saying the work is kept, and the same command goes on', async () => {
    const { start } = await import('./ris-process.ts');
    const many = join(dir, 'many');
    await writeClassFolders(many, 4, 300, 32, 36);
    const args = ['index', many, '--collection', 'interrupted', '--model', model];
    const run = start(home, args);
    assert.ok(await run.waitFor('1200 images found'), run.stderr());
    run.child.kill('SIGINT');
    const ended = await run.exited;
    assert.equal(ended.code, 130, ended.stderr);
    assert.match(
      ended.stderr,
      /\nris: interrupted; the images indexed so far are kept: run the same command again to go on\n$/,
    );
    const again = await ris(home, args);
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stdout,
      /collection interrupted: 1200 images \(\d+ added(, \d+ already there)? of 1200 found\)/,
    );
  });

  it('after an interrupted first index, search answers (the index is built from what was stored)', async () => {
    const { killAt } = await import('./ris-process.ts');
    const { paused } = await killAt(
      home,
      ['index', images, '--collection', 'cut', '--model', model],
      'add:committed',
    );
    assert.ok(paused);
    const search = await ris(home, [
      'search',
      'cut',
      join(images, 'class0', 'img000.jpg'),
      '--json',
      '-k',
      '1',
    ]);
    assert.equal(search.code, 0, search.stderr);
    assert.match(
      search.stderr,
      /rebuilding the index of cut from its \d+ stored vectors: index\.ris is missing/,
    );
  });
});
