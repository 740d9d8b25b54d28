import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PlaneCache } from '../src/collection/plane-cache.ts';
import { type ImagePlanes, imagePlanes } from '../src/collection/planes.ts';
import { scene } from './fixtures/duplicate-images.ts';

const FILE = 'duplicates-planes.bin';

/** Planes of distinct real pictures, by their content hash. */
async function entries(from: number, count: number): Promise<[string, ImagePlanes][]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const bytes = await scene(from + i, 120, 90);
      return [createHash('sha256').update(bytes).digest('hex'), await imagePlanes(bytes, 120, 90)] as [
        string,
        ImagePlanes,
      ];
    }),
  );
}

function assertHolds(cache: PlaneCache, expected: [string, ImagePlanes][]) {
  for (const [sha, planes] of expected) {
    const found = cache.get(sha);
    assert.ok(found, `planes of ${sha.slice(0, 8)} kept`);
    assert.deepEqual(found, planes);
  }
}

describe('the planes cache (duplicates-planes.bin)', () => {
  let dir: string;
  let first: [string, ImagePlanes][];
  let second: [string, ImagePlanes][];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ris-planes-'));
    first = await entries(1, 3);
    second = await entries(10, 2);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('appends batches, also from writers at once, and reads every record back', async () => {
    await rm(join(dir, FILE), { force: true });
    // Two appends at once (as two processes adding to one collection), the first creating the file: one
    // header, and each batch lands whole.
    await Promise.all([PlaneCache.append(dir, first.slice(0, 1)), PlaneCache.append(dir, second)]);
    await PlaneCache.append(dir, first.slice(1));
    const bytes = await readFile(join(dir, FILE));
    assert.equal(bytes.subarray(0, 8).toString(), 'RISPLANE');
    const record = (bytes.length - 32) / 5;
    assert.ok(Number.isInteger(record) && record > 7000, `five whole records: ${bytes.length} bytes`);
    assertHolds(await PlaneCache.open(dir), [...first, ...second]);
  });

  it('two processes adding to a folder without a cache at once: one header, both records', async () => {
    const fixture = join(import.meta.dirname, 'fixtures', 'append-planes.ts');
    const run = (seed: number) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', fixture, dir, String(seed)]);
    for (let round = 0; round < 3; round++) {
      await rm(join(dir, FILE), { force: true });
      await Promise.all([run(40 + 2 * round), run(41 + 2 * round)]);
      const cache = await PlaneCache.open(dir);
      assertHolds(cache, await entries(40 + 2 * round, 2));
    }
  });

  it('keeps the records before a torn one, appends nothing after it, and a search rewrites the file', async () => {
    await rm(join(dir, FILE), { force: true });
    await PlaneCache.append(dir, [...first, ...second]);
    const whole = (await stat(join(dir, FILE))).size;
    await truncate(join(dir, FILE), whole - 100); // a kill in the middle of the last record's write
    await PlaneCache.append(dir, await entries(20, 1));
    assert.equal((await stat(join(dir, FILE))).size, whole - 100, 'nothing appended after a torn record');
    const cache = await PlaneCache.open(dir);
    assertHolds(cache, [...first, ...second.slice(0, 1)]);
    assert.equal(cache.get(second[1]![0]), undefined, 'the torn record is not used');
    cache.set(...second[1]!);
    await cache.save(100);
    assert.equal((await stat(join(dir, FILE))).size, whole, 'written whole again');
    assertHolds(await PlaneCache.open(dir), [...first, ...second]);
  });

  it('skips a damaged record alone, and rewrites the file even with nothing new', async () => {
    await rm(join(dir, FILE), { force: true });
    await PlaneCache.append(dir, [...first, ...second]);
    const bytes = await readFile(join(dir, FILE));
    const record = (bytes.length - 32) / 5;
    bytes[32 + 3 * record + 500]! ^= 0x40; // inside the fourth record's planes
    await writeFile(join(dir, FILE), bytes);
    const cache = await PlaneCache.open(dir);
    assertHolds(cache, [...first, second[1]!]);
    assert.equal(cache.get(second[0]![0]), undefined);
    await cache.save(100);
    assert.equal((await stat(join(dir, FILE))).size, 32 + 4 * record, 'the damaged record is gone');
    assertHolds(await PlaneCache.open(dir), [...first, second[1]!]);
  });

  it('writes through no link planted in its place, and leaves no temp file', async () => {
    await rm(join(dir, FILE), { force: true });
    // Another collection's cache, linked into this folder: not appended to.
    const other = await mkdtemp(join(tmpdir(), 'ris-planes-other-'));
    await PlaneCache.append(other, first);
    const before = (await stat(join(other, FILE))).size;
    await symlink(join(other, FILE), join(dir, FILE));
    await PlaneCache.append(dir, second);
    assert.equal((await stat(join(other, FILE))).size, before);
    await rm(join(dir, FILE));
    await rm(other, { recursive: true });
    assert.deepEqual(
      (await readdir(dir)).filter((name) => name.endsWith('.tmp')),
      [],
    );
  });

  it('keeps what another process appended while a search had the file open', async () => {
    await rm(join(dir, FILE), { force: true });
    await PlaneCache.append(dir, first);
    const cache = await PlaneCache.open(dir);
    await PlaneCache.append(dir, second); // an add committed meanwhile
    const decoded = await entries(30, 1);
    cache.set(...decoded[0]!);
    await cache.save(100);
    assertHolds(await PlaneCache.open(dir), [...first, ...second, ...decoded]);
  });

  it('replaces a file of another version or no cache at all, and appends to it only once replaced', async () => {
    await writeFile(join(dir, FILE), Buffer.concat([Buffer.from('RISPLANE'), Buffer.alloc(100, 1)]));
    await PlaneCache.append(dir, first);
    assert.equal((await stat(join(dir, FILE))).size, 108, 'not appended to a file it cannot read');
    const cache = await PlaneCache.open(dir);
    assert.equal(cache.get(first[0]![0]), undefined);
    await cache.save(100);
    await PlaneCache.append(dir, first);
    assertHolds(await PlaneCache.open(dir), first);
  });
});
