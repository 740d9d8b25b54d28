import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { startTestDatabase, type TestDatabase } from './fixtures/pg-server.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { guardConnections } from './network-guard.ts';
import { ris, start } from './ris-process.ts';

/**
 * The faults PostgreSQL users meet, on a real server this file may restart and crash: the server
 * restarted under `ris index --enqueue` and `ris worker`, a worker killed inside its transaction while the
 * server crashes, connections dropped and the server down while `ris serve` answers. Nothing may be lost
 * or stored twice, workers go on, and the server answers 503 while the database is away and 200 again
 * once it is back.
 *
 * It needs the server's data folder and pg_ctl besides its URL: `bash .ci/postgres` gives all three
 * (RIS_TEST_DATABASE_URL, RIS_TEST_PGDATA, RIS_TEST_PG_CTL).
 */

const pgData = process.env.RIS_TEST_PGDATA;
const pgCtlPath = process.env.RIS_TEST_PG_CTL;
const skip =
  process.env.RIS_TEST_DATABASE_URL && pgData && pgCtlPath
    ? false
    : 'needs a real PostgreSQL it may restart: run bash .ci/postgres (RIS_TEST_DATABASE_URL, RIS_TEST_PGDATA, RIS_TEST_PG_CTL)';

let dir: string;
let home: string;
let model: string;
let database: TestDatabase;
const guard = guardConnections();

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'ris-pg-faults-'));
  home = join(dir, 'home');
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  database = await startTestDatabase();
});

after(async () => {
  guard.restore();
  if (skip) return;
  await database?.close();
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(
    guard.attempts.filter((a) => !a.allowed),
    [],
  );
});

/**
 * pg_ctl on the test server: as the owner of its data folder (PostgreSQL refuses to run as root), its log
 * in that folder. `immediate` stops it as a crash would: no checkpoint, recovery from the WAL at start.
 */
async function pgCtl(
  action: 'restart' | 'stop' | 'start',
  mode: 'fast' | 'immediate' = 'fast',
): Promise<void> {
  const owner = statSync(pgData!);
  const asOwner = process.getuid?.() === 0 ? { uid: owner.uid, gid: owner.gid } : {};
  const args = [action, '-D', pgData!, '-w', '-t', '60'];
  if (action !== 'start') args.push('-m', mode);
  if (action !== 'stop') args.push('-l', join(pgData!, 'ris-test.log'));
  await promisify(execFile)(pgCtlPath!, args, { ...asOwner, cwd: pgData });
}

/** One statement on a connection of its own (the server restarts under the tests: no client is kept). */
async function sql<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

const counts = async (collection: string) =>
  (
    await sql<{ images: number; paths: number; thumbnails: number; jobs: number; size: number }>(
      `SELECT (SELECT count(*) FROM ris_images WHERE collection_id = c.id)::int AS images,
              (SELECT count(DISTINCT path) FROM ris_images WHERE collection_id = c.id)::int AS paths,
              (SELECT count(*) FROM ris_thumbnails t JOIN ris_images i ON i.id = t.image_id
                WHERE i.collection_id = c.id)::int AS thumbnails,
              (SELECT count(*) FROM ris_jobs WHERE collection_id = c.id)::int AS jobs,
              c.image_count::int AS size
       FROM ris_collections c WHERE c.name = $1`,
      [collection],
    )
  )[0]!;

/**
 * Polls `done` (errors count as not yet) every 100 ms for at most `seconds`; fails at once if `process`
 * (the ris process that should get it done) ends meanwhile.
 */
async function eventually(
  what: string,
  done: () => Promise<boolean>,
  seconds = 120,
  process?: ReturnType<typeof start>,
): Promise<void> {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    if (await done().catch(() => false)) return;
    if (process && process.child.exitCode !== null)
      assert.fail(`${what}: ris ended first (exit ${process.child.exitCode}):\n${process.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: not within ${seconds} s`);
}

async function folder(name: string, classes: number, perClass: number, seed: number): Promise<string> {
  const path = join(dir, name);
  await writeClassFolders(path, classes, perClass, 48, seed, `${name}-`);
  return path;
}

describe('a real PostgreSQL restarted and crashed under ris', { skip }, () => {
  it('restarted under ris index --enqueue and under a worker mid-transaction, then crashed: every image queued, stored once, by a worker that went on', {
    timeout: 300_000,
  }, async () => {
    const images = await folder('restarted', 4, 12, 91);
    // ris index --enqueue frozen just before it writes the queue; the server restarts under it.
    const enqueue = start(
      home,
      ['index', images, '--collection', 'restarted', '--model', model, '--store', database.url, '--enqueue'],
      { RIS_TEST_PAUSE_AT: 'enqueue:chunk' },
    );
    assert.ok(await enqueue.waitFor('ris-paused-at enqueue:chunk'), enqueue.stderr());
    await pgCtl('restart');
    enqueue.child.kill('SIGCONT');
    const queued = await enqueue.exited;
    assert.equal(queued.code, 0, queued.stderr);
    assert.match(queued.stdout, /collection restarted: 48 images queued of 48 found/);

    // A worker frozen inside the transaction that stores its second batch; the server restarts (rolling
    // that transaction back) and the worker goes on. A lease of 10 minutes: no batch of it can change
    // hands during the test, so a batch it dropped would never be stored.
    const worker = start(
      home,
      ['worker', '--store', database.url, '--collections', 'restarted', '--batch', '4', '--lease', '600'],
      { RIS_TEST_PAUSE_AT: 'worker:storing@2' },
    );
    assert.ok(await worker.waitFor('ris-paused-at worker:storing'), worker.stderr());
    assert.equal((await counts('restarted')).images, 4, 'the first batch only: the second is not committed');
    await pgCtl('restart');
    worker.child.kill('SIGCONT');
    // Then a crash while it works.
    await eventually(
      'half the images stored',
      async () => (await counts('restarted')).images >= 24,
      120,
      worker,
    );
    await pgCtl('restart', 'immediate');
    await eventually('the queue emptied', async () => (await counts('restarted')).jobs === 0, 120, worker);
    worker.child.kill('SIGTERM');
    const run = await worker.exited;
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    // All 48 by this worker, each embedded once: none skipped as already stored, none taken over.
    assert.match(run.stdout, /: stored 48 images in [\d.]+ s\n$/);
    assert.match(
      run.stderr,
      /\ndatabase unreachable, waiting up to 600 s for it: Cannot reach the database at /,
    );
    assert.match(run.stderr, /\ndatabase back after [\d.]+ s; going on\n/);
    assert.deepEqual(await counts('restarted'), { images: 48, paths: 48, thumbnails: 48, jobs: 0, size: 48 });
  });

  it('a worker killed inside its transaction while the server crashes: nothing of it is kept, another stores every image once', {
    timeout: 180_000,
  }, async () => {
    const images = await folder('crashed', 3, 8, 93);
    const queued = await ris(home, [
      'index',
      images,
      '--collection',
      'crashed',
      '--model',
      model,
      '--store',
      database.url,
      '--enqueue',
    ]);
    assert.equal(queued.code, 0, queued.stderr);
    const args = [
      'worker',
      '--store',
      database.url,
      '--collections',
      'crashed',
      '--batch',
      '8',
      '--lease',
      '2',
    ];
    const victim = start(home, args, { RIS_TEST_PAUSE_AT: 'worker:storing' });
    assert.ok(await victim.waitFor('ris-paused-at worker:storing'), victim.stderr());
    await victim.kill();
    await pgCtl('stop', 'immediate');
    await pgCtl('start');
    assert.deepEqual(await counts('crashed'), { images: 0, paths: 0, thumbnails: 0, jobs: 24, size: 0 });
    const rescuer = await ris(home, [...args, '--until-done']);
    assert.equal(rescuer.code, 0, rescuer.stderr);
    assert.match(rescuer.stdout, /: stored 24 images in [\d.]+ s\n$/);
    assert.deepEqual(await counts('crashed'), { images: 24, paths: 24, thumbnails: 24, jobs: 0, size: 24 });
  });

  it('ris serve: connections dropped, then the database down and back: 503 with the reason meanwhile, the same answers after', {
    timeout: 180_000,
  }, async () => {
    const images = await folder('served', 2, 5, 95);
    const indexed = await ris(home, [
      'index',
      images,
      '--collection',
      'served',
      '--model',
      model,
      '--store',
      database.url,
    ]);
    assert.equal(indexed.code, 0, indexed.stderr);
    const server = start(home, ['serve', '--port', '0', '--store', database.url]);
    let load = true;
    try {
      await eventually('ris serve listening', async () => /open (http:\S+)\//.test(server.stdout()), 60);
      const base = /open (http:\S+)\//.exec(server.stdout())![1]!;
      const query = await readFile(join(images, 'served-1', 'img002.jpg'));
      const search = async () => {
        const form = new FormData();
        form.set('image', new Blob([query], { type: 'image/jpeg' }), 'query.jpg');
        form.set('k', '3');
        const response = await fetch(`${base}/api/collections/served/search`, { method: 'POST', body: form });
        return {
          status: response.status,
          retryAfter: response.headers.get('retry-after'),
          body: await response.json(),
        };
      };
      const answer = await search();
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const ids = (answer.body as { results: { id: number }[] }).results.map((r) => r.id);

      // Requests keep coming all along: each is answered 200, or 503 DATABASE_UNREACHABLE, never
      // anything else (a 500, a dropped connection, a dead server).
      const seen = new Map<string, number>();
      const loop = (async () => {
        while (load) {
          const got = await search().then(
            (r) => `${r.status} ${(r.body as { error?: { code: string } }).error?.code ?? ''}`.trim(),
            (error: Error) => `no answer: ${error.message}`,
          );
          seen.set(got, (seen.get(got) ?? 0) + 1);
        }
      })();

      // Every connection of ris dropped by the server: the next searches answer all the same.
      await sql(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'ris' AND pid <> pg_backend_pid()`,
      );
      for (let i = 0; i < 5; i++) assert.equal((await search()).status, 200);

      await pgCtl('stop');
      const down = await search();
      assert.equal(down.status, 503);
      assert.equal(down.retryAfter, '1');
      const error = (down.body as { error: { code: string; message: string } }).error;
      assert.equal(error.code, 'DATABASE_UNREACHABLE');
      assert.match(error.message, /^Cannot reach the database at /);
      assert.ok(!error.message.includes(database.password));
      for (const path of ['/api/collections', '/api/collections/served/thumbnails/1']) {
        const response = await fetch(`${base}${path}`);
        assert.equal(response.status, 503, path);
        assert.equal(
          ((await response.json()) as { error: { code: string } }).error.code,
          'DATABASE_UNREACHABLE',
        );
      }

      await pgCtl('start');
      await eventually('searches answered again', async () => (await search()).status === 200, 30);
      const again = await search();
      assert.deepEqual(
        (again.body as { results: { id: number }[] }).results.map((r) => r.id),
        ids,
      );
      const listed = (await (await fetch(`${base}/api/collections`)).json()) as {
        name: string;
        state: string;
      }[];
      assert.deepEqual(listed.find((c) => c.name === 'served')?.state, 'ready');
      assert.ok(
        listed.every((c) => c.state === 'ready'),
        JSON.stringify(listed),
      );
      load = false;
      await loop;
      const answers = [...seen.keys()].sort();
      assert.ok(
        answers.every((a) => a === '200' || a === '503 DATABASE_UNREACHABLE'),
        JSON.stringify(Object.fromEntries(seen)),
      );
      assert.ok(server.child.exitCode === null, 'ris serve still runs');
    } catch (error) {
      throw new Error(`${(error as Error).message}\nris serve said:\n${server.stderr()}`, { cause: error });
    } finally {
      load = false;
      await server.kill();
    }
  });
});
