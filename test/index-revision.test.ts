// An HNSW graph built by an older ris (its file stamped before builder revisions, as every older file is)
// is reported as outdated everywhere a collection's index is shown, until ris retrain rebuilds it.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stampChecksum } from '../src/ann/format.ts';
import { localStore } from '../src/collection/local-store.ts';
import { createApp } from '../src/server/app.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { ris } from './ris-process.ts';

let dir: string;
let home: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-revision-'));
  home = join(dir, 'home');
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  await writeClassFolders(join(dir, 'images'), 3, 10, 48, 4);
  const indexed = await ris(home, [
    'index',
    join(dir, 'images'),
    '--collection',
    'graph',
    '--model',
    model,
    '--index',
    'hnsw',
  ]);
  assert.equal(indexed.code, 0, indexed.stderr);
});
after(() => rm(dir, { recursive: true, force: true }));

/** The index file as an older ris wrote it: no builder revision in the reserved part of its header. */
async function asIfOlder(): Promise<void> {
  const file = join(home, 'collections', 'graph', 'index.ris');
  const bytes = new Uint8Array(await readFile(file));
  new DataView(bytes.buffer).setUint32(92, 0, true);
  stampChecksum(bytes);
  await writeFile(file, bytes);
}

describe('an HNSW graph built by an older ris', () => {
  it('is reported by ris collections, collections info and the API until ris retrain rebuilds it', async () => {
    const fresh = await ris(home, ['collections', 'info', 'graph']);
    assert.doesNotMatch(fresh.stdout, /outdated/);
    await asIfOlder();
    const listed = await ris(home, ['collections']);
    assert.match(listed.stdout, /graph +30 images .*\(hnsw index, outdated: run ris retrain graph\)/);
    const info = await ris(home, ['collections', 'info', 'graph']);
    assert.match(
      info.stdout,
      /\n {12}outdated: its HNSW graph was built by an older ris, .*; run ris retrain graph to rebuild it\n/,
    );
    const collection = await localStore(home).open('graph');
    const app = createApp({ collections: [collection], log: () => undefined });
    const [entry] = (await (await app.request('/api/collections')).json()) as {
      index: { outdated?: string };
    }[];
    assert.match(entry!.index.outdated!, /built by an older ris/);
    await collection.close();
    // Searching and adding keep the old graph (and say so); a retrain builds it anew.
    assert.equal((await ris(home, ['search', 'graph', join(dir, 'images', 'class0', 'img000.jpg')])).code, 0);
    assert.match((await ris(home, ['collections', 'info', 'graph'])).stdout, /outdated/);
    const retrained = await ris(home, ['retrain', 'graph']);
    assert.equal(retrained.code, 0, retrained.stderr);
    assert.doesNotMatch((await ris(home, ['collections', 'info', 'graph'])).stdout, /outdated/);
    assert.doesNotMatch((await ris(home, ['collections'])).stdout, /outdated/);
  });
});
