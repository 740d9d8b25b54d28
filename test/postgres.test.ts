import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { indexCollection } from '../src/collection/build.ts';
import { Collection } from '../src/collection/collection.ts';
import {
  addUploads,
  createCollection,
  deleteCollection,
  removeImages,
  rescan,
} from '../src/collection/library.ts';
import { localStore } from '../src/collection/local-store.ts';
import { maskUrl, PgDatabase } from '../src/collection/postgres/connection.ts';
import { copyCollection } from '../src/collection/postgres/copy.ts';
import { SCHEMA_VERSION } from '../src/collection/postgres/schema.ts';
import { postgresStore } from '../src/collection/postgres/store.ts';
import { hnswIndexName } from '../src/collection/postgres/vectors.ts';
import { transactionCommitted } from '../src/collection/postgres/worker.ts';
import { emptyRescanReport } from '../src/collection/rescan.ts';
import { isLibraryCollection } from '../src/collection/store.ts';
import { STAGING_DIR, stagingPath } from '../src/collection/uploads.ts';
import { CollectionError } from '../src/index.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { startTestDatabase, type TestDatabase } from './fixtures/pg-server.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback } from './helpers.ts';
import { guardConnections } from './network-guard.ts';
import { ris, start } from './ris-process.ts';

/**
 * What only the Postgres store does, through real `ris` processes where the issue asks for them: schema
 * migrations, errors that mask the password, the HNSW index, the work queue with several workers (one of
 * them killed with SIGKILL mid-batch), two servers on one database, and `collections copy`.
 */

let dir: string;
let home: string;
let model: string;
let database: TestDatabase;
let client: pg.Client;
const guard = guardConnections();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-pg-'));
  home = join(dir, 'home');
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  database = await startTestDatabase();
  client = new pg.Client({ connectionString: database.url });
  await client.connect();
});

after(async () => {
  await client?.end();
  await database?.close();
  guard.restore();
  await rm(dir, { recursive: true, force: true });
  assert.deepEqual(
    guard.attempts.filter((a) => !a.allowed),
    [],
  );
});

/** A folder of `classes` × `perClass` distinct JPEGs. */
async function folder(name: string, classes: number, perClass: number, seed: number): Promise<string> {
  const path = join(dir, name);
  await writeClassFolders(path, classes, perClass, 48, seed, `${name}-`);
  return path;
}

/** A regular expression's source that matches `text` as it is. */
const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const count = async (sql: string, values: unknown[] = []) =>
  Number((await client.query<{ n: string }>(sql, values)).rows[0]!.n);

describe('schema migrations', () => {
  it('creates the schema in an empty database, once when two processes start at once; a second run changes nothing', async () => {
    const fresh = await startTestDatabase();
    try {
      // Two at once on an empty database: one applies the migrations, the other waits and finds them done.
      const a = postgresStore(fresh.url);
      const b = postgresStore(fresh.url);
      const [x, y] = await Promise.all([a.migrate(), b.migrate()]);
      assert.deepEqual([x.from, y.from], [0, 0], 'both started from an empty database');
      assert.deepEqual([x.applied.length, y.applied.length].sort(), [0, SCHEMA_VERSION]);
      assert.deepEqual(await a.schemaVersion(), { version: SCHEMA_VERSION, latest: SCHEMA_VERSION });
      const again = await ris(home, ['migrate', '--store', fresh.url]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`version ${SCHEMA_VERSION}, up to date`));
      assert.ok(!again.stdout.includes(fresh.password));
      const c = new pg.Client({ connectionString: fresh.url });
      await c.connect();
      const { rows } = await c.query(`SELECT version FROM ris_schema_migrations ORDER BY version`);
      assert.deepEqual(
        rows.map((r) => r.version),
        [1, 2],
      );
      const tables = await c.query(`SELECT tablename FROM pg_tables WHERE tablename LIKE 'ris_%' ORDER BY 1`);
      assert.deepEqual(
        tables.rows.map((r) => r.tablename),
        [
          'ris_collections',
          'ris_exclusions',
          'ris_images',
          'ris_jobs',
          'ris_schema_migrations',
          'ris_thumbnails',
          'ris_uploads',
        ],
      );
      // A schema from a newer ris is refused, not touched.
      await c.query(`INSERT INTO ris_schema_migrations (version, name) VALUES (99, 'from the future')`);
      await c.end();
      const newer = postgresStore(fresh.url);
      await assert.rejects(newer.list(), (error: unknown) => {
        assert.equal((error as CollectionError).code, 'DATABASE_UNUSABLE');
        assert.match(
          (error as Error).message,
          new RegExp(`version 99, newer than this ris knows \\(${SCHEMA_VERSION}\\); upgrade ris`),
        );
        return true;
      });
      await Promise.all([a.close(), b.close(), newer.close()]);
    } finally {
      await fresh.close();
    }
  });
});

describe('schema version 2 on a database of version 1', () => {
  it('is added in place: collections keep their images, which rescans then compare by content once', async () => {
    const fresh = await startTestDatabase();
    try {
      const photos = await folder('upgraded', 2, 3, 21);
      const store = postgresStore(fresh.url, { home });
      const { collection } = await indexCollection('upgraded', photos, { model, store });
      const ids = (await collection.storedVectors()).ids;
      await collection.close();
      await store.close();
      // What ris before the library left: the same tables without version 2's columns and tables.
      const c = new pg.Client({ connectionString: fresh.url });
      await c.connect();
      await c.query(`DROP TABLE ris_uploads, ris_exclusions;
        ALTER TABLE ris_images DROP COLUMN mtime_ms;
        ALTER TABLE ris_collections DROP COLUMN follows_folder;
        ALTER TABLE ris_collections DROP COLUMN pending_work;
        DELETE FROM ris_schema_migrations WHERE version = 2`);
      const upgraded = postgresStore(fresh.url, { home });
      const again = await upgraded.open('upgraded');
      assert.deepEqual(await upgraded.schemaVersion(), { version: 2, latest: SCHEMA_VERSION });
      assert.deepEqual((await again.storedVectors()).ids, ids);
      assert.equal(again.followsFolder, true);
      assert.ok((await again.storedFiles()).every((f) => f.mtimeMs === null));
      const nothing = emptyRescanReport();
      // No mtime yet: each file is read once, found unchanged, and its time kept for the next rescan.
      assert.deepEqual(await rescan(again), { ...nothing, unchanged: 6 });
      assert.ok((await again.storedFiles()).every((f) => typeof f.mtimeMs === 'number'));
      await removeImages(again, [ids[0]!]);
      assert.equal((await again.exclusions()).length, 1);
      assert.deepEqual(await rescan(again), { ...nothing, excluded: 1, unchanged: 5 });
      await again.close();
      await upgraded.close();
      // The command line rescans a PostgreSQL collection as it does a local one.
      await rm(join(photos, 'upgraded-1', 'img002.jpg'));
      const cli = await ris(home, ['rescan', 'upgraded', '--store', fresh.url]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.match(
        cli.stdout,
        /^rescanned upgraded in [\d.]+ s: 0 added, 0 embedded again \(changed\), 1 removed \(gone\), 0 moved, 4 unchanged, 1 left out \(removed by hand\) \(now 4\)\n$/,
      );
      await c.end();
    } finally {
      await fresh.close();
    }
  });
});

describe('schema migrations through the CLI', () => {
  it('ris migrate on an empty database says what it applied', async () => {
    const fresh = await startTestDatabase();
    try {
      const first = await ris(home, ['migrate', '--store', fresh.url]);
      assert.equal(first.code, 0, first.stderr);
      assert.match(
        first.stdout,
        new RegExp(
          `^schema at ${literally(fresh.location)}: version 2 \\(was 0\\)\n {2}applied 1: .*\n {2}applied 2: `,
        ),
      );
      assert.ok(!first.stdout.includes(fresh.password));
    } finally {
      await fresh.close();
    }
  });
});

describe('connection errors name the database with its password masked', () => {
  it('masks passwords in URLs, wherever they are', () => {
    assert.equal(maskUrl('postgres://ris:s3cret@db:5432/ris'), 'postgres://ris:****@db:5432/ris');
    assert.equal(
      maskUrl('postgres://db/ris?user=ris&password=s3cret'),
      'postgres://db/ris?user=ris&password=****',
    );
    assert.equal(maskUrl('postgres://ris@db/ris'), 'postgres://ris@db/ris');
    assert.equal(maskUrl('postgres://ris:s3cret@[bad'), 'postgres://…');
    assert.equal(postgresStore('postgres://ris:s3cret@db/ris').location, 'postgres://ris:****@db/ris');
  });

  it('a wrong password: DATABASE_AUTH_FAILED, from the library and the CLI', async () => {
    const store = postgresStore(database.wrongPasswordUrl);
    await assert.rejects(store.list(), (error: unknown) => {
      assert.ok(error instanceof CollectionError);
      assert.equal(error.code, 'DATABASE_AUTH_FAILED');
      assert.ok(
        error.message.includes(
          `refused the login (password authentication failed for user "${database.user}")`,
        ),
        error.message,
      );
      assert.ok(error.message.includes(database.location), error.message);
      assert.ok(!error.message.includes('not-the-password'));
      return true;
    });
    await store.close();
    const run = await ris(home, ['collections', '--store', database.wrongPasswordUrl]);
    assert.equal(run.code, 2);
    assert.ok(
      run.stderr.startsWith(`ris: The database at ${database.location} refused the login`),
      run.stderr,
    );
    assert.ok(!run.stderr.includes('not-the-password') && !run.stdout.includes('not-the-password'));
  });

  it('an unreachable host (a closed loopback port): DATABASE_UNREACHABLE, from the library and the CLI', async () => {
    const closed = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const url = `postgres://ris:hunter2@127.0.0.1:${closed}/ris`;
    const store = postgresStore(url);
    await assert.rejects(store.list(), (error: unknown) => {
      assert.ok(error instanceof CollectionError);
      assert.equal(error.code, 'DATABASE_UNREACHABLE');
      assert.equal(
        error.message,
        `Cannot reach the database at postgres://ris:****@127.0.0.1:${closed}/ris (connect ECONNREFUSED 127.0.0.1:${closed}); check that PostgreSQL runs there and the address in --store or $RIS_DATABASE_URL`,
      );
      return true;
    });
    await store.close();
    for (const args of [['worker'], ['search', 'x', 'y.jpg'], ['serve', '--port', '0']]) {
      const run = await ris(home, [...args, '--store', url]);
      assert.equal(run.code, 2, `${args[0]}: ${run.stderr}`);
      assert.match(run.stderr, /Cannot reach the database at postgres:\/\/ris:\*\*\*\*@127\.0\.0\.1/);
      assert.ok(!run.stderr.includes('hunter2'), run.stderr);
    }
    // $RIS_DATABASE_URL is the default store.
    const viaEnv = await ris(home, ['collections'], { RIS_DATABASE_URL: url });
    assert.equal(viaEnv.code, 2);
    assert.ok(!viaEnv.stderr.includes('hunter2'));
  });

  it('a store that is not Postgres is refused by the commands that need one', async () => {
    const run = await ris(home, ['worker']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /ris worker works on collections in PostgreSQL: give --store postgres:/);
  });
});

describe('the HNSW index', () => {
  it('is built once a collection is large enough; searches use it with ef_search set for that search only', {
    timeout: 180_000,
  }, async () => {
    const images = await folder('hnsw', 6, 50, 21); // 300 images; 'ivf-pq' means approximate from 256
    const store = postgresStore(database.url, { home });
    const { collection } = await indexCollection('hnsw', images, { model, store, index: { kind: 'ivf-pq' } });
    const status = await collection.status();
    assert.equal(status.kind, 'hnsw');
    assert.equal(status.indexed, 300);
    const id = (await store.row('hnsw'))!.id;
    const scans = async () => {
      await client.query('SELECT pg_stat_force_next_flush()').catch(() => undefined);
      const { rows } = await client.query(
        `SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = $1`,
        [hnswIndexName(id)],
      );
      return Number(rows[0]?.idx_scan ?? 0);
    };
    const scansBefore = await scans();
    let found = 0;
    for (const file of ['hnsw-0/img000.jpg', 'hnsw-3/img017.jpg', 'hnsw-5/img049.jpg']) {
      const hits = await collection.search(join(images, file), { k: 5 });
      assert.equal(hits.length, 5);
      if (hits[0]!.path === file) found++;
    }
    assert.equal(found, 3, 'every image finds itself first');
    // The searches went through the HNSW index (statistics reach other sessions within seconds).
    let scansAfter = await scans();
    for (let i = 0; i < 100 && scansAfter < scansBefore + 3; i++) {
      await new Promise((r) => setTimeout(r, 200));
      scansAfter = await scans();
    }
    assert.ok(scansAfter >= scansBefore + 3, `${scansBefore} → ${scansAfter} scans of the HNSW index`);
    await client.query(`SELECT '[1]'::vector`); // loads pgvector in this session: its settings exist from then
    const { rows } = await client.query(`SELECT current_setting('hnsw.ef_search') AS ef`);
    assert.equal(rows[0].ef, '40', 'SET LOCAL does not outlive the search');
    await collection.retrain();
    assert.equal((await collection.status()).kind, 'hnsw');
    const { rows: indexes } = await client.query(`SELECT indexdef FROM pg_indexes WHERE indexname = $1`, [
      hnswIndexName(id),
    ]);
    assert.match(
      indexes[0].indexdef,
      /USING hnsw \(\(\(embedding\)::vector\(1024\)\) vector_cosine_ops\) WITH \(m='16', ef_construction='64'\) WHERE \(collection_id = \d+\)/,
    );
    await collection.close();
    await store.delete('hnsw');
    assert.equal((await client.query(`SELECT to_regclass($1) AS r`, [hnswIndexName(id)])).rows[0].r, null);
    await store.close();
  });
});

describe('the work queue', () => {
  it('two workers index one folder at once: every image stored once, none lost, none embedded twice', {
    timeout: 180_000,
  }, async () => {
    const images = await folder('two', 4, 10, 31);
    const queued = await ris(home, [
      'index',
      images,
      '--collection',
      'two',
      '--model',
      model,
      '--store',
      database.url,
      '--enqueue',
    ]);
    assert.equal(queued.code, 0, queued.stderr);
    assert.match(
      queued.stdout,
      /collection two: 40 images queued of 40 found \(0 already stored, 0 already queued\)/,
    );
    const again = await ris(home, [
      'index',
      images,
      '--collection',
      'two',
      '--store',
      database.url,
      '--enqueue',
    ]);
    assert.match(again.stdout, /0 images queued of 40 found \(0 already stored, 40 already queued\)/);
    const args = ['worker', '--store', database.url, '--collections', 'two', '--batch', '4', '--until-done'];
    const [a, b] = await Promise.all([ris(home, args), ris(home, args)]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const stored = [a, b].map((run) => Number(/stored (\d+) images/.exec(run.stdout)?.[1]));
    assert.equal(stored[0]! + stored[1]!, 40, `${a.stdout}${b.stdout}`);
    assert.ok(!/already stored|taken over/.test(a.stdout + b.stdout), 'no image was embedded twice');
    const collectionId = Number(
      (await client.query(`SELECT id FROM ris_collections WHERE name = 'two'`)).rows[0].id,
    );
    assert.equal(
      await count('SELECT count(*) AS n FROM ris_images WHERE collection_id = $1', [collectionId]),
      40,
    );
    assert.equal(
      await count('SELECT count(DISTINCT path) AS n FROM ris_images WHERE collection_id = $1', [
        collectionId,
      ]),
      40,
    );
    assert.equal(
      await count(
        'SELECT count(*) AS n FROM ris_thumbnails t JOIN ris_images i ON i.id = t.image_id WHERE collection_id = $1',
        [collectionId],
      ),
      40,
    );
    assert.equal(
      await count('SELECT count(*) AS n FROM ris_jobs WHERE collection_id = $1', [collectionId]),
      0,
    );
    assert.equal(
      await count('SELECT image_count AS n FROM ris_collections WHERE id = $1', [collectionId]),
      40,
    );
    const search = await ris(home, [
      'search',
      'two',
      join(images, 'two-2', 'img007.jpg'),
      '-k',
      '1',
      '--store',
      database.url,
      '--json',
    ]);
    assert.equal(JSON.parse(search.stdout)[0].path, 'two-2/img007.jpg');
    // Workers record each file's time, as ris index does: a rescan then reads none of them again.
    const { rows: times } = await client.query(
      'SELECT path, mtime_ms FROM ris_images WHERE collection_id = $1 ORDER BY path',
      [collectionId],
    );
    for (const row of times as { path: string; mtime_ms: number | null }[])
      assert.equal(row.mtime_ms, (await stat(join(images, row.path))).mtimeMs, row.path);
  });

  it('a worker killed with SIGKILL mid-batch loses nothing: another one finishes its batch once the lease ends', {
    timeout: 180_000,
  }, async () => {
    const images = await folder('killed', 3, 8, 41);
    const queued = await ris(home, [
      'index',
      images,
      '--collection',
      'killed',
      '--model',
      model,
      '--store',
      database.url,
      '--enqueue',
    ]);
    assert.equal(queued.code, 0, queued.stderr);
    const collectionId = Number(
      (await client.query(`SELECT id FROM ris_collections WHERE name = 'killed'`)).rows[0].id,
    );
    const args = [
      'worker',
      '--store',
      database.url,
      '--collections',
      'killed',
      '--batch',
      '8',
      '--lease',
      '2',
    ];
    const victim = start(home, args, { RIS_TEST_PAUSE_AT: 'worker:embedded' });
    assert.ok(await victim.waitFor('ris-paused-at worker:embedded'), victim.stderr());
    const held = await client.query(
      `SELECT count(*) AS n, min(locked_by) AS worker FROM ris_jobs WHERE collection_id = $1 AND locked_until IS NOT NULL`,
      [collectionId],
    );
    assert.equal(Number(held.rows[0].n), 8, 'the victim holds one batch of 8');
    await victim.kill();
    const rescuer = await ris(home, [...args, '--until-done']);
    assert.equal(rescuer.code, 0, rescuer.stderr);
    assert.match(rescuer.stdout, /stored 24 images/);
    assert.equal(
      await count('SELECT count(*) AS n FROM ris_images WHERE collection_id = $1', [collectionId]),
      24,
    );
    assert.equal(
      await count('SELECT count(*) AS n FROM ris_jobs WHERE collection_id = $1', [collectionId]),
      0,
    );
  });

  it('SIGTERM stops a worker after the batch in hand: nothing half done, nothing held', {
    timeout: 120_000,
  }, async () => {
    const images = await folder('stopped', 4, 10, 45);
    const queued = await ris(home, [
      'index',
      images,
      '--collection',
      'stopped',
      '--model',
      model,
      '--store',
      database.url,
      '--enqueue',
    ]);
    assert.equal(queued.code, 0, queued.stderr);
    const collectionId = Number(
      (await client.query(`SELECT id FROM ris_collections WHERE name = 'stopped'`)).rows[0].id,
    );
    const worker = start(home, [
      'worker',
      '--store',
      database.url,
      '--collections',
      'stopped',
      '--batch',
      '2',
    ]);
    assert.ok(await worker.waitFor('stopped: stored'), worker.stderr());
    worker.child.kill('SIGTERM');
    const run = await worker.exited;
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /SIGTERM: stopping after the batch in hand/);
    const stored = Number(/stored (\d+) images/.exec(run.stdout)![1]);
    assert.ok(stored > 0 && stored < 40, `stored ${stored}`);
    assert.equal(
      await count('SELECT count(*) AS n FROM ris_images WHERE collection_id = $1', [collectionId]),
      stored,
    );
    assert.equal(
      await count('SELECT count(*) AS n FROM ris_jobs WHERE collection_id = $1', [collectionId]),
      40 - stored,
    );
    assert.equal(
      await count('SELECT count(*) AS n FROM ris_jobs WHERE collection_id = $1 AND locked_until > now()', [
        collectionId,
      ]),
      0,
      'no claim left behind',
    );
  });

  it('records failures with their error and does not retry them forever', { timeout: 180_000 }, async () => {
    const images = await folder('failing', 1, 3, 51);
    const good = await readFile(join(images, 'failing-0', 'img000.jpg'));
    await writeFile(join(images, 'failing-0', 'broken.jpg'), good.subarray(0, 200));
    const queued = await ris(home, [
      'index',
      images,
      '--collection',
      'failing',
      '--model',
      model,
      '--store',
      database.url,
      '--enqueue',
    ]);
    assert.equal(queued.code, 0, queued.stderr);
    const collectionId = Number(
      (await client.query(`SELECT id FROM ris_collections WHERE name = 'failing'`)).rows[0].id,
    );
    // A job whose every claim ended with a dead worker (an image that kills it): 3 attempts, lease over.
    await client.query(
      `INSERT INTO ris_jobs (collection_id, path, attempts, locked_by, locked_until)
       VALUES ($1, 'failing-0/poison.jpg', 3, 'gone:1:x', now() - interval '1 minute')`,
      [collectionId],
    );
    const run = await ris(home, [
      'worker',
      '--store',
      database.url,
      '--collections',
      'failing',
      '--until-done',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /stored 3 images, 1 failed/);
    const { rows } = await client.query(
      `SELECT path, state, attempts, error_code, last_error FROM ris_jobs WHERE collection_id = $1 ORDER BY path`,
      [collectionId],
    );
    assert.deepEqual(
      rows.map((r) => [r.path, r.state, r.attempts, r.error_code]),
      [
        ['failing-0/broken.jpg', 'failed', 1, 'CORRUPT_IMAGE'],
        ['failing-0/poison.jpg', 'failed', 3, 'ABANDONED'],
      ],
    );
    const info = await ris(home, ['collections', 'info', 'failing', '--store', database.url]);
    assert.match(info.stdout, /queue {7}0 pending, 2 failed/);
    assert.match(
      info.stdout,
      /failing-0\/broken\.jpg: .*truncated or corrupt.* \(CORRUPT_IMAGE, 1 attempts\)/,
    );
    assert.ok(info.stdout.includes(`database    ${database.location}`), info.stdout);
    // Queued again, a failed image gets a new chance.
    const requeued = await ris(home, [
      'index',
      images,
      '--collection',
      'failing',
      '--store',
      database.url,
      '--enqueue',
    ]);
    assert.match(requeued.stdout, /1 images queued of 4 found \(3 already stored, 0 already queued\)/);
  });

  it('a worker for another model refuses the collection (MODEL_MISMATCH)', async () => {
    const other = await writeTinyModel(dir, 'other', 'float', tinyConfig({ tensor: 'pooled' }));
    const run = await ris(home, [
      'worker',
      '--store',
      database.url,
      '--collections',
      'two',
      '--model',
      other,
    ]);
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      /Collection "two" uses the model .*tiny\.onnx but this worker runs .*other\.onnx/,
    );
  });
});

describe('servers and copies', () => {
  it('two ris serve on one database: an image added through another process is found through both', {
    timeout: 180_000,
  }, async () => {
    const images = await folder('served', 2, 5, 61);
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
    const servers = [0, 1].map(() =>
      start(home, ['serve', '--port', '0', '--collections', 'served', '--store', database.url]),
    );
    try {
      const urls: string[] = [];
      for (const server of servers) {
        for (let i = 0; i < 600 && !/open (http:\S+)\//.test(server.stdout()); i++)
          await new Promise((r) => setTimeout(r, 50));
        urls.push(/open (http:\S+)\//.exec(server.stdout())![1]!);
      }
      const extra = join(dir, 'extra-served.jpg');
      await writeClassFolders(join(dir, 'extra-src'), 1, 1, 48, 999, 'x');
      await copyFile(join(dir, 'extra-src', 'x0', 'img000.jpg'), extra);
      const search = async (url: string) => {
        const form = new FormData();
        form.set('image', new Blob([await readFile(extra)], { type: 'image/jpeg' }), 'extra.jpg');
        form.set('k', '1');
        const response = await fetch(`${url}/api/collections/served/search`, { method: 'POST', body: form });
        assert.equal(response.status, 200);
        return ((await response.json()) as { results: { id: number; similarity: number }[] }).results[0]!;
      };
      const size = async (url: string) =>
        ((await (await fetch(`${url}/api/collections`)).json()) as { size: number }[])[0]!.size;
      assert.deepEqual(await Promise.all(urls.map(size)), [10, 10]);
      const before = await Promise.all(urls.map(search));
      assert.ok(before.every((hit) => hit.similarity < 0.999));
      const added = await ris(home, ['add', 'served', extra, '--labels', 'new', '--store', database.url]);
      assert.equal(added.code, 0, added.stderr);
      const id = Number(/ids (\d+)/.exec(added.stdout)![1]);
      for (const url of urls) {
        const hit = await search(url);
        assert.equal(hit.id, id, `found through ${url}`);
        assert.ok(hit.similarity > 0.999);
        assert.equal(await size(url), 11, 'the size comes from the database');
        const thumbnail = await fetch(`${url}/api/collections/served/thumbnails/${id}`);
        assert.equal(thumbnail.headers.get('content-type'), 'image/webp');
        assert.equal(
          Buffer.from(await thumbnail.arrayBuffer())
            .subarray(8, 12)
            .toString('latin1'),
          'WEBP',
        );
      }
      const removed = await ris(home, ['remove', 'served', String(id), '--store', database.url]);
      assert.equal(removed.code, 0, removed.stderr);
      for (const url of urls) assert.notEqual((await search(url)).id, id);
    } finally {
      await Promise.all(servers.map((s) => s.kill()));
    }
  });

  it('images are read from the root, or from the images URL on a machine without it', {
    timeout: 120_000,
  }, async () => {
    const images = await folder('remote', 2, 3, 81);
    const moved = join(dir, 'remote-elsewhere');
    const http = createHttpServer(async (request, response) => {
      const file = join(moved, decodeURIComponent(new URL(request.url!, 'http://x').pathname));
      try {
        response.end(await readFile(file));
      } catch {
        response.statusCode = 404;
        response.end();
      }
    });
    const base = await listenOnLoopback(http);
    try {
      const queued = await ris(home, [
        'index',
        images,
        '--collection',
        'remote',
        '--model',
        model,
        '--store',
        database.url,
        '--enqueue',
        '--images-url',
        `${base}/files/`,
      ]);
      assert.equal(queued.code, 0, queued.stderr);
      // The workers' machine has no such folder: the files come from the URL.
      await mkdir(moved, { recursive: true });
      await rename(images, join(moved, 'files'));
      const run = await ris(home, [
        'worker',
        '--store',
        database.url,
        '--collections',
        'remote',
        '--until-done',
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /stored 6 images/);
      const store = postgresStore(database.url, { home });
      const collection = await store.open('remote');
      const [record] = (await collection.sample(1, 0, 1)).images;
      assert.equal(record!.absolutePath, `${base}/files/${record!.path}`);
      assert.deepEqual(
        await collection.readImage(record!),
        await readFile(join(moved, 'files', record!.path)),
      );
      const info = await ris(home, ['collections', 'info', 'remote', '--store', database.url]);
      assert.match(info.stdout, new RegExp(`images url  ${base}/files/`));
      await rm(join(moved, 'files', record!.path));
      await assert.rejects(collection.readImage(record!), /is gone: .* answers 404/);
      await collection.close();
      await store.close();
    } finally {
      http.close();
    }
  });

  it('collections copy: what a library keeps goes too (files sent, into the database; removals; file times)', async () => {
    const local = localStore(join(dir, 'copy-home'));
    const sentHere = await createCollection(local, 'sent-copy', { model });
    const sources = await folder('sent-src', 1, 2, 91);
    const bytes = [
      await readFile(join(sources, 'sent-src-0', 'img000.jpg')),
      await readFile(join(sources, 'sent-src-0', 'img001.jpg')),
    ];
    await mkdir(join(sentHere.dir, STAGING_DIR), { recursive: true });
    const uploads = [];
    for (const [i, content] of bytes.entries()) {
      const file = stagingPath(sentHere.dir);
      await writeFile(file, content);
      uploads.push({ name: `sent ${i}.jpg`, file });
    }
    assert.equal((await addUploads(sentHere, uploads)).added.length, 2);
    const photos = await folder('followed-copy', 2, 2, 81);
    const followedHere = await createCollection(local, 'followed-copy', { model, root: photos });
    assert.ok(isLibraryCollection(followedHere));
    assert.equal((await rescan(followedHere)).added, 4);
    await removeImages(followedHere, ['followed-copy-0/img000.jpg']);
    const store = postgresStore(database.url, { home: join(dir, 'copy-pg-home') });
    await copyCollection(sentHere, store);
    await copyCollection(followedHere, store);
    const [files, exclusions] = [await followedHere.storedFiles(), await followedHere.exclusions()];
    await sentHere.close();
    await followedHere.close();
    // The local collection and its files are gone: the copy serves what was sent from the database.
    await deleteCollection(local, 'sent-copy');
    const sent = await store.open('sent-copy');
    assert.equal(sent.followsFolder, false);
    const { ids, paths } = await sent.storedVectors();
    assert.equal(ids.length, 2);
    for (const [i, id] of ids.entries()) {
      const record = (await sent.get(id))!;
      assert.match(paths[i]!, /^\/ris:uploads\/[0-9a-f]{16}-sent \d\.jpg$/);
      assert.ok(sent.isUpload(record));
      assert.deepEqual(await sent.readImage(record), bytes[Number(/sent (\d)/.exec(paths[i]!)![1])]);
    }
    const kept = () =>
      count(
        'SELECT count(*) AS n FROM ris_uploads u JOIN ris_images i ON i.id = u.image_id WHERE i.collection_id = $1',
        [sent.id],
      );
    assert.equal(await kept(), 2);
    await removeImages(sent, [ids[0]!]);
    assert.equal(await kept(), 1);
    await sent.close();
    // The folder's removals and its files' times came along: a rescan finds nothing to do.
    const followed = await store.open('followed-copy');
    assert.equal(followed.followsFolder, true);
    assert.deepEqual(await followed.exclusions(), exclusions);
    const times = (list: { path: string; mtimeMs: number | null }[]) =>
      list.map((f) => [f.path, f.mtimeMs]).sort();
    assert.deepEqual(times(await followed.storedFiles()), times(files));
    assert.deepEqual(await rescan(followed), { ...emptyRescanReport(), excluded: 1, unchanged: 3 });
    await followed.close();
    await store.close();
  });

  it('collections copy: a local collection into Postgres with the same vectors, answers and thumbnails', {
    timeout: 180_000,
  }, async () => {
    const images = await folder('copied', 3, 5, 71);
    const indexed = await ris(home, ['index', images, '--collection', 'copied', '--model', model]);
    assert.equal(indexed.code, 0, indexed.stderr);
    const copy = await ris(home, ['collections', 'copy', 'copied', '--to', database.url]);
    assert.equal(copy.code, 0, copy.stderr);
    assert.match(
      copy.stdout,
      new RegExp(
        `^copied copied from .* to ${literally(database.location)}: 15 images in [\\d.]+ s; vectors reused, nothing embedded again\n$`,
      ),
    );
    const rerun = await ris(home, ['collections', 'copy', 'copied', '--to', database.url]);
    assert.match(rerun.stdout, /: 0 images \(15 were already there\)/);
    const local = await Collection.open('copied', { home });
    const store = postgresStore(database.url, { home });
    const remote = await store.open('copied');
    const [a, b] = [await local.storedVectors(), await remote.storedVectors()];
    assert.deepEqual(b.paths, a.paths);
    assert.deepEqual(b.labels, a.labels);
    assert.deepEqual(b.vectors, a.vectors, 'the very float32 vectors');
    assert.equal(remote.manifest.modelId, local.manifest.modelId);
    for (const file of ['copied-0/img001.jpg', 'copied-2/img004.jpg']) {
      const x = await local.search(join(images, file), { k: 15 });
      const y = await remote.search(join(images, file), { k: 15 });
      assert.deepEqual(
        y.map((h) => h.path),
        x.map((h) => h.path),
      );
      const [one, two] = [await local.get(x[0]!.id), await remote.get(y[0]!.id)];
      assert.deepEqual({ ...two, id: 0 }, { ...one, id: 0 });
    }
    const collectionId = (await store.row('copied'))!.id;
    assert.equal(
      await count(
        'SELECT count(*) AS n FROM ris_thumbnails t JOIN ris_images i ON i.id = t.image_id WHERE collection_id = $1',
        [collectionId],
      ),
      15,
    );
    await local.close();
    await remote.close();
    await store.close();
    // A collection of that name made with another model is not overwritten.
    const other = await writeTinyModel(join(dir), 'third', 'float', tinyConfig({ tensor: 'pooled' }));
    const otherHome = join(dir, 'other-home');
    await mkdir(otherHome, { recursive: true });
    assert.equal(
      (await ris(otherHome, ['index', images, '--collection', 'copied', '--model', other])).code,
      0,
    );
    const clash = await ris(otherHome, ['collections', 'copy', 'copied', '--to', database.url]);
    assert.equal(clash.code, 2);
    assert.match(
      clash.stderr,
      new RegExp(`Collection "copied" already exists in ${literally(database.location)} with another model`),
    );
    const missingTo = await ris(home, ['collections', 'copy', 'copied']);
    assert.equal(missingTo.code, 2);
    assert.match(missingTo.stderr, /needs --to postgres:/);
  });
});

describe('a worker asking whether its cut-off transaction committed', () => {
  it('reads a transaction id the server never recorded (lost in a crash) as not committed', async () => {
    const db = new PgDatabase(database.url, database.location);
    try {
      await db.query('CREATE TABLE IF NOT EXISTS ris_probe (x int)');
      const done = await db.transaction(async (c) => {
        await c.query('INSERT INTO ris_probe VALUES (1)');
        return Number((await c.query<{ xid: string }>('SELECT txid_current() AS xid')).rows[0]!.xid);
      });
      assert.equal(await transactionCommitted(db, done), true);
      // After a crash the server may hand out again ids a worker had been given: one past any it has
      // given is "in the future" to txid_status, an error rather than an answer.
      assert.equal(await transactionCommitted(db, done + 1000), false);
    } finally {
      await db.query('DROP TABLE IF EXISTS ris_probe');
      await db.end();
    }
  });
});
