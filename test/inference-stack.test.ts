// The inference worker's stack: onnxruntime recursed past Node's default 4 MB worker stack on some
// sequences of batches (43,000 frames deep), and the whole process died of SIGSEGV: `ris add` of these 268
// Caltech101 images with mobilenetv2-int8 did, every time.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { MODEL_REGISTRY } from '../src/index.ts';
import { noSharedData, sharedData } from './helpers.ts';
import { bin } from './ris-process.ts';

let dir: string;

describe('the inference worker', { skip: noSharedData }, () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ris-stack-'));
    const entry = MODEL_REGISTRY['mobilenetv2-int8']!;
    await mkdir(join(dir, 'cache', 'ris', 'models'), { recursive: true });
    await copyFile(
      join(sharedData, 'models', entry.fileName),
      join(dir, 'cache', 'ris', 'models', entry.fileName),
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('embeds a batch sequence that overflowed a 4 MB stack (ris add of 268 images exits 0)', async () => {
    const caltech = join(sharedData, 'caltech101');
    const files: string[] = [];
    for (const label of (await readdir(caltech)).sort())
      for (const file of (await readdir(join(caltech, label))).sort()) files.push(join(caltech, label, file));
    const chosen = files.filter((_, i) => (i + 1) % 17 === 0).slice(0, 268);
    const env = { ...process.env, RIS_HOME: join(dir, 'home'), XDG_CACHE_HOME: join(dir, 'cache') };
    const run = (...args: string[]) =>
      promisify(execFile)(process.execPath, [bin, ...args], { env, maxBuffer: 1 << 24 }).then(
        (r) => ({ code: 0 as number | null, signal: null as string | null, stdout: r.stdout }),
        (e: { code: number | null; signal: string | null; stdout: string }) => e,
      );
    assert.equal((await run('collections', 'create', 'stack', '--model', 'mobilenetv2-int8')).code, 0);
    const added = await run('add', 'stack', ...chosen);
    assert.equal(added.signal, null, 'the process was not killed by a signal');
    assert.equal(added.code, 0);
    assert.match(added.stdout, /added 268 images to stack/);
  });
});
