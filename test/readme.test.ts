import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { promisify } from 'node:util';

const root = join(import.meta.dirname, '..');

it('the README library example runs as written', async () => {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(code, 'README has a ts example');
  const file = join(root, `.readme-example-${process.pid}.ts`);
  await writeFile(file, code);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], { cwd: root });
    assert.match(stdout, /Uint32Array\(5\) \[\s*0,/);
  } finally {
    await rm(file, { force: true });
  }
});
