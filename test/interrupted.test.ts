// A ris index or ris retrain killed part way leaves a collection that every listing shows as interrupted,
// with how far it got and the command that resumes it; running that command finishes it and clears it.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localStore } from '../src/collection/local-store.ts';
import { createApp } from '../src/server/app.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { startTestDatabase, type TestDatabase } from './fixtures/pg-server.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { killAt, ris } from './ris-process.ts';

let dir: string;
let home: string;
let images: string;
let model: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-killed-'));
  home = join(dir, 'home');
  images = join(dir, 'photos');
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  await writeClassFolders(images, 4, 40, 48, 12);
});
after(() => rm(dir, { recursive: true, force: true }));

type Listed = { name: string; work?: { kind: string; state: string; message: string; found?: number } };

async function listedByApi(): Promise<Listed[]> {
  const collection = await localStore(home).open('cut');
  try {
    const app = createApp({ collections: [collection], log: () => undefined });
    return (await (await app.request('/api/collections')).json()) as Listed[];
  } finally {
    await collection.close();
  }
}

describe('interrupted work shows everywhere until resumed', () => {
  it('a ris index killed after its first batch: interrupted, how far, the command; the same command finishes it', {
    timeout: 180_000,
  }, async () => {
    const args = ['index', images, '--collection', 'cut', '--model', model];
    const { paused } = await killAt(home, args, 'add:committed');
    assert.ok(paused);
    const resume = `ris index ${images} --collection cut`;
    const listed = await ris(home, ['collections']);
    assert.match(
      listed.stdout,
      new RegExp(`^cut .* interrupted ris index: \\d+ of 160 images; run ${resume} to resume\\n`),
    );
    const info = await ris(home, ['collections', 'info', 'cut']);
    assert.match(
      info.stdout,
      new RegExp(`\\nstate {7}interrupted ris index: \\d+ of 160 images; run ${resume} to resume\\n`),
    );
    const [entry] = await listedByApi();
    assert.equal(entry!.work!.kind, 'index');
    assert.equal(entry!.work!.state, 'interrupted');
    assert.equal(entry!.work!.found, 160);
    assert.match(
      entry!.work!.message,
      /^interrupted ris index: \d+ of 160 images; run ris index photos --collection cut to resume$/,
    );
    // Listing it did not finish it.
    assert.match((await ris(home, ['collections'])).stdout, /interrupted/);

    const resumed = await ris(home, args);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.doesNotMatch((await ris(home, ['collections'])).stdout, /interrupted/);
    assert.doesNotMatch((await ris(home, ['collections', 'info', 'cut'])).stdout, /\nstate /);
    assert.equal((await listedByApi())[0]!.work, undefined);
  });

  it('a ris retrain killed before it saved: interrupted until ris retrain runs again', {
    timeout: 120_000,
  }, async () => {
    const { paused } = await killAt(home, ['retrain', 'cut'], 'retrain:trained');
    assert.ok(paused);
    assert.match(
      (await ris(home, ['collections'])).stdout,
      /^cut .* interrupted ris retrain; run ris retrain cut to resume\n/,
    );
    assert.equal((await listedByApi())[0]!.work!.state, 'interrupted');
    const again = await ris(home, ['retrain', 'cut']);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch((await ris(home, ['collections'])).stdout, /interrupted/);
  });
});

describe('interrupted work in PostgreSQL', () => {
  let db: TestDatabase;
  before(async () => {
    db = await startTestDatabase();
  });
  after(() => db?.close());

  it('a ris index --store killed after its first batch shows as interrupted until the same command runs again', {
    timeout: 180_000,
  }, async () => {
    const pgHome = join(dir, 'pg-home');
    const args = ['index', images, '--collection', 'cutpg', '--model', model, '--store', db.url];
    const { paused } = await killAt(pgHome, args, 'add:committed');
    assert.ok(paused);
    const listed = await ris(pgHome, ['collections', '--store', db.url]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(
      listed.stdout,
      /^cutpg .* interrupted ris index: \d+ of 160 images; run ris index .* to resume\n/m,
    );
    const info = await ris(pgHome, ['collections', 'info', 'cutpg', '--store', db.url]);
    assert.match(info.stdout, /\nstate {7}interrupted ris index: \d+ of 160 images/);
    const resumed = await ris(pgHome, args);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.doesNotMatch((await ris(pgHome, ['collections', '--store', db.url])).stdout, /interrupted/);
  });
});
