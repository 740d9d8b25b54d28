import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileStore, setFileStore } from '../src/ann/storage.ts';
import { FileFormatError, HnswIndex, loadIndex } from '../src/index.ts';
import { clustered, exactNeighbours, recallAtK } from './helpers.ts';

const d = 64;
const base = clustered(3000, d, 30);
const queries = clustered(100, d, 30, 99).map((v, i) => v + 0.01 * Math.cos(i));
const nq = queries.length / d;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-hnsw-rerank-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function built(rerankStorage: 'none' | 'float16' | 'float32' = 'float16'): HnswIndex {
  const index = new HnswIndex({ dimension: d, storage: 'int8', m: 12, efConstruction: 100, rerankStorage });
  index.add(base);
  return index;
}

describe('HnswIndex with a re-rank copy on disk', () => {
  it('re-ranks the beam from the copy: exact distances, recall past int8', async () => {
    const truth = exactNeighbours(base, queries, d);
    const plain = built('none');
    const copy = built('float32');
    const found = copy.searchBatch(queries, 10, { efSearch: 96 });
    const plainRecall = recallAtK(plain.searchBatch(queries, 10, { efSearch: 96 }), truth, nq, 10);
    const copyRecall = recallAtK(found, truth, nq, 10);
    assert.ok(copyRecall >= plainRecall && copyRecall >= 0.85, `${copyRecall} vs ${plainRecall}`);
    for (let i = 0; i < nq * 10; i++) {
      if (found.ids[i] !== truth.ids[i]) continue;
      assert.ok(Math.abs(found.distances[i]! - truth.distances[i]!) <= 1e-4 * (1 + truth.distances[i]!));
    }
    // refineFactor 0 gives the graph's own (int8) distances and order, as without the copy.
    assert.deepEqual(
      copy.searchBatch(queries, 10, { efSearch: 96, refineFactor: 0 }),
      plain.searchBatch(queries, 10, { efSearch: 96 }),
    );
  });

  it('keeps the copy in its file: memory counts only each node’s row number once loaded', async () => {
    const plain = built('none');
    const index = built('float16');
    assert.ok(index.memoryUsage().rerank >= base.length * 2, 'unsaved copies are held');
    const path = join(dir, 'copy.ris');
    await index.save(path);
    const bytes = await readFile(path);
    assert.equal(new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true), 2);
    const plainPath = join(dir, 'plain.ris');
    await plain.save(plainPath);
    const plainBytes = await readFile(plainPath);
    assert.equal(
      new DataView(plainBytes.buffer, plainBytes.byteOffset).getUint32(8, true),
      1,
      'no copy: version 1',
    );
    const real = fileStore();
    let readAtLoad = 0;
    setFileStore({
      ...real,
      async open(p) {
        const file = await real.open(p);
        return {
          ...file,
          size: file.size,
          read: (into, at) => {
            readAtLoad += into.length;
            file.read(into, at);
          },
          crc32: file.crc32,
          close: () => file.close(),
        };
      },
    });
    let loaded: HnswIndex;
    try {
      loaded = (await loadIndex(path)) as HnswIndex;
    } finally {
      setFileStore(real);
    }
    assert.ok(readAtLoad <= bytes.length - base.length * 2 + 1024, `${readAtLoad} bytes read at load`);
    const memory = loaded.memoryUsage();
    assert.equal(memory.onDisk, base.length * 2);
    assert.equal(memory.rerank, 3000 * 4);
    assert.equal(memory.total, plain.memoryUsage().total + 3000 * 4);
    assert.deepEqual(loaded.searchBatch(queries, 10), index.searchBatch(queries, 10));
  });

  it('finds every vector again through removals, compaction, adds and saves (rows follow the nodes)', async () => {
    const path = join(dir, 'moves.ris');
    await built('float32').save(path);
    const index = (await loadIndex(path)) as HnswIndex;
    const gone = Uint32Array.from({ length: 900 }, (_, i) => i * 3);
    index.remove(gone); // 30 %: past compactAt, so the graph is renumbered
    assert.equal(index.removedCount, 0);
    const extra = clustered(200, d, 30, 5);
    index.add(extra);
    const check = (at: HnswIndex) => {
      for (const id of [1, 2, 1000, 2999]) {
        const found = at.search(base.subarray(id * d, (id + 1) * d), 1, { efSearch: 64 });
        assert.equal(found.ids[0], id);
        assert.equal(found.distances[0], 0);
      }
      const self = at.search(extra.subarray(5 * d, 6 * d), 1, { efSearch: 64 });
      assert.equal(self.ids[0], 3005);
      assert.equal(self.distances[0], 0);
    };
    check(index);
    await index.save(path); // over the file it reads its copies from
    check(index);
    check((await loadIndex(path)) as HnswIndex);
  });

  it('a flipped bit in the copy fails its own checksum at load (unless told not to check)', async () => {
    const path = join(dir, 'flip.ris');
    await built('float16').save(path);
    const bytes = new Uint8Array(await readFile(path));
    bytes[bytes.length - 200]! ^= 0x01;
    await writeFile(path, bytes);
    await assert.rejects(loadIndex(path), (error: unknown) => {
      assert.ok(error instanceof FileFormatError);
      assert.equal(error.code, 'CORRUPT_FILE');
      assert.match(error.message, /"RVEC" section's checksum/);
      return true;
    });
    assert.ok(await loadIndex(path, { verify: false }));
  });
});
