import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ArgumentError,
  type DistanceType,
  FileFormatError,
  FlatIndex,
  IvfPqIndex,
  loadIndex,
  NO_ID,
  openIndex,
  PqIndex,
  ProductQuantizer,
  type RisError,
  StateError,
  type TransformOptions,
} from '../src/index.ts';
import { clustered, exactNeighbours, recallAtK, trainedWith } from './helpers.ts';

const d = 32;
const base = clustered(6000, d, 40);
const queries = clustered(200, d, 40, 99).map((v, i) => v + 0.01 * Math.sin(i));
const nq = queries.length / d;

function throwsWith(
  fn: () => unknown,
  type: new (...args: never[]) => RisError,
  code: string,
  message: RegExp,
) {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-pq-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('PqIndex recall against exact search (FlatIndex)', () => {
  for (const distanceType of ['l2', 'cosine', 'dot'] as DistanceType[]) {
    it(`${distanceType}: 10-recall@10 ≥ 0.7 from the codes alone, ≥ 0.95 with refine`, async () => {
      const truth = exactNeighbours(base, queries, d, distanceType);
      const index = await trainedWith(
        new PqIndex({ dimension: d, numSubVectors: 16, distanceType, refineStorage: 'float32' }),
        base,
      );
      const plain = recallAtK(index.searchBatch(queries, 10), truth, nq, 10);
      const refined = recallAtK(index.searchBatch(queries, 10, { refineFactor: 10 }), truth, nq, 10);
      assert.ok(plain >= 0.7, `recall ${plain}`);
      assert.ok(refined >= 0.95, `refined recall ${refined}`);
      // With enough candidates the refined distances are the exact ones.
      const one = index.search(queries.subarray(0, d), 3, { refineFactor: 100 });
      assert.deepEqual(one.ids, truth.ids.subarray(0, 3));
      for (let i = 0; i < 3; i++) {
        const exact = truth.distances[i]!;
        assert.ok(Math.abs(one.distances[i]! - exact) < 1e-3 * Math.max(1, Math.abs(exact)));
      }
    });
  }

  it('reports PQ distances that estimate the exact ones, nearest first', async () => {
    const index = await trainedWith(new PqIndex({ dimension: d, numSubVectors: 16 }), base);
    const exact = new FlatIndex({ dimension: d });
    exact.add(base);
    let error = 0;
    let count = 0;
    for (let i = 0; i < 20; i++) {
      const q = queries.subarray(i * d, (i + 1) * d);
      const { ids, distances } = index.search(q, 10);
      for (let c = 1; c < 10; c++) assert.ok(distances[c]! >= distances[c - 1]!);
      for (let c = 0; c < 10; c++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += (q[j]! - base[ids[c]! * d + j]!) ** 2;
        error += Math.abs(distances[c]! - s) / s;
        count++;
      }
    }
    assert.ok(error / count < 0.15, `mean relative error ${error / count}`);
  });

  it('takes a PCA or OPQ pre-transform like IVF-PQ, and either beats PQ alone', async () => {
    // Intrinsic dimension 12 in 32 (the data of the IVF-PQ transform test).
    const latent = clustered(4200, 12, 40, 5);
    const mixing = clustered(12, d, 1, 6, 1);
    const data = new Float32Array(4200 * d);
    for (let i = 0; i < 4200; i++)
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let t = 0; t < 12; t++) s += latent[i * 12 + t]! * mixing[t * d + j]!;
        data[i * d + j] = s;
      }
    const b = data.subarray(0, 4000 * d);
    const q = data.subarray(4000 * d);
    const truth = exactNeighbours(b, q, d);
    const recall = async (numSubVectors: number, transform?: TransformOptions) => {
      const index = await trainedWith(new PqIndex({ dimension: d, numSubVectors, transform }), b);
      assert.deepEqual(PqIndex.fromBytes(index.toBytes()).searchBatch(q, 10), index.searchBatch(q, 10));
      assert.equal(index.describe().parameters.transform, transform?.type ?? 'none');
      return recallAtK(index.searchBatch(q, 10), truth, 200, 10);
    };
    // Measured: PCA 0.81 against 0.71 with 8 codes; OPQ 0.61 against 0.52 with 4.
    const none8 = await recall(8);
    const pca = await recall(8, { type: 'pca', outputDimension: 16 });
    assert.ok(pca >= none8 + 0.05, `PCA recall ${pca}, none ${none8}`);
    const none4 = await recall(4);
    const opq = await recall(4, { type: 'opq' });
    assert.ok(opq >= none4 + 0.05, `OPQ recall ${opq}, none ${none4}`);
  });

  it('scans every code of a large index (past one scanner block of 65,536)', async () => {
    const small = 8;
    const data = clustered(70_000, small, 50, 3);
    const index = new PqIndex({ dimension: small, numSubVectors: 2, refineStorage: 'float32' });
    await index.train(data.subarray(0, 5000 * small));
    index.add(data);
    for (const id of [3, 65_535, 65_536, 69_999]) {
      const found = index.search(data.subarray(id * small, (id + 1) * small), 1, { refineFactor: 50 });
      assert.equal(found.distances[0], 0, `vector ${id} finds itself`);
    }
  });
});

describe('PqIndex updates and files', () => {
  it('adds with fresh or given ids, removes, and keeps ids unique', async () => {
    const index = new PqIndex({ dimension: d, numSubVectors: 8, refineStorage: 'float16' });
    await index.train(base);
    assert.deepEqual(
      index.add(base.subarray(0, 100 * d)),
      Uint32Array.from({ length: 100 }, (_, i) => i),
    );
    index.add(
      base.subarray(100 * d, 110 * d),
      Uint32Array.from({ length: 10 }, (_, i) => 1000 + i),
    );
    assert.deepEqual(index.add(base.subarray(110 * d, 111 * d)), Uint32Array.of(1010));
    assert.equal(index.size, 111);
    const target = base.subarray(5 * d, 6 * d);
    assert.equal(index.search(target, 1, { refineFactor: 4 }).ids[0], 5);
    assert.equal(index.remove(Uint32Array.of(5, 1003, 99_999)), 2);
    const rest = index.search(target, 200);
    assert.equal(rest.ids.length, 109);
    assert.ok(!rest.ids.includes(5) && !rest.ids.includes(1003));
    throwsWith(
      () => index.add(base.subarray(0, d), Uint32Array.of(7)),
      ArgumentError,
      'DUPLICATE_ID',
      /Id 7 is already in the index/,
    );
    throwsWith(
      () => index.add(base.subarray(0, d), Uint32Array.of(NO_ID)),
      ArgumentError,
      'OUT_OF_RANGE',
      /reserved/,
    );
    const padded = index.searchBatch(queries.subarray(0, d), 120);
    assert.equal(padded.ids[119], NO_ID);
    assert.equal(padded.distances[119], Number.POSITIVE_INFINITY);
  });

  it('save → load (and openIndex) gives identical results and bytes; the read bytes stay intact', async () => {
    const index = await trainedWith(
      new PqIndex({
        dimension: d,
        numSubVectors: 8,
        distanceType: 'cosine',
        refineStorage: 'float16',
        seed: 4,
      }),
      base,
    );
    index.remove([1, 2, 3]);
    const file = join(dir, 'pq.ris');
    await index.save(file);
    const again = await PqIndex.load(file);
    const any = await loadIndex(file);
    assert.ok(any instanceof PqIndex);
    assert.equal(again.distanceType, 'cosine');
    for (const options of [{}, { refineFactor: 4 }]) {
      assert.deepEqual(again.searchBatch(queries, 10, options), index.searchBatch(queries, 10, options));
      assert.deepEqual(any.searchBatch(queries, 10, options), index.searchBatch(queries, 10, options));
    }
    assert.deepEqual(again.toBytes(), index.toBytes());
    assert.deepEqual(again.describe(), index.describe());
    assert.deepEqual(index.describe().parameters, {
      innerDimension: d,
      numSubVectors: 8,
      numBits: 8,
      transform: 'none',
      refineStorage: 'float16',
      seed: 4,
    });

    const bytes = index.toBytes();
    const pristine = bytes.slice();
    const loaded = openIndex(bytes);
    loaded.remove([10, 11]);
    loaded.add(base.subarray(0, 5 * d));
    assert.ok(Buffer.from(bytes).equals(Buffer.from(pristine)), "the caller's bytes changed");
    assert.deepEqual(
      loaded.add(base.subarray(0, d)),
      Uint32Array.of(6005),
      'next ids continue after the file',
    );
  });

  it('is the same for the same seed, and differs for another', async () => {
    const make = async (seed: number) =>
      (await trainedWith(new PqIndex({ dimension: d, numSubVectors: 8, seed }), base)).toBytes();
    assert.deepEqual(await make(3), await make(3));
    assert.notDeepEqual(await make(3), await make(4));
  });
});

describe('PqIndex errors', () => {
  it('refuses use before training, too few training vectors, and a second training while it holds vectors', async () => {
    const index = new PqIndex({ dimension: d, numSubVectors: 8 });
    throwsWith(() => index.add(base), StateError, 'NOT_TRAINED', /call await index.train\(vectors\) first/);
    throwsWith(() => index.search(queries.subarray(0, d), 5), StateError, 'NOT_TRAINED', /untrained/);
    throwsWith(() => index.toBytes(), StateError, 'NOT_TRAINED', /Cannot save an untrained index/);
    await assert.rejects(index.train(base.subarray(0, 100 * d)), (error: unknown) => {
      assert.ok(error instanceof ArgumentError);
      assert.equal(error.code, 'TOO_FEW_TRAINING_VECTORS');
      assert.match(error.message, /needs at least 256 vectors but received 100/);
      return true;
    });
    await index.train(base);
    await index.train(base.subarray(0, 1000 * d)); // empty: allowed
    index.add(base.subarray(0, 300 * d));
    await assert.rejects(index.train(base), (error: unknown) => {
      assert.ok(error instanceof StateError);
      assert.equal(error.code, 'ALREADY_TRAINED');
      assert.match(error.message, /holds 300 vectors/);
      return true;
    });
    assert.equal(index.size, 300);
  });

  it('checks options and arguments', async () => {
    throwsWith(
      () => new PqIndex({ dimension: 30, numSubVectors: 8 }),
      ArgumentError,
      'INVALID_ARGUMENT',
      /numSubVectors to divide the dimension 30 but received 8/,
    );
    throwsWith(
      () => new PqIndex({ dimension: d, numBits: 4 }),
      ArgumentError,
      'INVALID_ARGUMENT',
      /numBits to be 8/,
    );
    throwsWith(
      () => new PqIndex({ dimension: d, refineStorage: 'int8' as 'none' }),
      ArgumentError,
      'INVALID_ARGUMENT',
      /refineStorage to be one of 'none', 'float32', 'float16'/,
    );
    const index = await trainedWith(
      new PqIndex({ dimension: d, numSubVectors: 8 }),
      base.subarray(0, 500 * d),
    );
    const q = queries.subarray(0, d);
    throwsWith(
      () => index.search(q, 5, { refineFactor: 2 }),
      ArgumentError,
      'INVALID_ARGUMENT',
      /refineStorage: 'float32' or 'float16'/,
    );
    throwsWith(
      () => index.search(q, 0),
      ArgumentError,
      'OUT_OF_RANGE',
      /k to be an integer between 1 and 100000/,
    );
    throwsWith(() => index.search(new Float32Array(31), 5), ArgumentError, 'DIMENSION_MISMATCH', /length 32/);
    throwsWith(() => index.search(q, 5, { nprobes: 0 }), ArgumentError, 'OUT_OF_RANGE', /nprobes/);
    // nprobes is meaningless without partitions: checked, then ignored.
    assert.deepEqual(index.search(q, 5, { nprobes: 3 }), index.search(q, 5));
  });

  it('is opened by its own class only; the others say which one opens it', async () => {
    const index = await trainedWith(
      new PqIndex({ dimension: d, numSubVectors: 8 }),
      base.subarray(0, 500 * d),
    );
    const bytes = index.toBytes();
    throwsWith(
      () => IvfPqIndex.fromBytes(bytes, 'pq.ris'),
      FileFormatError,
      'WRONG_INDEX_KIND',
      /pq.ris holds a PQ index \(kind pq\), not an IVF-PQ one; open it with PqIndex.load\(\)/,
    );
    throwsWith(() => FlatIndex.fromBytes(bytes), FileFormatError, 'WRONG_INDEX_KIND', /PqIndex/);
    const flat = new FlatIndex({ dimension: d });
    throwsWith(
      () => PqIndex.fromBytes(flat.toBytes()),
      FileFormatError,
      'WRONG_INDEX_KIND',
      /not a PQ .* FlatIndex/,
    );
  });
});

describe('ProductQuantizer', () => {
  it('setCodebooks drops the norms derived from the previous codebooks', async () => {
    const pq = new ProductQuantizer({ dimension: 8, numSubVectors: 2 });
    await pq.train(clustered(1000, 8, 10));
    const first = pq.codebookNorms().slice();
    const doubled = pq.codebooks!.map((v) => 2 * v);
    pq.setCodebooks(doubled);
    const norms = pq.codebookNorms();
    for (let r = 0; r < norms.length; r++) {
      assert.ok(Math.abs(norms[r]! - 4 * first[r]!) <= 1e-4 * Math.max(1, first[r]!), `norm ${r}`);
    }
    // And encoding follows the new codebooks: a codeword is its own code.
    const codeword = doubled.subarray(5 * 4, 6 * 4);
    const vector = new Float32Array(8);
    vector.set(codeword, 0);
    vector.set(doubled.subarray((256 + 7) * 4, (256 + 8) * 4), 4);
    assert.deepEqual([...pq.encode(vector, 1)], [5, 7]);
  });
});
