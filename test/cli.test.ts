import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { IvfPqIndex } from '../src/index.ts';
import { clustered } from './helpers.ts';

const bin = join(import.meta.dirname, '..', 'bin', 'ris.js');
const run = (...args: string[]) =>
  promisify(execFile)(process.execPath, [bin, ...args]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );

describe('ris CLI', () => {
  it('prints help and version', async () => {
    const help = await run('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage:\s+\$ ris <command>/);
    const version = await run('--version');
    assert.match(version.stdout, /^ris\/\d+\.\d+\.\d+/);
  });

  it("prints every command's help and ends well, whatever defaults the command has", async () => {
    const commands = [...(await run('--help')).stdout.matchAll(/^\s+\$ ris (\S+) --help$/gm)].map(
      (m) => m[1]!,
    );
    assert.ok(commands.includes('serve') && commands.includes('index'), 'the help lists the commands');
    for (const command of commands) {
      const help = await run(command, '--help');
      assert.equal(help.code, 0, `ris ${command} --help: ${help.stderr}`);
      assert.equal(help.stderr, '', `ris ${command} --help`);
      assert.match(help.stdout, new RegExp(`\\$ ris ${command}`));
    }
  });

  it('describes an index file, and refuses a corrupt one in one line with a non-zero exit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ris-cli-'));
    try {
      const index = new IvfPqIndex({ dimension: 16, numPartitions: 4, numSubVectors: 4 });
      const data = clustered(600, 16, 4);
      await index.train(data);
      index.add(data);
      const file = join(dir, 'a.ris');
      await index.save(file);
      const info = await run('index-info', file);
      assert.equal(info.code, 0, info.stderr);
      assert.match(info.stdout, /kind\s+ivf-pq/);
      assert.match(info.stdout, /vectors\s+600/);
      await writeFile(join(dir, 'bad.ris'), 'not an index');
      const bad = await run('index-info', join(dir, 'bad.ris'));
      assert.equal(bad.code, 2);
      assert.equal(bad.stderr.trim().split('\n').length, 1);
      assert.match(bad.stderr, /^ris: .*not a ris index file/);
      const unknown = await run('frobnicate');
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /Unknown command "frobnicate"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
