// IvfRabitqIndex as a collection's index (issue 25): --index ivf-rabitq, each kind's own search
// defaults, --memory-budget, the full vectors left in index.ris, damage found and rebuilt.
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { indexCollection } from '../src/collection/build.ts';
import { Collection } from '../src/collection/collection.ts';
import { indexSearchOptions } from '../src/collection/index-policy.ts';
import { indexSettingsSchema } from '../src/collection/manifest.ts';
import { estimateIndexBytes, parseByteSize, planIndex } from '../src/collection/memory-plan.ts';
import type { CollectionProgress } from '../src/collection/types.ts';
import { ArgumentError, IvfPqIndex, IvfRabitqIndex } from '../src/index.ts';
import { openRanged } from '../src/node/file-store.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { ris } from './ris-process.ts';

let dir: string;
let home: string;
let model: string;
let images: string;
const CLASSES = 4;
const PER_CLASS = 70;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-rabitq-'));
  home = join(dir, 'home');
  images = join(dir, 'photos');
  // The whole 4 × 16 × 16 feature map: 1,024 dimensions, one bit each in the index.
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  await writeClassFolders(images, CLASSES, PER_CLASS, 48, 41);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const queryPaths = () =>
  Array.from(
    { length: 24 },
    (_, i) => `class${i % CLASSES}/img${String((i * 7) % PER_CLASS).padStart(3, '0')}.jpg`,
  );

describe('an ivf-rabitq collection', () => {
  it('finds what exact search finds, and keeps its full vectors on disk once opened', async () => {
    const built = await indexCollection('rq', images, { model, home, index: { kind: 'ivf-rabitq' } });
    const exact = await indexCollection('exact', images, { model, home, index: { kind: 'flat' } });
    assert.equal(built.report.added, CLASSES * PER_CLASS);
    const justBuilt = await built.collection.status();
    assert.equal(justBuilt.kind, 'ivf-rabitq');
    await built.collection.close();
    // Opened as a later command opens it: through ranged reads of index.ris.
    const rq = await Collection.open('rq', { home });
    const status = await rq.status();
    assert.equal(status.kind, 'ivf-rabitq');
    assert.equal(status.indexed, CLASSES * PER_CLASS);
    assert.equal(status.built.bits, 1);
    const exactStatus = await exact.collection.status();
    // Exact search holds the rows (4 KB a vector here): holding them too would be more than that. The
    // rest is mostly the 17 centroids (6 KB each, as f32 and i16), a large share at 280 vectors.
    for (const held of [status.memoryBytes!, justBuilt.memoryBytes!])
      assert.ok(
        held < exactStatus.memoryBytes! / 2,
        `${held} bytes in memory (opened, and just built: once written, the rows are read from the file) against exact search's ${exactStatus.memoryBytes}`,
      );
    let found = 0;
    for (const path of queryPaths()) {
      const file = join(images, path);
      const ours = await rq.search(file, { k: 10 });
      const truth = await exact.collection.search(file, { k: 10 });
      assert.equal(ours[0]!.path, path, 'an image finds itself first');
      const wanted = new Set(truth.map((h) => h.id));
      found += ours.filter((h) => wanted.has(h.id)).length;
      // Re-ranked from the full vectors: the similarities are exact search's.
      assert.ok(Math.abs(ours[0]!.similarity - truth[0]!.similarity) < 1e-5);
    }
    const recall = found / (10 * queryPaths().length);
    assert.ok(recall >= 0.95, `10-recall@10 ${recall} against exact search`);
    await rq.close();
    await exact.collection.close();
  });

  it('adds and removes without a rebuild, and both hold after reopening', async () => {
    let rq = await Collection.open('rq', { home });
    const before = await rq.status();
    const gone = (await rq.search(join(images, 'class2', 'img010.jpg'), { k: 1 }))[0]!;
    assert.deepEqual(await rq.removeImages([gone.id]), { removed: 1, notFound: [] });
    await writeClassFolders(join(dir, 'more'), 1, 2, 48, 77, 'fresh');
    const added = await rq.addImages([
      { path: join(dir, 'more', 'fresh0', 'img001.jpg'), labels: ['fresh'] },
    ]);
    assert.equal(added.added, 1);
    await rq.close();
    rq = await Collection.open('rq', { home });
    const after = await rq.status();
    assert.equal(after.kind, 'ivf-rabitq');
    assert.equal(after.trainedOn, before.trainedOn, 'not retrained');
    assert.equal(after.indexed, before.indexed);
    const hits = await rq.search(join(images, 'class2', 'img010.jpg'), { k: 5 });
    assert.ok(!hits.some((h) => h.id === gone.id), 'a removed image is never answered');
    const fresh = await rq.search(join(dir, 'more', 'fresh0', 'img001.jpg'), { k: 1 });
    assert.deepEqual(fresh[0]!.labels, ['fresh']);
    await rq.close();
  });

  it('reads the full vectors from index.ris as it searches: they are not held in memory', async () => {
    const file = join(home, 'collections', 'rq', 'index.ris');
    const rq = await Collection.open('rq', { home });
    const query = join(images, 'class0', 'img005.jpg');
    assert.ok((await rq.search(query, { k: 1 }))[0]!.similarity > 0.999);
    // The float16 rows are the file's last section: zeroed in place (same file, same inode), the
    // open index re-ranks from the zeros. A copy in memory would not see it.
    const rows = (await rq.status()).indexed * 1024 * 2;
    const handle = await open(file, 'r+');
    const { size } = await handle.stat();
    await handle.write(new Uint8Array(rows), 0, rows, size - rows);
    await handle.close();
    const hit = (await rq.search(query, { k: 1 }))[0]!;
    assert.ok(hit.similarity < 0.9, `similarity ${hit.similarity} from a zeroed row`);
    await rq.close();
  });

  it('a flipped bit in the full vectors on disk is found when opened, and the index rebuilt', async () => {
    const file = join(home, 'collections', 'rq', 'index.ris');
    // The file zeroed above: found damaged, rebuilt.
    const first: CollectionProgress[] = [];
    await (await Collection.open('rq', { home, onProgress: (e) => first.push(e) })).close();
    assert.ok(first.some((e) => e.type === 'rebuild'));
    const bytes = new Uint8Array(await readFile(file));
    bytes[bytes.length - 100]! ^= 0x10; // the last section: the full vectors, read on demand
    await writeFile(file, bytes);
    const events: CollectionProgress[] = [];
    const rq = await Collection.open('rq', { home, onProgress: (e) => events.push(e) });
    const rebuild = events.find((e) => e.type === 'rebuild');
    assert.ok(rebuild, 'rebuilt');
    assert.match(rebuild.reason, /index\.ris cannot be used \(.*corrupt/);
    const hits = await rq.search(join(images, 'class1', 'img004.jpg'), { k: 1 });
    assert.equal(hits[0]!.path, 'class1/img004.jpg');
    assert.equal((await rq.status()).kind, 'ivf-rabitq');
    await rq.close();
    const again: CollectionProgress[] = [];
    await (await Collection.open('rq', { home, onProgress: (e) => again.push(e) })).close();
    assert.equal(again.length, 0, 'the rebuilt file is sound');
  });

  it('checks the full vectors once per version of the file, not on every open', async () => {
    const file = join(home, 'collections', 'rq', 'index.ris');
    const record = `${file}.checked`;
    const identity = () => {
      const opened = openRanged(file);
      opened.close();
      return opened.identity;
    };
    assert.equal(await readFile(record, 'utf8'), identity(), 'the version checked is recorded');
    // Damage in place, then a record saying this very version was checked: the open trusts it.
    const bytes = new Uint8Array(await readFile(file));
    bytes[bytes.length - 100]! ^= 0x10;
    await writeFile(file, bytes);
    await writeFile(record, identity()!);
    const trusted: CollectionProgress[] = [];
    await (await Collection.open('rq', { home, onProgress: (e) => trusted.push(e) })).close();
    assert.equal(trusted.length, 0, 'a version checked before is not streamed through again');
    // Without the record (or with any other version's), the damage is found.
    await rm(record);
    const checked: CollectionProgress[] = [];
    await (await Collection.open('rq', { home, onProgress: (e) => checked.push(e) })).close();
    assert.ok(checked.some((e) => e.type === 'rebuild'));
    assert.equal(await readFile(record, 'utf8'), identity(), 'the rebuilt file is recorded as checked');
    // A record planted as a link is replaced, not written through.
    const precious = join(home, 'precious.txt');
    await writeFile(precious, 'precious');
    await rm(record);
    await symlink(precious, record);
    await (await Collection.open('rq', { home })).close();
    assert.equal(await readFile(precious, 'utf8'), 'precious');
    assert.equal(await readFile(record, 'utf8'), identity());
  });
});

describe("each kind's own search defaults", () => {
  it('IVF-PQ re-ranks 8 per result; IVF-RaBitQ re-ranks what its bounds leave; probes never exceed partitions', async () => {
    const d = 16;
    const vectors = Float32Array.from({ length: 400 * d }, (_, i) => Math.sin(i * 1.7) + (i % 7));
    const pq = new IvfPqIndex({ dimension: d, numPartitions: 8, numSubVectors: 4 });
    await pq.train(vectors);
    const rq = new IvfRabitqIndex({ dimension: d, numPartitions: 8 });
    await rq.train(vectors);
    assert.deepEqual(indexSearchOptions(pq, {}), { nprobes: 8, refineFactor: 8 });
    assert.deepEqual(indexSearchOptions(rq, {}), { nprobes: undefined });
    assert.deepEqual(indexSearchOptions(rq, { nprobes: 100, efSearch: 40 }), { nprobes: 8 });
    assert.deepEqual(indexSearchOptions(rq, { nprobes: 3 }), { nprobes: 3 });
  });
});

describe('a memory budget', () => {
  const settings = (budget: number) => indexSettingsSchema.parse({ memoryBudget: budget });

  it('picks HNSW where it fits, IVF-RaBitQ where it does not, exact search while small', () => {
    const d = 1280;
    assert.equal(planIndex(settings(2e9), 1_000_000, d, 2e9).kind, 'hnsw');
    const tight = planIndex(settings(1e9), 1_000_000, d, 1e9);
    assert.equal(tight.kind, 'ivf-rabitq');
    assert.ok(tight.fits && tight.bytes < 300 * 1_000_000, `${tight.bytes} bytes`);
    assert.equal(tight.expectedRecall, 0.97);
    // Past HNSW_UP_TO, or past what one WebAssembly memory holds, whatever the budget.
    assert.equal(planIndex(settings(1e12), 3_000_000, d, 1e12).kind, 'ivf-rabitq');
    assert.equal(planIndex(settings(1e9), 500, d, 1e9).kind, 'flat');
    const none = planIndex(settings(1e6), 1_000_000, d, 1e6);
    assert.deepEqual([none.kind, none.fits], ['ivf-rabitq', false]);
    // Near the limit an IVF-RaBitQ index stays until HNSW fits with room to spare.
    const n = Math.floor(1e9 / (estimateIndexBytes('hnsw', 1, d, settings(1e9)) * 1.1));
    assert.equal(planIndex(settings(1e9), n, d, 1e9, 'none').kind, 'hnsw');
    assert.equal(planIndex(settings(1e9), n, d, 1e9, 'ivf-rabitq').kind, 'ivf-rabitq');
  });

  it('estimates within a tenth of what the index holds once loaded', async () => {
    const d = 256;
    const n = 4000;
    const vectors = Float32Array.from({ length: n * d }, (_, i) => Math.sin(i * 0.37) * ((i % 13) + 1));
    const index = new IvfRabitqIndex({ dimension: d, distanceType: 'cosine' });
    await index.train(vectors);
    index.add(vectors);
    const path = join(dir, 'estimate.ris');
    await index.save(path);
    const loaded = await IvfRabitqIndex.load(path);
    const held = loaded.memoryUsage().total;
    const estimate = estimateIndexBytes('ivf-rabitq', n, d, settings(1e9));
    assert.ok(Math.abs(estimate - held) < held / 10, `estimate ${estimate}, held ${held}`);
  });

  it('reads sizes as people write them', () => {
    assert.equal(parseByteSize('2GB'), 2e9);
    assert.equal(parseByteSize('512MiB'), 512 * 2 ** 20);
    assert.equal(parseByteSize('1.5 g'), 1.5e9);
    assert.equal(parseByteSize('800000'), 800000);
    for (const bad of ['lots', '-1GB', '', '2XB', '0'])
      assert.throws(() => parseByteSize(bad), ArgumentError, bad);
  });
});

describe('the CLI', () => {
  it('--index ivf-rabitq builds one, says so, searches it; retrain keeps the kind', async () => {
    const made = await ris(home, [
      'index',
      images,
      '--collection',
      'cli-rq',
      '--model',
      model,
      '--index',
      'ivf-rabitq',
    ]);
    assert.equal(made.code, 0, made.stderr);
    const info = await ris(home, ['collections', 'info', 'cli-rq']);
    assert.match(
      info.stdout,
      /index {7}ivf-rabitq, 280 vectors, trained on 280 \(numPartitions 17, .*bits 1/,
    );
    assert.match(info.stdout, /memory {6}[\d.]+ kB held by the index\n/);
    assert.match(info.stdout, /settings {4}kind ivf-rabitq, /);
    const search = await ris(home, [
      'search',
      'cli-rq',
      join(images, 'class3', 'img033.jpg'),
      '--json',
      '-k',
      '3',
    ]);
    assert.equal(search.code, 0, search.stderr);
    assert.equal((JSON.parse(search.stdout) as { path: string }[])[0]!.path, 'class3/img033.jpg');
    const retrained = await ris(home, ['retrain', 'cli-rq']);
    assert.match(retrained.stdout, /retrained cli-rq: ivf-rabitq index of 280 images/);
  });

  it('--memory-budget picks the kind for the size and says which, and the recall to expect', async () => {
    const roomy = await ris(home, [
      'index',
      images,
      '--collection',
      'roomy',
      '--model',
      model,
      '--memory-budget',
      '1GB',
    ]);
    assert.equal(roomy.code, 0, roomy.stderr);
    assert.match(
      roomy.stdout,
      /index flat for 280 images: [\d.]+ MB in memory of the 1\.00 GB budget; expect 10-recall@10 about 1\.00/,
    );
    const tight = await ris(home, [
      'index',
      images,
      '--collection',
      'tight',
      '--model',
      model,
      '--memory-budget',
      '100kB',
    ]);
    assert.equal(tight.code, 0, tight.stderr);
    assert.match(
      tight.stdout,
      /index ivf-rabitq for 280 images: [\d.]+ [kM]B in memory over the 100 kB budget \(nothing smaller fits 280 images; raise --memory-budget\); expect 10-recall@10 about 0\.97/,
    );
    // Indexing it again with another budget does not change it, and says so.
    const again = await ris(home, ['index', images, '--collection', 'tight', '--memory-budget', '2GB']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stdout,
      /tight keeps the index settings it was made with \(auto, memory budget 100 kB\): --index and --memory-budget set up a new collection/,
    );
    const manifest = JSON.parse(await readFile(join(home, 'collections', 'tight', 'manifest.json'), 'utf8'));
    assert.deepEqual([manifest.index.kind, manifest.index.memoryBudget], ['auto', 100_000]);
    const info = await ris(home, ['collections', 'info', 'tight']);
    assert.match(info.stdout, /settings {4}kind auto, .*memoryBudget 100 kB/);
    for (const [args, message] of [
      [
        ['--index', 'hnsw', '--memory-budget', '2GB'],
        /^ris: --memory-budget chooses the index kind itself; leave out --index hnsw, or use --index auto\n$/,
      ],
      [
        ['--memory-budget', 'lots'],
        /^ris: Expected --memory-budget to be a size such as 2GB, 512MiB or 800M but received "lots"\n$/,
      ],
      [
        ['--index', 'ivf-rabitq', '--sub-vectors', '8'],
        /^ris: --sub-vectors sets an IVF-PQ index; IVF-RaBitQ keeps one bit per dimension \(leave it out\)\n$/,
      ],
    ] as const) {
      const refused = await ris(home, [
        'index',
        images,
        '--collection',
        'refused',
        '--model',
        model,
        ...args,
      ]);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, message);
    }
  });
});
