import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { ris, start } from './ris-process.ts';

let dir: string;
let home: string;
let server: ReturnType<typeof start>;
let url: string;

interface Hit {
  id: number;
  labels: string[];
  similarity: number;
  imageUrl: string;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-follow-'));
  home = join(dir, 'home');
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  await writeClassFolders(join(dir, 'images'), 4, 70, 48, 8);
  await writeClassFolders(join(dir, 'new'), 2, 3, 48, 77, 'new');
  const indexed = await ris(home, [
    'index',
    join(dir, 'images'),
    '--collection',
    'pics',
    '--model',
    model,
    '--index',
    'ivf-pq',
    '--partitions',
    '8',
  ]);
  assert.equal(indexed.code, 0, indexed.stderr);
  server = start(home, ['serve', '--port', '0']);
  for (let i = 0; i < 400 && !/open (http:\S+)\//.test(server.stdout()); i++)
    await new Promise((r) => setTimeout(r, 25));
  url = /open (http:\S+)\//.exec(server.stdout())![1]!;
});
after(async () => {
  await server?.kill();
  await rm(dir, { recursive: true, force: true });
});

async function searchFile(file: string, k = 3): Promise<Hit[]> {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(await readFile(file))]), 'query.jpg');
  form.append('k', String(k));
  const response = await fetch(`${url}/api/collections/pics/search`, { method: 'POST', body: form });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { results: Hit[] }).results;
}

async function searchId(id: number, k = 5): Promise<Hit[]> {
  const response = await fetch(`${url}/api/collections/pics/search`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id, k }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { results: Hit[] }).results;
}

/** Searches without pause until `stop` resolves; every answer must be whole. */
function searchMeanwhile(file: string, until: Promise<unknown>) {
  let done = false;
  void until.finally(() => {
    done = true;
  });
  return (async () => {
    let count = 0;
    while (!done) {
      for (const hit of await searchFile(file, 5)) {
        assert.ok(
          Number.isInteger(hit.id) && Array.isArray(hit.labels),
          `a whole hit: ${JSON.stringify(hit)}`,
        );
        assert.match(hit.imageUrl, /\/images\/\d+\?v=/);
      }
      count++;
    }
    return count;
  })();
}

describe('a running ris serve follows what other processes change', () => {
  it('finds images a ris add adds, while answering every search meanwhile', async () => {
    const newFile = join(dir, 'new', 'new1', 'img002.jpg');
    const before = await searchFile(newFile);
    assert.ok(before[0]!.similarity < 0.999, 'not in the collection yet');
    const adding = ris(home, ['add', 'pics', join(dir, 'new')]);
    const meanwhile = searchMeanwhile(join(dir, 'images', 'class1', 'img003.jpg'), adding);
    const added = await adding;
    assert.equal(added.code, 0, added.stderr);
    assert.ok((await meanwhile) > 0, 'searches ran while it added');
    let found: Hit | undefined;
    for (let i = 0; i < 200 && !(found && found.similarity > 0.999); i++) {
      found = (await searchFile(newFile))[0];
      if (!(found && found.similarity > 0.999)) await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(found && found.similarity > 0.999, 'the new image is found first');
    assert.deepEqual(found.labels, ['new1']);
    const listed = (await (await fetch(`${url}/api/collections`)).json()) as {
      size: number;
      index: { indexed: number };
    }[];
    assert.equal(listed[0]!.size, 286);
    assert.equal(listed[0]!.index.indexed, 286);
  });

  it('never answers an image a ris remove removed', async () => {
    const hits = await searchId(5, 5);
    const gone = hits.slice(0, 3).map((h) => h.id);
    const removing = ris(home, ['remove', 'pics', ...gone.map(String)]);
    const meanwhile = searchMeanwhile(join(dir, 'images', 'class0', 'img005.jpg'), removing);
    assert.equal((await removing).code, 0);
    await meanwhile;
    for (let i = 0; i < 5; i++) {
      const after = await searchFile(join(dir, 'images', 'class0', 'img005.jpg'), 10);
      assert.ok(
        !after.some((h) => gone.includes(h.id)),
        `no removed image answered: ${after.map((h) => h.id)}`,
      );
    }
    const response = await fetch(`${url}/api/collections/pics/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: gone[0] }),
    });
    assert.equal(response.status, 404);
  });

  it('takes up the index a ris retrain builds, and keeps answering', async () => {
    const before = (await (await fetch(`${url}/api/collections`)).json()) as {
      index: { generation: number };
    }[];
    const retraining = ris(home, ['retrain', 'pics']);
    const meanwhile = searchMeanwhile(join(dir, 'images', 'class2', 'img010.jpg'), retraining);
    assert.equal((await retraining).code, 0);
    await meanwhile;
    let generation = before[0]!.index.generation;
    for (let i = 0; i < 200 && generation === before[0]!.index.generation; i++) {
      await searchFile(join(dir, 'images', 'class2', 'img010.jpg'));
      generation = (
        (await (await fetch(`${url}/api/collections`)).json()) as { index: { generation: number } }[]
      )[0]!.index.generation;
    }
    assert.ok(generation > before[0]!.index.generation, 'the server follows the new build');
    const hits = await searchFile(join(dir, 'images', 'class2', 'img010.jpg'));
    assert.ok(hits[0]!.similarity > 0.999);
    const health = (await (await fetch(`${url}/api/health`)).json()) as { staleHitsDropped: number };
    assert.equal(typeof health.staleHitsDropped, 'number');
  });

  it('serves a collection made after it started, and lets go of a deleted one, without anyone listing them', async () => {
    const model = join(dir, 'tiny.onnx');
    const made = await ris(home, ['index', join(dir, 'new'), '--collection', 'later', '--model', model]);
    assert.equal(made.code, 0, made.stderr);
    // Nobody lists the collections: the first request for it waits for it to open, then answers.
    const search = () =>
      fetch(`${url}/api/collections/later/search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: 1, k: 1 }),
      });
    const first = await search();
    assert.equal(first.status, 200, await first.clone().text());
    assert.equal(((await first.json()) as { results: { id: number }[] }).results[0]!.id, 1);
    type Listed = { name: string; state: string };
    const list = async () => (await (await fetch(`${url}/api/collections`)).json()) as Listed[];
    assert.equal((await list()).find((c) => c.name === 'later')?.state, 'ready');
    assert.equal((await ris(home, ['collections', 'delete', 'later'])).code, 0);
    // Deleted: its requests are refused within a listing interval (2 s), again without a listing.
    let status = 200;
    for (let i = 0; i < 60 && status !== 404; i++) {
      status = (await fetch(`${url}/api/collections/later/examples`)).status;
      if (status !== 404) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 404, 'the deleted collection is no longer served');
    assert.ok(!(await list()).some((c) => c.name === 'later'), 'the deleted collection left the list');
  });
});
