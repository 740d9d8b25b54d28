import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stampChecksum } from '../src/ann/format.ts';
import { Random } from '../src/ann/random.ts';
import {
  ArgumentError,
  type DistanceType,
  FileFormatError,
  FlatIndex,
  HnswIndex,
  type HnswStorage,
  loadIndex,
  NO_ID,
  openIndex,
  readFvecs,
  useKernels,
} from '../src/index.ts';
import { clustered, exactNeighbours, noSharedData, recallAtK, sharedData } from './helpers.ts';

const d = 32;
const base = clustered(4000, d, 40);
const queries = clustered(100, d, 40, 99);
const nq = queries.length / d;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-hnsw-'));
});
after(async () => {
  useKernels('wasm-simd');
  await rm(dir, { recursive: true, force: true });
});

function built(options: Partial<ConstructorParameters<typeof HnswIndex>[0]> = {}, data = base): HnswIndex {
  const index = new HnswIndex({ dimension: d, ...options });
  index.add(data);
  return index;
}

/** k-recall@k of the index's searches against exact search over `data` (ids 0…n−1). */
function recallOf(
  index: HnswIndex,
  data: Float32Array,
  distanceType: DistanceType = 'l2',
  efSearch = 64,
): number {
  const truth = exactNeighbours(data, queries, d, distanceType);
  return recallAtK(index.searchBatch(queries, 10, { efSearch }), truth, nq, 10);
}

describe('HnswIndex: recall against exact search', () => {
  // Thresholds sit a little under what the graph reaches at ef 64 (l2 and cosine 0.99, dot 0.89: inner
  // product is no metric, so the neighbour heuristic prunes less wisely).
  for (const [distanceType, threshold] of [
    ['l2', 0.97],
    ['cosine', 0.97],
    ['dot', 0.85],
  ] as const) {
    it(`${distanceType}: 10-recall@10 ≥ ${threshold} at efSearch 64, and recall grows with efSearch`, () => {
      const index = built({ distanceType });
      const low = recallOf(index, base, distanceType, 10);
      const high = recallOf(index, base, distanceType, 64);
      assert.ok(high >= threshold, `recall ${high} at efSearch 64`);
      assert.ok(high >= low, `recall ${high} at efSearch 64 is below ${low} at 10`);
    });
  }

  for (const [storage, threshold] of [
    ['float16', 0.97],
    ['int8', 0.93],
  ] as const) {
    it(`${storage} storage keeps 10-recall@10 ≥ ${threshold} in ${storage === 'int8' ? 'a quarter' : 'half'} the vector memory`, () => {
      const index = built({ storage });
      const recall = recallOf(index, base);
      assert.ok(recall >= threshold, `${storage} recall ${recall}`);
      const full = built({});
      const ratio = index.memoryUsage().vectors / full.memoryUsage().vectors;
      assert.ok(ratio <= (storage === 'int8' ? 0.3 : 0.5), `vector memory ratio ${ratio}`);
      assert.ok(index.memoryUsage().total < full.memoryUsage().total);
    });
  }

  it('int8 storage widens its ranges for vectors added later (one by one, growing values)', () => {
    const index = new HnswIndex({ dimension: d, storage: 'int8' });
    // The first rows span a narrow range; the later ones reach far outside it.
    for (let i = 0; i < 1500; i++)
      index.add(base.subarray(i * d, (i + 1) * d).map((v) => v * (0.2 + i / 1500)));
    const scaled = new Float32Array(1500 * d);
    for (let i = 0; i < 1500; i++)
      scaled.set(
        base.subarray(i * d, (i + 1) * d).map((v) => v * (0.2 + i / 1500)),
        i * d,
      );
    const truth = exactNeighbours(scaled, queries, d);
    const recall = recallAtK(index.searchBatch(queries, 10), truth, nq, 10);
    assert.ok(recall >= 0.9, `recall ${recall}`);
  });

  it('Caltech101 MobileNetV2 vectors: 10-recall@10 ≥ 0.97 (float32), ≥ 0.95 (int8) at efSearch 64', {
    skip: noSharedData,
  }, async () => {
    const { vectors, dimension } = await readFvecs(
      join(sharedData, 'vectors', 'caltech101-mobilenetv2.fvecs'),
    );
    const order = new Random(0).sample(vectors.length / dimension, 3200);
    const rows = new Float32Array(order.length * dimension);
    order.forEach((row, i) => {
      rows.set(vectors.subarray(row * dimension, (row + 1) * dimension), i * dimension);
    });
    const q = rows.subarray(0, 200 * dimension);
    const data = rows.subarray(200 * dimension);
    const truth = exactNeighbours(data, q, dimension);
    for (const [storage, threshold] of [
      ['float32', 0.97],
      ['int8', 0.95],
    ] as const) {
      const index = new HnswIndex({ dimension, storage });
      index.add(data);
      const recall = recallAtK(index.searchBatch(q, 10, { efSearch: 64 }), truth, 200, 10);
      assert.ok(recall >= threshold, `${storage}: recall ${recall}`);
    }
  });
});

describe('HnswIndex: determinism and files', () => {
  it('the same seed and insertions give a byte-identical file, however the adds are batched', () => {
    const data = base.subarray(0, 1500 * d);
    const once = built({ seed: 7 }, data).toBytes();
    const batched = new HnswIndex({ dimension: d, seed: 7 });
    for (let i = 0; i < 1500; i += 250) batched.add(data.subarray(i * d, (i + 250) * d));
    assert.deepEqual(batched.toBytes(), once);
    const other = built({ seed: 8 }, data).toBytes();
    assert.notDeepEqual(other, once, 'another seed draws other levels');
  });

  it('a save and load in the middle of the insertions changes nothing', () => {
    const data = base.subarray(0, 1200 * d);
    const straight = built({ seed: 3 }, data).toBytes();
    const first = built({ seed: 3 }, data.subarray(0, 600 * d));
    const reopened = HnswIndex.fromBytes(first.toBytes());
    reopened.add(data.subarray(600 * d));
    assert.deepEqual(reopened.toBytes(), straight);
  });

  for (const storage of ['float32', 'float16', 'int8'] as const) {
    it(`${storage}: round-trips through toBytes / openIndex / save / loadIndex with identical searches`, async () => {
      const index = built({ storage, distanceType: 'cosine', m: 8, efConstruction: 60 });
      index.remove([5, 6, 7]);
      const expected = index.searchBatch(queries, 10, { efSearch: 40 });
      const opened = openIndex(index.toBytes(), 'hnsw.ris');
      assert.ok(opened instanceof HnswIndex);
      assert.deepEqual(opened.searchBatch(queries, 10, { efSearch: 40 }), expected);
      assert.deepEqual(opened.describe(), index.describe());
      const file = join(dir, `${storage}.ris`);
      await index.save(file);
      const loaded = await loadIndex(file);
      assert.deepEqual(loaded.searchBatch(queries, 10, { efSearch: 40 }), expected);
      assert.deepEqual(loaded.ids(), index.ids());
      assert.deepEqual((await HnswIndex.load(file)).toBytes(), index.toBytes());
    });
  }

  it('an empty index saves, loads, searches (nothing) and takes vectors afterwards', () => {
    const empty = HnswIndex.fromBytes(new HnswIndex({ dimension: d }).toBytes());
    assert.equal(empty.size, 0);
    assert.equal(empty.search(queries.subarray(0, d), 5).ids.length, 0);
    assert.equal(empty.entryPoint(), undefined);
    empty.add(base.subarray(0, 10 * d));
    assert.equal(empty.search(base.subarray(3 * d, 4 * d), 1).ids[0], 3);
  });

  it('searches the same after useKernels switches to the TypeScript kernels under it', () => {
    const index = built({ m: 8 }, base.subarray(0, 1000 * d));
    const expected = index.searchBatch(queries, 10);
    useKernels('js');
    try {
      const found = index.searchBatch(queries, 10);
      assert.deepEqual(found.ids, expected.ids);
      for (let i = 0; i < found.distances.length; i++) {
        assert.ok(
          Math.abs(found.distances[i]! - expected.distances[i]!) < 1e-3 * (1 + expected.distances[i]!),
        );
      }
      index.add(base.subarray(1000 * d, 1100 * d));
      assert.equal(index.search(base.subarray(1050 * d, 1051 * d), 1).ids[0], 1050);
    } finally {
      useKernels('wasm-simd');
    }
    assert.equal(index.search(base.subarray(1060 * d, 1061 * d), 1).ids[0], 1060);
  });
});

describe('HnswIndex: add, remove, compaction', () => {
  it('adds one by one with explicit ids, finds each vector as its own nearest neighbour', () => {
    const index = new HnswIndex({ dimension: d, m: 8 });
    for (let i = 0; i < 300; i++) index.add(base.subarray(i * d, (i + 1) * d), Uint32Array.of(1000 + i));
    assert.equal(index.size, 300);
    assert.equal(index.trained, true);
    for (const i of [0, 150, 299])
      assert.equal(index.search(base.subarray(i * d, (i + 1) * d), 1).ids[0], 1000 + i);
    assert.deepEqual(index.add(base.subarray(300 * d, 302 * d)), Uint32Array.of(1300, 1301));
  });

  it('takes sparse 32-bit ids (the id lookup turns into a hash) through add, remove, compaction and files', () => {
    const ids = Uint32Array.from({ length: 800 }, (_, i) => 3_000_000_000 + i * 7919);
    const index = new HnswIndex({ dimension: d, m: 8 });
    index.add(base.subarray(0, 400 * d), ids.subarray(0, 400));
    index.add(base.subarray(400 * d, 800 * d), ids.subarray(400));
    assert.equal(index.search(base.subarray(650 * d, 651 * d), 1).ids[0], ids[650]);
    assert.equal(index.remove(ids.subarray(0, 300)), 300);
    assert.throws(() => index.add(base.subarray(0, d), ids.subarray(500, 501)), /already in the index/);
    index.compact();
    assert.deepEqual(index.ids(), ids.subarray(300));
    const reopened = HnswIndex.fromBytes(index.toBytes());
    assert.equal(reopened.search(base.subarray(777 * d, 778 * d), 1).ids[0], ids[777]);
    assert.deepEqual(reopened.add(base.subarray(0, d)), Uint32Array.of(ids[799]! + 1));
  });

  it('never returns removed ids, keeps recall over the rest, and compacts them away', () => {
    const index = built({ compactAt: 1 });
    const gone = Uint32Array.from({ length: 600 }, (_, i) => i * 5);
    assert.equal(index.remove(gone), 600);
    assert.equal(index.remove(gone), 0, 'removing again removes nothing');
    assert.equal(index.size, 3400);
    assert.equal(index.removedCount, 600);
    const removed = (id: number) => id < 3000 && id % 5 === 0;
    const keep = Uint32Array.from({ length: 4000 }, (_, i) => i).filter((i) => !removed(i));
    const rest = new Float32Array(keep.length * d);
    keep.forEach((id, i) => {
      rest.set(base.subarray(id * d, (id + 1) * d), i * d);
    });
    const truth = exactNeighbours(rest, queries, d);
    const mapped = { ids: truth.ids.map((i) => keep[i]!), distances: truth.distances };
    const check = (label: string) => {
      const found = index.searchBatch(queries, 10);
      for (const id of found.ids)
        assert.ok(id === NO_ID || !removed(id), `${label}: removed id ${id} returned`);
      const recall = recallAtK(found, mapped, nq, 10);
      assert.ok(recall >= 0.95, `${label}: recall ${recall}`);
    };
    check('with tombstones');
    assert.equal(index.compact(), 600);
    assert.equal(index.removedCount, 0);
    assert.equal(index.size, 3400);
    assert.deepEqual(index.ids(), keep);
    check('after compaction');
    for (const level of index.levels()) assert.equal(level.removed.indexOf(1), -1);
  });

  it('compaction repairs the links around removed nodes: recall as a fresh build, every node reachable', () => {
    const index = built({ compactAt: 1, m: 8 });
    // Every other vector goes: half the links of every node led to removed ones.
    index.remove(Uint32Array.from({ length: 2000 }, (_, i) => 2 * i));
    index.compact();
    const rest = new Float32Array(2000 * d);
    for (let i = 0; i < 2000; i++) rest.set(base.subarray((2 * i + 1) * d, (2 * i + 2) * d), i * d);
    const fresh = built({ m: 8 }, rest);
    const truth = exactNeighbours(rest, queries, d);
    const mapped = { ids: truth.ids.map((i) => 2 * i + 1), distances: truth.distances };
    const repaired = recallAtK(index.searchBatch(queries, 10, { efSearch: 12 }), mapped, nq, 10);
    const rebuilt = recallAtK(fresh.searchBatch(queries, 10, { efSearch: 12 }), truth, nq, 10);
    assert.ok(repaired >= rebuilt - 0.05, `recall ${repaired} after repair vs ${rebuilt} rebuilt`);
    // Level 0 is one connected graph: a walk from the entry point reaches every node.
    const level0 = index.levels()[0]!;
    const seen = new Uint8Array(level0.ids.length);
    const stack = [level0.ids.indexOf(index.entryPoint()!)];
    seen[stack[0]!] = 1;
    while (stack.length > 0) {
      const v = stack.pop()!;
      for (let j = level0.offsets[v]!; j < level0.offsets[v + 1]!; j++) {
        const w = level0.links[j]!;
        if (!seen[w]) {
          seen[w] = 1;
          stack.push(w);
        }
      }
    }
    assert.equal(seen.indexOf(0), -1, 'some node is unreachable after compaction');
  });

  it('compacts on its own once tombstones reach compactAt, and empties cleanly', () => {
    const index = built({ compactAt: 0.25 }, base.subarray(0, 1000 * d));
    index.remove(Uint32Array.from({ length: 200 }, (_, i) => i));
    assert.equal(index.removedCount, 200);
    index.remove(Uint32Array.from({ length: 100 }, (_, i) => 200 + i));
    assert.equal(index.removedCount, 0, 'the second removal crossed 25 % and compacted');
    assert.equal(index.size, 700);
    assert.equal(index.search(base.subarray(500 * d, 501 * d), 1).ids[0], 500);
    index.remove(index.ids());
    assert.equal(index.size, 0);
    assert.equal(index.search(base.subarray(0, d), 3).ids.length, 0);
    assert.deepEqual(
      index.add(base.subarray(0, 2 * d)),
      Uint32Array.of(1000, 1001),
      'ids go on after the largest ever',
    );
  });

  it('takes a removed id again (an update) and finds the new vector under it', () => {
    const index = built({}, base.subarray(0, 500 * d));
    index.remove([42]);
    index.add(base.subarray(900 * d, 901 * d), Uint32Array.of(42));
    assert.equal(index.search(base.subarray(900 * d, 901 * d), 1).ids[0], 42);
    assert.equal(index.size, 500);
    // The tombstone gave its id up: the graph shows 42 once, the tombstone as NO_ID.
    const level0 = index.levels()[0]!;
    assert.equal(level0.ids.filter((id) => id === 42).length, 1);
    assert.equal(level0.removed[level0.ids.indexOf(NO_ID)], 1);
    const reopened = HnswIndex.fromBytes(index.toBytes());
    assert.equal(reopened.search(base.subarray(900 * d, 901 * d), 1).ids[0], 42);
    assert.deepEqual(reopened.ids(), index.ids());
    index.compact();
    assert.equal(index.search(base.subarray(900 * d, 901 * d), 1).ids[0], 42);
  });
});

describe('HnswIndex: levels and explainSearch', () => {
  const index = built({ m: 8, efConstruction: 100 }, base.subarray(0, 2000 * d));

  it('levels(): every node on level 0, thinning levels above, links within each level', () => {
    const levels = index.levels();
    assert.ok(levels.length >= 2);
    assert.equal(levels[0]!.ids.length, 2000);
    for (const [l, level] of levels.entries()) {
      if (l > 0) assert.ok(level.ids.length < levels[l - 1]!.ids.length);
      assert.equal(level.offsets.length, level.ids.length + 1);
      assert.equal(level.offsets[level.ids.length], level.links.length);
      for (let i = 0; i < level.ids.length; i++) {
        const count = level.offsets[i + 1]! - level.offsets[i]!;
        assert.ok(count <= (l === 0 ? 16 : 8), `node ${i} of level ${l} has ${count} links`);
      }
      for (const to of level.links) assert.ok(to < level.ids.length);
    }
    assert.deepEqual(levels.at(-1)!.ids.includes(index.entryPoint()!), true);
  });

  it('explainSearch returns what search returns, and its trace descends to the result', () => {
    for (let qi = 0; qi < 20; qi++) {
      const query = queries.subarray(qi * d, (qi + 1) * d);
      const explained = index.explainSearch(query, 5, { efSearch: 30 });
      assert.deepEqual(explained.results, index.search(query, 5, { efSearch: 30 }));
      assert.equal(explained.efSearch, 30);
      const { levels } = explained;
      assert.equal(levels.length, index.levels().length);
      assert.equal(levels[0]!.entryPoint.id, index.entryPoint());
      levels.forEach((level, i) => {
        assert.equal(level.level, levels.length - 1 - i);
        if (i > 0)
          assert.deepEqual(
            level.entryPoint,
            levels[i - 1]!.best,
            'each level starts at the best of the one above',
          );
        assert.ok(level.best.distance <= level.entryPoint.distance + 1e-6);
        assert.equal(level.visited.ids[0], level.entryPoint.id, 'the first node followed is the entry point');
        // Every link starts at a node whose links were followed.
        const expanded = new Set(level.visited.ids);
        for (const from of level.links.from) assert.ok(expanded.has(from));
        // Every distance recorded is the distance to that node.
        for (let j = 0; j < Math.min(5, level.links.to.length); j++) {
          const id = level.links.to[j]!;
          const exact = squaredDistance(query, base.subarray(id * d, (id + 1) * d));
          assert.ok(Math.abs(level.links.distances[j]! - exact) < 1e-3 * (1 + exact));
        }
      });
      const bottom = levels.at(-1)!;
      assert.deepEqual(bottom.best, {
        id: explained.results.ids[0],
        distance: explained.results.distances[0],
      });
      // The beam reached every result through a link it followed.
      const reached = new Set(bottom.links.to.filter((_, j) => bottom.links.accepted[j] === 1));
      reached.add(bottom.entryPoint.id);
      for (const id of explained.results.ids) assert.ok(reached.has(id), `result ${id} was never reached`);
    }
  });

  it('explainSearch on an empty index has no levels and no results', () => {
    const empty = new HnswIndex({ dimension: d });
    assert.deepEqual(empty.explainSearch(queries.subarray(0, d), 3), {
      efSearch: 64,
      levels: [],
      results: { ids: new Uint32Array(0), distances: new Float32Array(0) },
    });
    assert.deepEqual(empty.levels(), []);
  });
});

describe('HnswIndex: errors', () => {
  const throwsCode = (
    fn: () => unknown,
    type: typeof ArgumentError | typeof FileFormatError,
    code: string,
    message: RegExp,
  ) =>
    assert.throws(fn, (error: unknown) => {
      assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
      assert.equal((error as ArgumentError).code, code);
      assert.match((error as Error).message, message);
      return true;
    });

  it('refuses bad options, saying what it expected', () => {
    throwsCode(() => new HnswIndex(undefined as never), ArgumentError, 'INVALID_ARGUMENT', /options object/);
    throwsCode(
      () => new HnswIndex({ dimension: 0 }),
      ArgumentError,
      'OUT_OF_RANGE',
      /Expected dimension to be an integer between 1 and 65536 but received 0/,
    );
    throwsCode(
      () => new HnswIndex({ dimension: d, m: 1 }),
      ArgumentError,
      'OUT_OF_RANGE',
      /Expected m to be an integer between 2 and 128/,
    );
    throwsCode(
      () => new HnswIndex({ dimension: d, m: 4.5 }),
      ArgumentError,
      'INVALID_ARGUMENT',
      /Expected m to be an integer/,
    );
    throwsCode(
      () => new HnswIndex({ dimension: d, efConstruction: 0 }),
      ArgumentError,
      'OUT_OF_RANGE',
      /efConstruction/,
    );
    throwsCode(
      () => new HnswIndex({ dimension: d, storage: 'int4' as HnswStorage }),
      ArgumentError,
      'INVALID_ARGUMENT',
      /Expected storage to be one of 'float32', 'float16', 'int8' but received string "int4"/,
    );
    throwsCode(
      () => new HnswIndex({ dimension: d, distanceType: 'ip' as DistanceType }),
      ArgumentError,
      'INVALID_ARGUMENT',
      /distanceType/,
    );
    throwsCode(() => new HnswIndex({ dimension: d, seed: -1 }), ArgumentError, 'OUT_OF_RANGE', /seed/);
    throwsCode(
      () => new HnswIndex({ dimension: d, compactAt: 0 }),
      ArgumentError,
      'OUT_OF_RANGE',
      /Expected compactAt to be a fraction in \(0, 1\] but received 0/,
    );
  });

  it('refuses bad vectors and ids, and changes nothing when it does', () => {
    const index = built({}, base.subarray(0, 100 * d));
    const before = index.toBytes();
    throwsCode(
      () => index.add(new Float32Array(d + 1)),
      ArgumentError,
      'DIMENSION_MISMATCH',
      /whole rows of 32 values/,
    );
    throwsCode(
      () => index.add([1, 2] as never),
      ArgumentError,
      'INVALID_ARGUMENT',
      /Expected vectors to be a Float32Array/,
    );
    throwsCode(
      () => index.add(new Float32Array(d).fill(Number.NaN)),
      ArgumentError,
      'NON_FINITE_VALUE',
      /finite/,
    );
    throwsCode(
      () => index.add(new Float32Array(d), Uint32Array.of(5)),
      ArgumentError,
      'DUPLICATE_ID',
      /Id 5 is already in the index/,
    );
    throwsCode(
      () => index.add(new Float32Array(2 * d), Uint32Array.of(500, 500)),
      ArgumentError,
      'DUPLICATE_ID',
      /Id 500 is twice in this call/,
    );
    throwsCode(
      () => index.add(new Float32Array(d), Uint32Array.of(NO_ID)),
      ArgumentError,
      'OUT_OF_RANGE',
      /reserved/,
    );
    throwsCode(
      () => index.add(new Float32Array(2 * d), Uint32Array.of(1)),
      ArgumentError,
      'DIMENSION_MISMATCH',
      /one id per vector/,
    );
    throwsCode(
      () => index.remove('1' as never),
      ArgumentError,
      'INVALID_ARGUMENT',
      /Uint32Array or an array/,
    );
    const f16 = new HnswIndex({ dimension: 2, storage: 'float16' });
    throwsCode(
      () => f16.add(Float32Array.of(1, 70000)),
      ArgumentError,
      'OUT_OF_RANGE',
      /fit float16 storage .* value 1 of row 0 is 70000; use storage: 'float32'/,
    );
    assert.equal(f16.size, 0);
    assert.deepEqual(index.toBytes(), before);
  });

  it('refuses bad searches', () => {
    const index = built({}, base.subarray(0, 100 * d));
    const q = base.subarray(0, d);
    throwsCode(() => index.search(new Float32Array(3), 1), ArgumentError, 'DIMENSION_MISMATCH', /length 32/);
    throwsCode(
      () => index.search(q, 0),
      ArgumentError,
      'OUT_OF_RANGE',
      /Expected k to be an integer between 1 and 100000 but received 0/,
    );
    throwsCode(
      () => index.search(q, 1, { efSearch: 0 }),
      ArgumentError,
      'OUT_OF_RANGE',
      /Expected efSearch to be an integer between 1 and 100000 but received 0/,
    );
    throwsCode(() => index.search(q, 1, { efSearch: 2.5 }), ArgumentError, 'INVALID_ARGUMENT', /efSearch/);
    throwsCode(
      () => index.searchBatch(q, 1, null as never),
      ArgumentError,
      'INVALID_ARGUMENT',
      /search options to be an object/,
    );
    throwsCode(() => index.explainSearch(q, 1, { efSearch: -1 }), ArgumentError, 'OUT_OF_RANGE', /efSearch/);
    // Options of other kinds are checked and ignored.
    assert.equal(index.search(q, 1, { nprobes: 4, refineFactor: 2 }).ids[0], 0);
  });

  it('refuses damaged or foreign files with FileFormatError', () => {
    const bytes = built({ m: 4 }, base.subarray(0, 50 * d)).toBytes();
    const flipped = bytes.slice();
    flipped[flipped.length - 7]! ^= 1;
    throwsCode(
      () => HnswIndex.fromBytes(flipped, 'x.ris'),
      FileFormatError,
      'CORRUPT_FILE',
      /x\.ris is corrupt \(checksum/,
    );
    throwsCode(
      () => HnswIndex.fromBytes(bytes.subarray(0, 100)),
      FileFormatError,
      'TRUNCATED_FILE',
      /truncated/,
    );
    const flat = new FlatIndex({ dimension: d });
    flat.add(base.subarray(0, d));
    throwsCode(
      () => HnswIndex.fromBytes(flat.toBytes(), 'flat.ris'),
      FileFormatError,
      'WRONG_INDEX_KIND',
      /flat\.ris holds a Flat index .* open it with FlatIndex\.load\(\)/,
    );
    // A link outside the graph, with a valid checksum: caught before the kernels could follow it.
    const forged = bytes.slice();
    const view = new DataView(forged.buffer);
    const sections = view.getUint32(60, true);
    for (let s = 0; s < sections; s++) {
      const entry = 128 + s * 32;
      if (String.fromCharCode(...forged.subarray(entry, entry + 4)) !== 'LNK0') continue;
      const offset = Number(view.getBigUint64(entry + 8, true));
      view.setUint32(offset, 1, true); // node 0: one link …
      view.setUint32(offset + 4, 9999, true); // … to a node that does not exist
    }
    stampChecksum(forged);
    throwsCode(
      () => HnswIndex.fromBytes(forged, 'forged.ris'),
      FileFormatError,
      'CORRUPT_FILE',
      /forged\.ris is corrupt \(a link does not fit/,
    );
  });
});

function squaredDistance(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}
