import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Random } from '../src/ann/random.ts';
import { Invariants } from './crash-harness.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { killAt, ris, start } from './ris-process.ts';

/**
 * Real `ris` processes killed with SIGKILL at every write step (through the test-only pause hook) and at
 * seeded random moments, and two writers at once in every pairing; after each, the invariants of
 * crash-harness.ts must hold. RIS_CRASH_ROUNDS sets the random rounds (the closing note's run uses 20).
 */
const ROUNDS = Number(process.env.RIS_CRASH_ROUNDS ?? 3);

let dir: string;
let model: string;
let sets: string[] = [];
let nextSet = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-crash-'));
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  // Folders of 4 new images each, for the adds (distinct pictures: every image must find itself first).
  sets = [];
  for (let s = 0; s < 12 + 8 * ROUNDS; s++) {
    const folder = join(dir, 'sets', `set${s}`);
    await writeClassFolders(folder, 2, 2, 48, 1000 + s, `s${s}-`);
    sets.push(folder);
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const freshSet = () => {
  const set = sets[nextSet++];
  assert.ok(set, 'enough image sets prepared');
  return set;
};

/** A collection of `perClass` × 4 images: exact search, or IVF-PQ from the start. */
async function collection(
  name: string,
  kind: 'flat' | 'hnsw' | 'ivf-pq',
  perClass: number,
): Promise<Invariants> {
  const home = join(dir, `home-${name}`);
  const images = join(dir, `images-${name}`);
  await writeClassFolders(images, 4, perClass, 48, { flat: 3, hnsw: 5, 'ivf-pq': 4 }[kind]);
  const args = ['index', images, '--collection', name, '--model', model, '--index', kind];
  if (kind === 'ivf-pq') args.push('--partitions', '8', '--sub-vectors', '16');
  const indexed = await ris(home, args);
  assert.equal(indexed.code, 0, indexed.stderr);
  const invariants = new Invariants(home, name);
  await invariants.check('after indexing');
  return invariants;
}

const someIds = (ids: number[], random: Random, count: number) =>
  Array.from(random.sample(ids.length, Math.min(count, ids.length)), (i) => String(ids[i]));

for (const kind of ['flat', 'hnsw', 'ivf-pq'] as const) {
  describe(`kill -9 at every write step (${kind} index)`, () => {
    let c: Invariants;
    const random = new Random({ flat: 1, hnsw: 3, 'ivf-pq': 2 }[kind]);
    before(async () => {
      c = await collection(`steps-${kind}`, kind, kind === 'ivf-pq' ? 70 : 8);
    });

    for (const step of ['add:committed', 'index:temp-written', 'index:renamed']) {
      it(`ris add killed at ${step}`, async () => {
        const { paused } = await killAt(c.home, ['add', c.name, freshSet()], step);
        assert.ok(paused, `reached ${step}`);
        await c.check(`add killed at ${step}`);
      });
    }
    for (const step of ['remove:committed', 'index:temp-written', 'index:renamed']) {
      it(`ris remove killed at ${step}`, async () => {
        const ids = someIds(await c.storedIds(), random, 3);
        const { paused } = await killAt(c.home, ['remove', c.name, ...ids], step);
        assert.ok(paused, `reached ${step}`);
        await c.check(`remove of ${ids} killed at ${step}`);
        const left = new Set(await c.storedIds());
        assert.ok(
          ids.every((id) => !left.has(Number(id))),
          'a committed remove stays done',
        );
      });
    }
    for (const step of ['retrain:trained', 'index:temp-written', 'index:renamed']) {
      it(`ris retrain killed at ${step}`, async () => {
        const { paused } = await killAt(c.home, ['retrain', c.name], step);
        assert.ok(paused, `reached ${step}`);
        await c.check(`retrain killed at ${step}`);
      });
    }
    it('leaves no temp file behind once the next command ran', async () => {
      const files = await readdir(join(c.home, 'collections', c.name));
      assert.deepEqual(
        files.filter((f) => f.endsWith('.tmp')),
        [],
      );
    });
  });
}

describe('kill -9 at seeded random moments', () => {
  it(`survives ${ROUNDS * 3} kills during add, remove and retrain`, async () => {
    const c = await collection('random', 'ivf-pq', 70);
    const random = new Random(42);
    for (let round = 0; round < ROUNDS * 3; round++) {
      const op = (['add', 'remove', 'retrain'] as const)[round % 3]!;
      const args =
        op === 'add'
          ? ['add', c.name, freshSet()]
          : op === 'remove'
            ? ['remove', c.name, ...someIds(await c.storedIds(), random, 4)]
            : ['retrain', c.name];
      const process = start(c.home, args);
      // Startup is about 0.8 s: kills land before, during and after the work.
      await new Promise((r) => setTimeout(r, 300 + random.int(1700)));
      await process.kill();
      await c.check(`round ${round}: ${args.join(' ')}`);
    }
  });
});

describe('two writers at once', () => {
  const pairings = [
    ['add', 'add'],
    ['add', 'remove'],
    ['remove', 'retrain'],
  ] as const;
  for (const [first, second] of pairings) {
    it(`${first} + ${second}: both succeed, nothing lost, nothing left behind (${ROUNDS} rounds)`, async () => {
      const c = await collection(`pair-${first}-${second}`, 'ivf-pq', 70);
      const random = new Random(first.length * 7 + second.length);
      for (let round = 0; round < ROUNDS; round++) {
        const ids = await c.storedIds();
        const removed = someIds(ids, random, 3);
        const plan = (op: 'add' | 'remove' | 'retrain') =>
          op === 'add'
            ? ['add', c.name, freshSet()]
            : op === 'remove'
              ? ['remove', c.name, ...removed]
              : ['retrain', c.name];
        const a = start(c.home, plan(first));
        await new Promise((r) => setTimeout(r, random.int(800)));
        const b = start(c.home, plan(second));
        const [ra, rb] = await Promise.all([a.exited, b.exited]);
        assert.equal(ra.code, 0, `round ${round}: ${first} failed: ${ra.stderr}`);
        assert.equal(rb.code, 0, `round ${round}: ${second} failed: ${rb.stderr}`);
        await c.check(`round ${round} of ${first} + ${second}`);
        const now = new Set(await c.storedIds());
        if (first === 'add') {
          const added = second === 'add' ? 2 : 1;
          assert.equal(now.size, ids.length + added * 4 - (second === 'remove' ? removed.length : 0));
        }
        if (second === 'remove' || first === 'remove')
          assert.ok(
            removed.every((id) => !now.has(Number(id))),
            'the removed images are gone',
          );
      }
    });
  }
});
