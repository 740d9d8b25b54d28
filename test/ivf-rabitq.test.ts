import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createWasmKernels } from '../src/ann/kernels/index.ts';
import { JsKernels } from '../src/ann/kernels/js.ts';
import type { RabitqKernel } from '../src/ann/kernels/types.ts';
import { makeRotation, signFactors } from '../src/ann/rabitq.ts';
import { Random } from '../src/ann/random.ts';
import { fileStore, setFileStore } from '../src/ann/storage.ts';
import {
  ArgumentError,
  type DistanceType,
  FileFormatError,
  FlatIndex,
  IvfRabitqIndex,
  loadIndex,
  NO_ID,
  openIndex,
  type RisError,
  type StateError,
  useKernels,
} from '../src/index.ts';
import { clustered, exactNeighbours, recallAtK, trainedWith } from './helpers.ts';

const d = 96;
const base = clustered(4000, d, 30);
const queries = clustered(100, d, 30, 99).map((v, i) => v + 0.01 * Math.sin(i));
const nq = queries.length / d;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-rabitq-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function rejectsWith(
  promise: Promise<unknown>,
  type: new (...args: never[]) => RisError,
  code: string,
  message: RegExp,
  what = '',
) {
  return assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof type, `${what}: expected ${type.name}, got ${String(error)}`);
    assert.equal(error.code, code, what);
    assert.match(error.message, message, what);
    return true;
  });
}

describe('RaBitQ kernels', () => {
  /** A kernel with a query, centroids and codes in its memory. */
  function setUp(K: RabitqKernel, dimension: number) {
    const rotation = makeRotation(dimension, 3);
    const { D } = rotation;
    const signs = K.alloc(rotation.flips.length * 4);
    K.floats(signs, rotation.flips.length).set(signFactors(rotation));
    const x = K.alloc(2 * D * 4);
    const rows = K.floats(x, 2 * D);
    rows.fill(0);
    for (let j = 0; j < dimension; j++) {
      rows[j] = Math.sin(j * 0.7) + 0.3;
      rows[D + j] = Math.cos(j * 1.3);
    }
    return { rotation, signs, x };
  }

  for (const dimension of [96, 300]) {
    it(`the rotation keeps lengths and inner products (D ${dimension <= 128 ? 'a power of two' : 'not a power of two'})`, () => {
      for (const K of [new JsKernels().rabitq(), createWasmKernels()!.rabitq()]) {
        const { rotation, signs, x } = setUp(K, dimension);
        const before = K.floats(x, 2 * rotation.D).slice();
        K.rotate(x, 2, rotation.D, rotation.P, signs, rotation.rounds);
        const after = K.floats(x, 2 * rotation.D);
        const dot = (v: Float32Array, a: number, b: number) => {
          let s = 0;
          for (let j = 0; j < rotation.D; j++) s += v[a + j]! * v[b + j]!;
          return s;
        };
        const D = rotation.D;
        for (const [a, b] of [
          [0, 0],
          [D, D],
          [0, D],
        ] as const) {
          assert.ok(Math.abs(dot(after, a, b) - dot(before, a, b)) < 1e-3 * Math.abs(dot(before, 0, 0)));
        }
        // …and is not the identity: the first row is spread over the padding too.
        assert.ok(after.subarray(dimension, D).some((v) => Math.abs(v) > 1e-3) || D === dimension);
        assert.ok(Math.abs(after[0]! - before[0]!) > 1e-3);
      }
    });
  }

  it('WebAssembly and TypeScript agree on the table, the scan, what it keeps, and row distances', () => {
    const dimension = 300;
    const results = [new JsKernels().rabitq(), createWasmKernels()!.rabitq()].map((K) => {
      const { rotation, signs, x } = setUp(K, dimension);
      const { D } = rotation;
      K.rotate(x, 1, D, rotation.P, signs, rotation.rounds);
      const lut = K.alloc(D * 4);
      const params = K.alloc(64);
      K.lut(x, D, lut, params);
      const n = 70; // three blocks, the last one partly used
      const codes = K.alloc((96 * D) / 8);
      const exCodes = K.alloc((96 * D) / 2);
      const bytes = K.bytes();
      for (let i = 0; i < (96 * D) / 8; i++) bytes[codes + i] = (i * 2654435761) >>> 24;
      for (let i = 0; i < (96 * D) / 2; i++) bytes[exCodes + i] = (i * 40503) >>> 8;
      const factors = K.alloc(96 * 24);
      K.floats(factors, 6 * 96).set(Float32Array.from({ length: 6 * 96 }, (_, i) => Math.abs(Math.cos(i))));
      const out = K.alloc(3 * 96 * 4);
      const found = K.alloc(3 * 96 * 4);
      const upper = K.alloc(5 * 4);
      const [delta, offset, sumQ] = K.floats(params, 3);
      const kept = [0, D / 2].map((exBytes) => {
        K.floats(upper, 5).fill(Number.POSITIVE_INFINITY);
        const count = K.scan(
          codes,
          n,
          D / 4,
          lut,
          factors,
          96,
          1.5,
          delta!,
          offset!,
          sumQ!,
          0.7,
          out,
          exCodes,
          exBytes,
          x,
          16,
          2,
          upper,
          5,
          found,
        );
        return {
          count,
          positions: new Uint32Array(K.bytes().buffer, found + 2 * 96 * 4, count).slice(),
          upper: K.floats(upper, 5).slice(),
        };
      });
      const products = K.alloc(4 * 4);
      K.products(x, x, 2, D, products);
      return {
        lut: K.bytes().slice(lut, lut + D * 4),
        params: K.floats(params, 3).slice(),
        estimates: K.floats(out, n).slice(),
        lower: K.floats(out + 96 * 4, n).slice(),
        kept,
        l2: K.rowDistance(x, x + D * 4, dimension, false, false),
        dot: K.rowDistance(x, x + D * 4, dimension, false, true),
        products: K.floats(products, 2).slice(),
      };
    });
    const [js, wasm] = results as [(typeof results)[0], (typeof results)[0]];
    // Table bytes may differ by one where a value rounds at .5 in float32 but not in float64.
    for (let i = 0; i < js.lut.length; i++) assert.ok(Math.abs(js.lut[i]! - wasm.lut[i]!) <= 1, `lut ${i}`);
    for (let i = 0; i < 3; i++)
      assert.ok(Math.abs(js.params[i]! - wasm.params[i]!) <= 1e-4 * (1 + Math.abs(js.params[i]!)));
    for (let i = 0; i < js.estimates.length; i++) {
      assert.ok(
        Math.abs(js.estimates[i]! - wasm.estimates[i]!) <= 1e-2 * (1 + Math.abs(js.estimates[i]!)),
        `estimate ${i}`,
      );
      assert.ok(Math.abs(js.lower[i]! - wasm.lower[i]!) <= 1e-2 * (1 + Math.abs(js.lower[i]!)), `lower ${i}`);
      assert.ok(js.lower[i]! < js.estimates[i]!);
    }
    // The vectors kept (one-bit, then extended bounds): the same ones, fewer than scanned, and the
    // k-th upper bound found.
    for (const [j, { count, positions, upper }] of js.kept.entries()) {
      assert.deepEqual(positions, wasm.kept[j]!.positions);
      assert.ok(count >= 5 && count < 70, `kept ${count}`);
      assert.ok(Number.isFinite(upper[4]!));
      for (let i = 0; i < 5; i++)
        assert.ok(Math.abs(upper[i]! - wasm.kept[j]!.upper[i]!) <= 1e-2 * (1 + Math.abs(upper[i]!)));
    }
    assert.ok(Math.abs(js.l2 - wasm.l2) < 1e-3 * js.l2);
    assert.ok(Math.abs(js.dot - wasm.dot) < 1e-3 * (1 + Math.abs(js.dot)));
    for (let i = 0; i < 2; i++)
      assert.ok(Math.abs(js.products[i]! - wasm.products[i]!) < 1e-3 * (1 + Math.abs(js.products[i]!)));
  });

  it('a table entry is the sum of the bits it stands for, within half a step', () => {
    const K = new JsKernels().rabitq();
    const D = 64;
    const q = K.alloc(D * 4);
    K.floats(q, D).set(Float32Array.from({ length: D }, (_, j) => Math.sin(j) * 3));
    const lut = K.alloc(D * 4);
    const params = K.alloc(64);
    K.lut(q, D, lut, params);
    const [delta, , sum] = K.floats(params, 3);
    const values = K.floats(q, D);
    for (let g = 0; g < D / 4; g++) {
      const lo = [0, 1, 2, 3].reduce((s, t) => s + Math.min(0, values[4 * g + t]!), 0);
      for (let p = 0; p < 16; p++) {
        const exact = [0, 1, 2, 3].reduce((s, t) => s + (p & (1 << t) ? values[4 * g + t]! : 0), 0);
        const entry = K.bytes()[lut + 16 * g + p]!;
        assert.ok(Math.abs(lo + delta! * entry - exact) <= delta! / 2 + 1e-5, `group ${g} pattern ${p}`);
      }
    }
    assert.ok(Math.abs(sum! - values.reduce((s, v) => s + v, 0)) < 1e-4);
  });
  it('ranks partitions by i16 products: both kernels agree, close to f32, and the largest sums do not wrap', () => {
    const D = 1280;
    const rows = 5;
    const results = [new JsKernels().rabitq(), createWasmKernels()!.rabitq()].map((K) => {
      const x = K.alloc(rows * D * 4);
      const values = K.floats(x, rows * D);
      for (let i = 0; i < 3 * D; i++) values[i] = Math.sin(i * 0.37) * (1 + (i % 7));
      // Rows 3 and 4 are one value everywhere: every product at the limit, D of them in one sum.
      values.fill(0.25, 3 * D, 4 * D);
      values.fill(-4, 4 * D, 5 * D);
      const quantized = K.alloc(rows * D * 2);
      const scales = K.alloc(rows * 4);
      K.quantize(x, rows, D, quantized, scales);
      const products = K.alloc(rows * 4);
      K.productsI16(quantized + 3 * D * 2, quantized, rows, D, products);
      const exact = K.alloc(rows * 4);
      K.products(x + 3 * D * 4, x, rows, D, exact);
      const s = K.floats(scales, rows).slice();
      return {
        approximate: Array.from(K.floats(products, rows), (p, j) => p / (s[3]! * s[j]!)),
        exact: Array.from(K.floats(exact, rows)),
        raw: K.floats(products, rows).slice(),
      };
    });
    const [js, wasm] = results as [(typeof results)[0], (typeof results)[0]];
    for (let j = 0; j < rows; j++) {
      assert.ok(Math.abs(js.raw[j]! - wasm.raw[j]!) <= 1e-6 * Math.abs(js.raw[j]!) + 2 * D, `row ${j}`);
      for (const { approximate, exact } of [js, wasm]) {
        const scale = Math.sqrt(D) * 0.25 * 7;
        assert.ok(
          Math.abs(approximate[j]! - exact[j]!) <= 1e-3 * scale + 1e-6 * Math.abs(exact[j]!),
          `row ${j}`,
        );
      }
    }
    // 0.25 · 0.25 · 1280 = 80 and 0.25 · −4 · 1280 = −1280: a sum of 1,280 products of 2,590² wraps in i32.
    assert.ok(Math.abs(wasm.approximate[3]! - 80) < 1e-3, String(wasm.approximate[3]));
    assert.ok(Math.abs(wasm.approximate[4]! + 1280) < 1e-2, String(wasm.approximate[4]));
  });
});

describe('IvfRabitqIndex recall against exact search (FlatIndex)', () => {
  it('trains √n partitions, then one per 256 vectors up to 4√n', async () => {
    assert.deepEqual(
      [1, 8144, 65536, 100_000, 200_000, 262_144, 1_000_000, 1_048_576, 4_000_000].map((n) =>
        IvfRabitqIndex.defaultPartitions(n),
      ),
      [1, 90, 256, 391, 781, 1024, 3906, 4096, 8000],
    );
    const index = await trainedWith(new IvfRabitqIndex({ dimension: 16 }), clustered(4000, 16, 1, 7, 1));
    assert.equal(index.describe().parameters.numPartitions, 63);
  });

  it('visits more partitions by default as there are more of them: 16, then 1.2·√partitions', async () => {
    assert.deepEqual(
      [10, 90, 177, 178, 781, 1000, 3906].map((L) => IvfRabitqIndex.defaultProbes(L)),
      [10, 16, 16, 17, 34, 38, 75],
    );
    const data = clustered(4000, 16, 1, 7, 1); // no clusters: neighbours spread over many partitions
    const index = await trainedWith(new IvfRabitqIndex({ dimension: 16, numPartitions: 1000 }), data);
    const query = data.subarray(0, 16 * 20);
    assert.deepEqual(index.searchBatch(query, 10), index.searchBatch(query, 10, { nprobes: 38 }));
    assert.notDeepEqual(index.searchBatch(query, 10), index.searchBatch(query, 10, { nprobes: 16 }));
  });

  for (const distanceType of ['l2', 'cosine', 'dot'] as DistanceType[]) {
    it(`${distanceType}: 10-recall@10 ≥ 0.95 with the defaults, exact distances after the re-rank`, async () => {
      // For dot, lengths that vary (inner product search is not cosine in disguise).
      const data =
        distanceType === 'dot' ? base.map((v, i) => v * (1 + 0.5 * Math.sin(Math.floor(i / d)))) : base;
      const truth = exactNeighbours(data, queries, d, distanceType);
      const index = await trainedWith(new IvfRabitqIndex({ dimension: d, distanceType }), data);
      const found = index.searchBatch(queries, 10);
      const recall = recallAtK(found, truth, nq, 10);
      assert.ok(recall >= 0.95, `recall ${recall}`);
      // Where the ids agree, so do the distances: they were computed from the full vectors.
      for (let i = 0; i < nq * 10; i++) {
        if (found.ids[i] !== truth.ids[i]) continue;
        assert.ok(
          Math.abs(found.distances[i]! - truth.distances[i]!) <= 1e-4 * (1 + Math.abs(truth.distances[i]!)),
        );
      }
      // The estimates alone (refineFactor 0) rank well, but their distances are estimates.
      const estimated = index.searchBatch(queries, 10, { refineFactor: 0 });
      const estimateRecall = recallAtK(estimated, truth, nq, 10);
      assert.ok(estimateRecall >= 0.3 && estimateRecall < recall, `estimate recall ${estimateRecall}`);
      assert.notDeepEqual(estimated.distances, found.distances);
      // More probes never lose recall: all of them reach exact search's.
      const all = recallAtK(
        index.searchBatch(queries, 10, { nprobes: index.numPartitions, refineFactor: 50 }),
        truth,
        nq,
        10,
      );
      assert.ok(all >= 0.99, `all partitions: ${all}`);
    });
  }

  it('one bit per dimension (the default from 256 dimensions) also reaches 0.95, with more reads', async () => {
    const truth = exactNeighbours(base, queries, d);
    const index = await trainedWith(new IvfRabitqIndex({ dimension: d, bits: 1 }), base);
    assert.equal(index.describe().parameters.bits, 1);
    const recall = recallAtK(index.searchBatch(queries, 10), truth, nq, 10);
    assert.ok(recall >= 0.95, `recall ${recall}`);
    assert.equal(new IvfRabitqIndex({ dimension: 1280 }).bits, 1);
    assert.equal(new IvfRabitqIndex({ dimension: 256 }).bits, 1);
    assert.equal(new IvfRabitqIndex({ dimension: 192 }).bits, 5);
  });

  it('five bits keep their recall on vectors far from the origin (a large offset common to all)', async () => {
    // The offset dwarfs the clusters: the query's 8-bit table rounds ⟨b, q⟩ by more than the five-bit
    // bound allows once multiplied by 16, so the finer estimate takes ⟨b, q⟩ exactly.
    const random = new Random(30);
    const offset = Float32Array.from({ length: 128 }, () => 30 * (0.5 + random.next()));
    const shifted = (data: Float32Array) => data.map((v, i) => v * 0.35 + offset[i % 128]!);
    const data = shifted(clustered(3000, 128, 30, 3));
    const q = shifted(clustered(50, 128, 30, 4));
    const truth = exactNeighbours(data, q, 128);
    for (const bits of [1, 5] as const) {
      const index = await trainedWith(new IvfRabitqIndex({ dimension: 128, bits }), data);
      // Every partition probed: what is left to lose is the bound's.
      const recall = recallAtK(index.searchBatch(q, 10, { nprobes: index.numPartitions }), truth, 50, 10);
      assert.ok(recall >= 0.95, `${bits} bits: recall ${recall}`);
    }
  });

  it('the TypeScript kernels find the same neighbours as the WebAssembly ones', async () => {
    const wasm = await trainedWith(new IvfRabitqIndex({ dimension: d }), base);
    const expected = wasm.searchBatch(queries, 10);
    useKernels('js');
    try {
      const js = await trainedWith(new IvfRabitqIndex({ dimension: d }), base);
      const found = js.searchBatch(queries, 10);
      const same = recallAtK(found, expected, nq, 10);
      assert.ok(same >= 0.98, `${same}`);
    } finally {
      useKernels('wasm-simd');
    }
  });

  it('dimensions that are not a multiple of 64 are padded, and still found', async () => {
    const dimension = 300;
    const data = clustered(1500, dimension, 12, 5);
    const q = clustered(30, dimension, 12, 6);
    const truth = exactNeighbours(data, q, dimension);
    const index = await trainedWith(new IvfRabitqIndex({ dimension, rerankStorage: 'float16' }), data);
    assert.equal(index.describe().parameters.paddedDimension, 320);
    assert.ok(recallAtK(index.searchBatch(q, 10), truth, 30, 10) >= 0.95);
  });

  it('explainSearch: the probes nearest first, every vector of theirs scanned, and search’s results', async () => {
    for (const distanceType of ['l2', 'cosine'] as const) {
      const index = await trainedWith(new IvfRabitqIndex({ dimension: d, distanceType }), base);
      const sizes = index.partitionSizes();
      assert.equal(
        sizes.reduce((a, b) => a + b, 0),
        index.size,
      );
      // Rotated and padded, as the codes are.
      assert.equal(
        index.centroids().length,
        index.numPartitions * Number(index.describe().parameters.paddedDimension),
      );
      for (let i = 0; i < 10; i++) {
        const q = queries.subarray(i * d, (i + 1) * d);
        const { coarse, fine } = index.explainSearch(q, 10, { nprobes: 6 });
        assert.deepEqual(fine.results, index.search(q, 10, { nprobes: 6 }));
        assert.equal(coarse.probed.length, 6);
        const probed = Array.from(coarse.probed, (l) => coarse.distances[l]!);
        assert.deepEqual(
          probed,
          [...probed].sort((a, b) => a - b),
        );
        assert.equal(
          fine.ids.length,
          Array.from(coarse.probed, (l) => sizes[l]!).reduce((a, b) => a + b, 0),
        );
        for (const l of coarse.probed) {
          const scanned = fine.ids.filter((_, j) => fine.partitions[j] === l);
          assert.deepEqual(new Set(scanned), new Set(index.partitionIds(l)));
        }
        // The results were scanned, and their estimates are near their exact distances.
        for (const [r, id] of fine.results.ids.entries()) {
          const j = fine.ids.indexOf(id);
          assert.ok(j >= 0);
          const exact = fine.results.distances[r]!;
          assert.ok(
            Math.abs(fine.distances[j]! - exact) < 0.5 * (exact + 1),
            `${fine.distances[j]} ${exact}`,
          );
        }
      }
    }
  });
});

describe('IvfRabitqIndex add and remove without rebuilding', () => {
  it('removed vectors are never returned, added ones are found at once, ids are not reused', async () => {
    const index = new IvfRabitqIndex({ dimension: d, numPartitions: 20 });
    await index.train(base);
    index.add(base.subarray(0, 3000 * d));
    const gone = Uint32Array.from({ length: 500 }, (_, i) => i * 6);
    assert.equal(index.remove(gone), 500);
    assert.equal(index.remove(gone), 0);
    assert.equal(index.size, 2500);
    const removed = new Set(gone);
    for (const id of index.searchBatch(queries, 20).ids) assert.ok(!removed.has(id));
    // A removed vector's own query finds its nearest remaining neighbour, not itself.
    const first = index.search(base.subarray(6 * d, 7 * d), 1);
    assert.notEqual(first.ids[0], 6);
    // Every vector left finds itself first in its own partition: codes, factors and rows moved together.
    for (const id of index.ids()) {
      const self = index.search(base.subarray(id * d, (id + 1) * d), 1, { nprobes: 1 });
      assert.equal(self.ids[0], id, `vector ${id}`);
    }
    // New vectors, with fresh ids after every id ever given.
    const added = index.add(base.subarray(3000 * d));
    assert.equal(added[0], 3000);
    assert.equal(index.size, 3500);
    const self = index.search(base.subarray(3500 * d, 3501 * d), 1);
    assert.equal(self.ids[0], 3500);
    assert.ok(self.distances[0]! < 1e-6);
    // What is left is exactly searchable: against exact search over the same vectors.
    const keep = index.ids();
    assert.equal(keep.length, 3500);
    const exact = new FlatIndex({ dimension: d });
    for (const id of keep) exact.add(base.subarray(id * d, (id + 1) * d), Uint32Array.of(id));
    const recall = recallAtK(
      index.searchBatch(queries, 10, { nprobes: 20 }),
      exact.searchBatch(queries, 10),
      nq,
      10,
    );
    assert.ok(recall >= 0.98, `recall ${recall}`);
    assert.throws(
      () => index.add(base.subarray(0, d), Uint32Array.of(3500)),
      /Id 3500 is already in the index/,
    );
    index.add(base.subarray(0, d), Uint32Array.of(6)); // a removed id may be added again explicitly
    assert.ok([0, 6].includes(index.search(base.subarray(0, d), 1).ids[0]!)); // two copies at distance 0
  });

  it('an empty index can be trained again; one that holds vectors cannot', async () => {
    const index = new IvfRabitqIndex({ dimension: d, numPartitions: 8 });
    await index.train(base);
    await index.train(base);
    index.add(base.subarray(0, 10 * d));
    await assert.rejects(
      index.train(base),
      (error: unknown) => (error as StateError).code === 'ALREADY_TRAINED',
    );
    index.remove(index.ids());
    await index.train(base);
    assert.equal(index.size, 0);
  });

  it('checks its arguments at the boundary', async () => {
    assert.throws(() => new IvfRabitqIndex({ dimension: 1 }), ArgumentError);
    assert.throws(
      () => new IvfRabitqIndex({ dimension: d, rerankStorage: 'int8' as 'float32' }),
      /rerankStorage/,
    );
    const index = new IvfRabitqIndex({ dimension: d, numPartitions: 8 });
    assert.throws(
      () => index.search(queries.subarray(0, d), 10),
      (e: unknown) => (e as StateError).code === 'NOT_TRAINED',
    );
    await index.train(base);
    index.add(base.subarray(0, 100 * d));
    assert.throws(() => index.search(queries.subarray(0, d), 10, { nprobes: 9 }), /nprobes/);
    assert.throws(() => index.search(queries.subarray(0, d - 1), 10), /DIMENSION|length/);
    assert.throws(() => index.search(queries.subarray(0, d), 0), /k/);
  });
});

describe('IvfRabitqIndex files', () => {
  async function built(rerankStorage: 'float32' | 'float16' = 'float32') {
    const index = new IvfRabitqIndex({ dimension: d, numPartitions: 16, rerankStorage });
    await index.train(base);
    index.add(base);
    return index;
  }

  it('round-trips through save and loadIndex, toBytes and openIndex, and a save of a loaded index', async () => {
    const index = await built();
    const expected = index.searchBatch(queries, 10);
    const path = join(dir, 'round.ris');
    await index.save(path);
    const loaded = await loadIndex(path);
    assert.ok(loaded instanceof IvfRabitqIndex);
    assert.deepEqual(loaded.searchBatch(queries, 10), expected);
    assert.deepEqual({ ...loaded.describe(), memoryBytes: 0 }, { ...index.describe(), memoryBytes: 0 });
    assert.deepEqual(openIndex(index.toBytes()).searchBatch(queries, 10), expected);
    // Its full vectors come from the file it was loaded from: save it elsewhere, remove, add, save again.
    loaded.remove(Uint32Array.of(1, 2, 3));
    loaded.add(base.subarray(0, 2 * d), Uint32Array.of(9001, 9002));
    const again = join(dir, 'again.ris');
    await loaded.save(again);
    await loaded.save(again); // over itself: it reads the old file while writing the new one
    const reloaded = (await IvfRabitqIndex.load(again)) as IvfRabitqIndex;
    assert.deepEqual(reloaded.searchBatch(queries, 10), loaded.searchBatch(queries, 10));
    assert.equal(reloaded.size, 4000 - 3 + 2);
    assert.equal(reloaded.search(base.subarray(0, d), 2).ids.includes(9001), true);
    assert.deepEqual(reloaded.add(base.subarray(0, d)), Uint32Array.of(9003));
  });

  it('memoryUsage: the full vectors count while unsaved, then only as onDisk', async () => {
    const index = await built();
    const before = index.memoryUsage();
    assert.equal(before.onDisk, 0);
    assert.ok(before.unsaved >= base.byteLength, 'the full vectors are held until saved');
    const parts =
      before.codes + before.factors + before.ids + before.quantizer + before.unsaved + before.kernel;
    assert.equal(before.total, parts);
    const path = join(dir, 'memory.ris');
    await index.save(path);
    const after = index.memoryUsage();
    assert.equal(after.unsaved, 0);
    assert.equal(after.onDisk, base.byteLength);
    const loaded = ((await loadIndex(path)) as IvfRabitqIndex).memoryUsage();
    assert.equal(loaded.onDisk, base.byteLength);
    assert.equal(loaded.unsaved, 0);
    // Sign bits (D/8 bytes), 4-bit levels (D/2), six factors, id and row: within a block of padding per
    // list, plus the centroids.
    const perVector = 128 / 8 + 128 / 2 + 24 + 8;
    const payload = loaded.codes + loaded.factors + loaded.ids;
    assert.ok(payload >= 4000 * perVector && payload <= (4000 + 16 * 32) * perVector, `${payload}`);
    assert.ok(loaded.quantizer >= 16 * 128 * 4);
    assert.ok(loaded.total < base.byteLength / 2, `${loaded.total} of ${base.byteLength}`);
    assert.equal(
      loaded.total,
      loaded.codes + loaded.factors + loaded.ids + loaded.quantizer + loaded.unsaved + loaded.kernel,
    );
    // A float16 file keeps half the bytes on disk.
    const half = await built('float16');
    await half.save(join(dir, 'half.ris'));
    assert.equal(half.memoryUsage().onDisk, base.byteLength / 2);
  });

  it('loadIndex leaves the full vectors on disk and reads them a row at a time', async () => {
    const index = await built();
    const path = join(dir, 'spy.ris');
    await index.save(path);
    const size = (await readFile(path)).length;
    const real = fileStore();
    const reads: number[] = [];
    let checked = 0;
    setFileStore({
      ...real,
      read: (p) => {
        reads.push(Number.POSITIVE_INFINITY);
        return real.read(p);
      },
      async open(p) {
        const file = await real.open(p);
        return {
          size: file.size,
          read(into, offset) {
            reads.push(into.length);
            file.read(into, offset);
          },
          crc32(offset, length) {
            checked += length;
            return file.crc32!(offset, length);
          },
          close: () => file.close(),
        };
      },
    });
    try {
      const loaded = await loadIndex(path);
      const atLoad = reads.reduce((a, b) => a + b, 0);
      // The resident part (its header and table read first, then again with the rest), never the vectors.
      assert.ok(atLoad <= size - base.byteLength + 1024, `read ${atLoad} of ${size} bytes at load`);
      assert.equal(checked, base.byteLength, 'the full vectors are checked, through the store');
      reads.length = 0;
      loaded.search(queries.subarray(0, d), 10);
      assert.ok(reads.length >= 10 && reads.length <= 40, `${reads.length} reads`);
      assert.ok(
        reads.every((n) => n === d * 4),
        'one row per read',
      );
      // verify: false skips the check of the full vectors.
      checked = 0;
      await loadIndex(path, { verify: false });
      assert.equal(checked, 0);
    } finally {
      setFileStore(real);
    }
  });

  it('refuses truncated files and a flipped bit in any section, each section checked on its own', async () => {
    const index = await built();
    const path = join(dir, 'good.ris');
    await index.save(path);
    const bytes = new Uint8Array(await readFile(path));
    const view = new DataView(bytes.buffer);
    assert.equal(view.getUint32(8, true), 2, 'a file with on-demand sections is version 2');
    const sections: [string, number, number][] = [];
    for (let s = 0; s < view.getUint32(60, true); s++) {
      const entry = 128 + s * 32;
      sections.push([
        String.fromCharCode(...bytes.subarray(entry, entry + 4)),
        Number(view.getBigUint64(entry + 8, true)),
        Number(view.getBigUint64(entry + 16, true)),
      ]);
    }
    assert.deepEqual(
      sections.map(([tag]) => tag),
      ['PARM', 'SIGN', 'CENT', 'SIZE', 'IDS ', 'CODE', 'EXCO', 'FACT', 'VECS'],
    );
    const damaged = async (name: string, content: Uint8Array, code: string, message: RegExp) => {
      const file = join(dir, `${name}.ris`);
      await writeFile(file, content);
      await rejectsWith(loadIndex(file), FileFormatError, code, message, name);
      assert.throws(
        () => openIndex(content, name),
        (e: unknown) => e instanceof FileFormatError && e.code === code,
        name,
      );
    };
    await damaged('truncated', bytes.subarray(0, bytes.length - 100), 'TRUNCATED_FILE', /truncated/);
    const vectors = sections.at(-1)!;
    await damaged('no vectors', bytes.subarray(0, vectors[1]), 'TRUNCATED_FILE', /truncated/);
    await damaged('header only', bytes.subarray(0, 100), 'TRUNCATED_FILE', /truncated/);
    for (const [offset, what] of [
      [20, 'header'],
      [128 + 5 * 32 + 16, 'section table'],
    ] as const) {
      const flipped = bytes.slice();
      flipped[offset]! ^= 0x10;
      await damaged(`flipped ${what}`, flipped, 'CORRUPT_FILE', /corrupt/);
    }
    for (const [tag, offset, length] of sections) {
      const flipped = bytes.slice();
      flipped[offset + Math.floor(length / 2)]! ^= 0x04;
      const message = tag === 'VECS' ? /corrupt \(its "VECS" section's checksum/ : /corrupt \(checksum/;
      await damaged(`flipped ${tag}`, flipped, 'CORRUPT_FILE', message);
    }
    // Without the check of the full vectors, a flip there is not seen at load (a faster open).
    const flipped = bytes.slice();
    flipped[vectors[1] + 5]! ^= 0x04;
    await writeFile(join(dir, 'unchecked.ris'), flipped);
    assert.ok(await loadIndex(join(dir, 'unchecked.ris'), { verify: false }));
  });

  it('an older ris sees a newer file as newer, not as damaged: the whole-file checksum still holds', async () => {
    const index = await built();
    const bytes = index.toBytes();
    const { crc32 } = await import('../src/ann/crc32.ts');
    const view = new DataView(bytes.buffer);
    const stored = view.getUint32(120, true);
    const copy = bytes.slice();
    new DataView(copy.buffer).setUint32(120, 0, true);
    assert.equal(crc32(copy), stored);
  });

  it('holds its vectors after its file is replaced by another process', async () => {
    const index = await built();
    const path = join(dir, 'replaced.ris');
    await index.save(path);
    const loaded = await loadIndex(path);
    const expected = loaded.searchBatch(queries, 10);
    // Another writer replaces the file (temp file and rename, as every ris write does).
    const other = new FlatIndex({ dimension: d });
    other.add(base.subarray(0, d));
    await other.save(path);
    assert.deepEqual(loaded.searchBatch(queries, 10), expected);
  });

  it('search results are padded in batches and never hold removed or unknown ids', async () => {
    const index = new IvfRabitqIndex({ dimension: d, numPartitions: 4 });
    await index.train(base);
    index.add(base.subarray(0, 5 * d));
    const found = index.searchBatch(queries.subarray(0, 2 * d), 8, { nprobes: 4 });
    assert.deepEqual([...found.ids.subarray(5, 8)], [NO_ID, NO_ID, NO_ID]);
    assert.equal(found.distances[7], Number.POSITIVE_INFINITY);
    assert.equal(index.search(queries.subarray(0, d), 8, { nprobes: 4 }).ids.length, 5);
  });
});
