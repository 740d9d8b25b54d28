// `ris watch` past the kernel's limit on inotify watches: the limit is lowered for this test only, in a
// user namespace of its own (unshare -Ur; /proc/sys/user/max_inotify_watches is counted per namespace and
// checked up the chain), never for the machine.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { indexCollection } from '../src/collection/build.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { bin, OFFLINE } from './ris-process.ts';

const LIMIT = 8;

function namespacesWork(): boolean {
  try {
    execFileSync('unshare', ['-Ur', 'sh', '-c', `echo ${LIMIT} > /proc/sys/user/max_inotify_watches`], {
      stdio: 'ignore',
    });
    return true;
  } catch {
    return false;
  }
}
const skip = namespacesWork()
  ? false
  : 'needs unprivileged user namespaces (unshare -Ur) to lower the watch limit for this test alone';

let dir: string;
let home: string;
let model: string;
let child: ChildProcess | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-watch-limit-'));
  home = join(dir, 'home');
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
});
after(async () => {
  child?.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('ris watch past the limit on watches', { skip }, () => {
  it('says so once with the setting to raise, watches what it can and still takes in a folder moved in', async () => {
    const folder = join(dir, 'photos');
    await writeClassFolders(folder, 3 * LIMIT, 1, 32, 3);
    const { collection } = await indexCollection('photos', folder, { model, home });
    await collection.close();
    // The watch, in a namespace where only LIMIT watches may be held (the process is the same pid
    // throughout: unshare and sh exec what follows).
    child = spawn(
      'unshare',
      [
        '-Ur',
        'sh',
        '-c',
        `echo ${LIMIT} > /proc/sys/user/max_inotify_watches && exec "$0" "$@"`,
        process.execPath,
        bin,
        'watch',
        'photos',
        '--sweep-minutes',
        '0',
      ],
      { env: { ...process.env, ...OFFLINE, RIS_HOME: home }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    const waitFor = async (pattern: RegExp, what: string) => {
      const deadline = Date.now() + 30_000;
      while (!pattern.test(stderr)) {
        assert.ok(child!.exitCode === null, `ris watch ended before ${what}: ${stderr}`);
        assert.ok(Date.now() < deadline, `timed out waiting until ${what}: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await waitFor(/photos: rescanned in/, 'the start rescan');
    const watching = /photos: (\d+) folders watched under .*; (\d+) not watched: (.*)/.exec(stderr);
    assert.ok(watching, stderr);
    assert.equal(Number(watching[1]), LIMIT);
    assert.equal(Number(watching[2]), 3 * LIMIT + 1 - LIMIT);
    assert.match(
      watching[3]!,
      /limit on watches is reached \(raise it: sysctl fs\.inotify\.max_user_watches=/,
    );

    // A folder moved into the (watched) root: its own watch fails too, its image is taken in all the same.
    const outside = join(dir, 'outside');
    await mkdir(outside);
    await writeClassFolders(outside, 1, 2, 32, 99, 'arrived');
    await rename(join(outside, 'arrived0'), join(folder, 'arrived0'));
    await waitFor(/photos: 2 added/, 'the moved-in folder is taken in');
    assert.equal(child.exitCode, null, 'the watch goes on');
    assert.equal(stderr.match(/limit on watches/g)?.length, 1, `said once: ${stderr}`);
    child.kill('SIGINT');
    await new Promise((r) => child!.once('exit', r));
  });
});
