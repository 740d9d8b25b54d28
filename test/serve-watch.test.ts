// `ris serve --watch` and `ris watch` as users start them: which collections are watched (those that
// follow a folder of the user's, those that join later, not those deleted), what open pages hear, and the
// refusals of what cannot be watched, through the binary; a PostgreSQL collection's folder watched too.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { indexCollection } from '../src/collection/build.ts';
import { createCollection } from '../src/collection/library.ts';
import { localStore } from '../src/collection/local-store.ts';
import { listen, type RunningServer } from '../src/server/serve.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { startTestDatabase } from './fixtures/pg-server.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { ris, start } from './ris-process.ts';

const TOKEN = 'serve-watch-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
let dir: string;
let home: string;
let model: string;
let server: RunningServer;
const logged: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-serve-watch-'));
  home = join(dir, 'home');
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  await writeClassFolders(join(dir, 'photos'), 2, 3, 48, 1);
  await writeClassFolders(join(dir, 'new'), 2, 3, 48, 2, 'new');
  await (await indexCollection('photos', join(dir, 'photos'), { model, home })).collection.close();
  await (await createCollection(localStore(home), 'sent', { model }, { home })).close();
  server = await listen({
    port: 0,
    collectionOptions: { home },
    access: { writeToken: TOKEN },
    watch: { sweepIntervalMs: 0 },
    log: (line) => logged.push(line),
  });
});
after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The events a page hears, from now on. */
async function listenToEvents() {
  const controller = new AbortController();
  const response = await fetch(`${server.url}/api/events`, { signal: controller.signal });
  const reader = response.body!.getReader();
  const seen: { event: string; data: Record<string, unknown> }[] = [];
  let buffer = '';
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      buffer += new TextDecoder().decode(value);
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) seen.push({ event, data: JSON.parse(data) as Record<string, unknown> });
      }
    }
  })();
  return { seen, stop: () => controller.abort() };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function searchTop(name: string, file: string) {
  const body = new FormData();
  body.append('image', new Blob([new Uint8Array(await readFile(file))]), 'q.jpg');
  body.append('k', '1');
  const response = await fetch(`${server.url}/api/collections/${name}/search`, { method: 'POST', body });
  return ((await response.json()) as { results?: { id: number; similarity: number }[] }).results?.[0];
}

describe('ris serve --watch', () => {
  it('watches the collections that follow a folder, and tells the pages what changed', async () => {
    await server.watches!.settled();
    assert.deepEqual(server.watches!.names(), ['photos'], 'not the collection of uploads');
    assert.ok(logged.some((line) => /^not watching sent: .*no folder of its own/.test(line)));
    assert.ok(logged.some((line) => /^watching photos: 3 folders under /.test(line)));
    const events = await listenToEvents();
    try {
      const size = (await (await fetch(`${server.url}/api/collections`)).json()) as {
        name: string;
        size: number;
      }[];
      const before = size.find((c) => c.name === 'photos')!.size;
      const file = join(dir, 'photos', 'class0', 'arrived.jpg');
      await copyFile(join(dir, 'new', 'new0', 'img000.jpg'), file);
      await until('the page hears the watch', () =>
        events.seen.some(
          (e) => e.event === 'progress' && e.data.operation === 'watch' && e.data.collection === 'photos',
        ),
      );
      await until('the page hears the new size', () =>
        events.seen.some(
          (e) => e.event === 'changed' && e.data.collection === 'photos' && e.data.size === before + 1,
        ),
      );
      assert.ok((await searchTop('photos', file))!.similarity > 0.999);
      assert.ok(logged.some((line) => /^photos: 1 added \(change, \d+ ms\)$/.test(line)));
    } finally {
      events.stop();
    }
  });

  it('watches a collection another process makes, and stops watching one deleted', async () => {
    const folder = join(dir, 'later');
    await writeClassFolders(folder, 1, 2, 48, 3, 'later');
    await (await indexCollection('later', folder, { model, home })).collection.close();
    await until('the server serves it', async () =>
      (
        (await (await fetch(`${server.url}/api/collections`)).json()) as { name: string; state: string }[]
      ).some((c) => c.name === 'later' && c.state === 'ready'),
    );
    await until('it is watched', () => server.watches!.names().includes('later'));
    const file = join(folder, 'later0', 'watched.jpg');
    await copyFile(join(dir, 'new', 'new1', 'img001.jpg'), file);
    await until(
      'the new image is answered',
      async () => ((await searchTop('later', file))?.similarity ?? 0) > 0.999,
    );

    const deleted = await fetch(`${server.url}/api/collections/later`, { method: 'DELETE', headers: auth });
    assert.equal(deleted.status, 204);
    await until('its watch stopped', () => !server.watches!.names().includes('later'));
    const problems = logged.length;
    await copyFile(join(dir, 'new', 'new1', 'img002.jpg'), join(folder, 'later0', 'after.jpg'));
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(logged.slice(problems), [], 'nothing watches the deleted collection');
  });
});

/** A command that must refuse at once: one that starts watching instead is killed after 30 s. */
const refused = (args: string[]) => ris(home, args, {}, { timeoutMs: 30_000 });

describe('what cannot be watched is refused before any work, with why (exit 2)', () => {
  it('a collection without a folder of its own, a folder gone, an unknown name, --sweep-minutes alone', async () => {
    const sent = await refused(['watch', 'sent']);
    assert.equal(sent.code, 2);
    assert.match(sent.stderr, /^ris: Collection "sent" has no folder of its own to watch .*--folder DIR\n$/);

    const folder = join(dir, 'unplugged');
    await writeClassFolders(folder, 1, 2, 48, 4);
    await (await indexCollection('unplugged', folder, { model, home })).collection.close();
    await rm(folder, { recursive: true });
    const gone = await refused(['watch', 'photos', 'unplugged']);
    assert.equal(gone.code, 2);
    assert.match(
      gone.stderr,
      /The folder of collection "unplugged" \(.*unplugged\) is not there; mount or restore it/,
    );

    const unknown = await refused(['watch', 'nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /No collection "nope"/);

    const alone = await refused(['serve', '--sweep-minutes', '5']);
    assert.equal(alone.code, 2);
    assert.match(alone.stderr, /--sweep-minutes goes with --watch/);
    const bad = await refused(['watch', 'photos', '--sweep-minutes', 'soon']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Expected --sweep-minutes to be a whole number/);
  });
});

describe('ris watch on a collection kept in PostgreSQL', () => {
  it('follows its folder on this machine: new, renamed and deleted files', async () => {
    const database = await startTestDatabase();
    const client = new pg.Client({ connectionString: database.url });
    const watcher = { process: undefined as ReturnType<typeof start> | undefined };
    try {
      const folder = join(dir, 'in postgres');
      await writeClassFolders(folder, 2, 2, 48, 5);
      const made = await ris(home, [
        'index',
        folder,
        '--collection',
        'pg',
        '--model',
        model,
        '--store',
        database.url,
      ]);
      assert.equal(made.code, 0, made.stderr);
      await client.connect();
      const stored = async () =>
        new Map(
          (await client.query<{ id: string; path: string }>('SELECT id, path FROM ris_images')).rows.map(
            (r) => [r.path, Number(r.id)],
          ),
        );
      const before = await stored();
      assert.equal(before.size, 4);
      watcher.process = start(home, ['watch', 'pg', '--store', database.url]);
      assert.ok(await watcher.process.waitFor('rescanned in'), watcher.process.stderr());
      await copyFile(join(dir, 'new', 'new0', 'img002.jpg'), join(folder, 'class0', 'new in pg.jpg'));
      await rename(join(folder, 'class1', 'img000.jpg'), join(folder, 'class0', 'moved.jpg'));
      await rm(join(folder, 'class1', 'img001.jpg'));
      await until('the watch took the changes in', async () => {
        const now = await stored();
        return (
          now.has('class0/new in pg.jpg') && now.has('class0/moved.jpg') && !now.has('class1/img001.jpg')
        );
      });
      const now = await stored();
      assert.equal(now.get('class0/moved.jpg'), before.get('class1/img000.jpg'), 'a moved file keeps its id');
      assert.equal(now.size, 4);
      watcher.process.child.kill('SIGINT');
      assert.equal((await watcher.process.exited).code, 0);
    } finally {
      await watcher.process?.kill();
      await client.end().catch(() => undefined);
      await database.close();
    }
  });
});
