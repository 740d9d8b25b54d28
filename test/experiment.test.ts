import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Random } from '../src/ann/random.ts';
import { parseModelConfig } from '../src/embed/config.ts';
import { readModel } from '../src/embed/onnx-graph.ts';
import { splitQueries, type VectorSet } from '../src/experiment/data.ts';
import { modelFeatures } from '../src/experiment/features.ts';
import {
  applyProjection,
  Collection,
  type ExperimentResults,
  type ExperimentRow,
  FileFormatError,
  findFeatureMap,
  learnLda,
  learnWhitening,
  leaveOneOut,
  loadProjection,
  meanAveragePrecisionAtK,
  NO_ID,
  notebookRecallAt5,
  precisionAtK,
  projectionFromJson,
  projectionToJson,
  recallAtK,
  runExperiment,
  saveProjection,
  writeFvecs,
} from '../src/index.ts';
import { createApp } from '../src/server/app.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, tinyModel, writeTinyModel } from './fixtures/tiny-models.ts';
import { noSharedData, sharedData } from './helpers.ts';
import { bin, type Run, ris as runRis } from './ris-process.ts';

let dir: string;
let fvecs: string;
let labelsFile: string;

/** The real binary, run in the test's folder (reports default to ./experiments there). */
const ris = (home: string, ...args: string[]) => runRis(home, args, {}, { cwd: dir });

/** n labelled points around `classes` centres in d dimensions, with full-rank noise (so PCA loses some). */
function labelledVectors(n: number, d: number, classes: number, seed = 3) {
  const random = new Random(seed);
  const centres = new Float32Array(classes * d).map(() => random.gaussian());
  const vectors = new Float32Array(n * d);
  const labels: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = random.int(classes);
    labels.push(`class${c}`);
    for (let j = 0; j < d; j++) vectors[i * d + j] = centres[c * d + j]! + 0.5 * random.gaussian();
  }
  return { vectors, labels };
}

/** Well-formed XML (every tag closed in order, one root <svg>), and the text of its <text> elements. */
function parseSvg(svg: string): string[] {
  const stack: string[] = [];
  const texts: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(\/?)>|<!--[\s\S]*?-->|<\?[\s\S]*?\?>/g;
  let last = 0;
  let inText = false;
  for (let m = tag.exec(svg); m; m = tag.exec(svg)) {
    if (inText) texts.push(svg.slice(last, m.index));
    last = tag.lastIndex;
    if (m[2] === undefined) continue;
    if (m[1]) {
      assert.equal(stack.pop(), m[2], `</${m[2]}> closes another element`);
      if (m[2] === 'text') inText = false;
    } else if (!m[4]) {
      if (stack.length === 0) roots++;
      stack.push(m[2]);
      if (m[2] === 'text') inText = true;
    } else if (stack.length === 0) roots++;
  }
  assert.equal(stack.length, 0, `unclosed: ${stack.join(' > ')}`);
  assert.equal(roots, 1);
  assert.match(svg, /^<svg /);
  return texts.map((t) =>
    t.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#39;/g, "'"),
  );
}

const REQUIRED = [
  'preset',
  'index',
  'params',
  'dimension',
  'n',
  'queries',
  'trainSeconds',
  'addSeconds',
  'bytesPerVector',
  'fileBytes',
  'qps',
  'batchQps',
  'p50Ms',
  'p99Ms',
  'recallAt5Seed',
  'recall10At10',
  'precisionAt5',
];

function checkUnitInterval(row: ExperimentRow, keys: (keyof ExperimentRow)[]): void {
  for (const key of keys) {
    const v = row[key];
    if (v === null) continue;
    assert.ok(typeof v === 'number' && v >= 0 && v <= 1, `${row.label} ${key} = ${v}`);
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-experiment-'));
  const { vectors, labels } = labelledVectors(800, 48, 10);
  fvecs = join(dir, 'small.fvecs');
  labelsFile = join(dir, 'small.labels.txt');
  await writeFvecs(fvecs, vectors, 48);
  await writeFile(labelsFile, `${labels.join('\n')}\n`);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('experiment metrics', () => {
  it("the notebook's recall@5 on a hand-made case: ranks 2–6 count, rank 1 never does", () => {
    const approx = Uint32Array.from([
      ...[0, 7, 1, 2, 3, 4], // the true neighbour 7 at rank 2: counts
      ...[8, 1, 2, 3, 4, 5], // 8 at rank 1, taken for the query itself: does not count
      ...[2, 0, 1, 3, 4, 9], // 9 at rank 6: counts
      ...[3, 0, 1, 2, 4, 5], // 6 absent: does not count
    ]);
    assert.equal(notebookRecallAt5(approx, 6, Uint32Array.from([7, 8, 9, 6])), 0.5);
  });

  it('10-recall@10, P@k and mAP@10 on known answers', () => {
    const truth = Uint32Array.from([1, 2, 3]);
    assert.equal(recallAtK(Uint32Array.from([3, 9, 1]), 3, truth, 3, 1, 3), 2 / 3);
    assert.equal(recallAtK(Uint32Array.from([1, 2, NO_ID]), 3, truth, 3, 1, 3), 2 / 3);
    const base = Int32Array.from([0, 0, 1, 0, 1]);
    // Found: same, other, same (R = 2 relevant): AP = (1/1 + 2/3) / 2.
    const found = Uint32Array.from([0, 2, 1]);
    assert.equal(precisionAtK(found, 3, 3, Int32Array.from([0]), base), 2 / 3);
    const ap = meanAveragePrecisionAtK(found, 3, 3, Int32Array.from([0]), base, () => 2);
    assert.ok(Math.abs(ap! - (1 + 2 / 3) / 2) < 1e-12);
    // Unlabelled queries are left out.
    assert.equal(precisionAtK(found, 3, 3, Int32Array.from([-1]), base), null);
  });
});

describe('held-out queries', () => {
  const set = (count: number): VectorSet => ({
    kind: 'vectors',
    name: 'test',
    dimension: 2,
    vectors: new Float32Array(count * 2).map((_, i) => i),
    count,
    labels: undefined,
    labelNames: [],
  });
  it('hold out a fifth of a small input, leaving 256 to train product quantizers on where that leaves some', () => {
    for (const [count, nq] of [
      [100, 20],
      [270, 14],
      [310, 54],
      [1500, 300],
      [5000, 1000],
    ] as const) {
      const data = splitQueries(set(count), 1000, 1, false);
      assert.equal(data.nq, nq, `${count} vectors`);
      assert.equal(data.n, count - nq);
      assert.equal(data.base.length + data.queries.length, count * 2);
    }
    assert.throws(() => splitQueries(set(310), 200, 1, true), /use --queries 62 or fewer/);
  });
});

describe('learned projections', () => {
  // The classes differ in 2 quiet dimensions; 18 loud dimensions are noise: raw L2 neighbours are noise.
  const d = 20;
  const make = (n: number, seed: number) => {
    const random = new Random(seed);
    const x = new Float32Array(n * d);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const c = random.int(3);
      y[i] = c;
      x[i * d] = c + 0.1 * random.gaussian();
      x[i * d + 1] = (c % 2) + 0.1 * random.gaussian();
      for (let j = 2; j < d; j++) x[i * d + j] = 5 * random.gaussian();
    }
    return { x, y };
  };

  it('LDA finds the quiet dimensions that separate the labels, where raw features fail', () => {
    const train = make(600, 1);
    const test = make(300, 2);
    const lda = learnLda(train.x, train.y, d, {
      normalizeInput: false,
      seed: 1,
      score: (p, dim, y) => leaveOneOut(p, dim, y).precisionAt5 ?? 0,
    });
    assert.equal(lda.outputDimension, 2); // classes − 1
    const raw = leaveOneOut(test.x, d, test.y).precisionAt5!;
    const projected = leaveOneOut(applyProjection(lda, test.x), lda.outputDimension, test.y).precisionAt5!;
    assert.ok(raw < 0.6, `raw P@5 ${raw}`);
    assert.ok(projected > 0.95, `LDA P@5 ${projected}`);
  });

  it('saves and loads a projection exactly; refuses a damaged file; PCA-whitening gives unit vectors', async () => {
    const { x, y } = make(300, 3);
    const lda = learnLda(x, y, d, { shrinkage: 0.1, model: 'tiny', modelId: 'tiny@1' });
    const file = join(dir, 'projection.json');
    await saveProjection(file, lda);
    const loaded = await loadProjection(file);
    assert.deepEqual(loaded, lda);
    assert.deepEqual(
      applyProjection(loaded, x.subarray(0, 5 * d)),
      applyProjection(lda, x.subarray(0, 5 * d)),
    );
    const text = projectionToJson(lda).replace(/"matrix": "[A-Za-z0-9+/]{8}/, '"matrix": "');
    assert.throws(
      () => projectionFromJson(text, 'bad.json'),
      (e: unknown) => e instanceof FileFormatError && e.code === 'CORRUPT_FILE',
    );
    assert.throws(() => applyProjection(lda, new Float32Array(7)), /expects rows of 20 values/);
    const whitening = learnWhitening(x, d, { dimensions: 8 });
    assert.equal(whitening.outputDimension, 8);
    const w = applyProjection(whitening, x.subarray(0, 10 * d));
    for (let i = 0; i < 10; i++) {
      let s = 0;
      for (let j = 0; j < 8; j++) s += w[i * 8 + j]! ** 2;
      assert.ok(Math.abs(s - 1) < 1e-4);
    }
  });
});

describe('ris experiment (library) on a small .fvecs', () => {
  let results: ExperimentResults;
  let out: string;

  before(async () => {
    out = join(dir, 'seed-lib');
    const events: string[] = [];
    ({ results } = await runExperiment({
      vectors: fvecs,
      labels: labelsFile,
      queries: 100,
      pcaDimension: 16,
      out,
      onProgress: (e) => events.push(e.type),
    }));
    assert.ok(events.includes('plan') && events.includes('row') && events.at(-1) === 'written');
  });

  it("seed: the notebook's rows and ris's, each measured the same way", () => {
    assert.equal(results.status, 'done');
    const labels = results.rows.map((r) => r.label);
    for (const expected of [
      'Flat',
      'IVF100,Flat nprobes 1',
      'IVF100,PQ8 nprobes 1',
      'OPQ8,IVF100,PQ8 nprobes 1',
      'PQ8',
      'PCA16,Flat',
      'PCA16,IVF100,PQ8 nprobes 1',
      'PCA16,OPQ8,IVF100,PQ8 nprobes 1',
      'PCA16,PQ8',
    ])
      assert.ok(labels.includes(expected), `${expected} missing from ${labels.join('; ')}`);
    for (const row of results.rows) {
      assert.equal(row.skipped, null, `${row.label}: ${row.skipped}`);
      for (const key of REQUIRED) assert.ok(key in row, `${row.label} has no ${key}`);
      checkUnitInterval(row, ['recallAt5Seed', 'recall10At10', 'precisionAt5']);
      assert.ok(row.qps! > 0 && row.batchQps! > 0 && row.p99Ms! >= row.p50Ms!);
      assert.ok(row.fileBytes! > 0 && row.bytesPerVector! > 0 && row.trainSeconds! >= 0);
      assert.equal(row.n, 700);
      assert.equal(row.queries, 100);
    }
    const flat = results.rows.find((r) => r.label === 'Flat')!;
    assert.equal(flat.recall10At10, 1);
    assert.equal(flat.recallAt5Seed, 1);
    assert.equal(flat.bytesPerVector, 48 * 4 + 8);
    const pq = results.rows.find((r) => r.label === 'IVF100,PQ8 nprobes 1')!;
    assert.equal(pq.bytesPerVector, 8 + 4); // 8 bytes of code and a 4-byte id
    assert.ok(pq.recall10At10! < 1);
  });

  it('PCA rows are measured against exact search in the original space, the notebook’s recall@5 in their own', () => {
    const pcaFlat = results.rows.find((r) => r.label === 'PCA16,Flat')!;
    assert.equal(pcaFlat.dimension, 16);
    assert.equal(pcaFlat.recallAt5Seed, 1); // exact in its own space, as the notebook measured it
    assert.ok(pcaFlat.recall10At10! < 0.9, `PCA16 Flat 10-R@10 ${pcaFlat.recall10At10}`); // what PCA discards
    // The PCA matrix travels with the index: 16 × 48 floats and a mean of 48, beside 700 × (16 + 2) floats.
    assert.equal(pcaFlat.memoryBytes, 700 * (16 * 4 + 8) + (16 * 48 + 48) * 4);
    const flat = results.rows.find((r) => r.label === 'Flat')!;
    assert.ok(pcaFlat.fileBytes! > (16 * 48 + 48) * 4 && pcaFlat.fileBytes! < flat.fileBytes!);
  });

  it('results.json, report.md and the plots have their shape', async () => {
    const json = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as ExperimentResults;
    assert.equal(json.format, 'ris-experiment');
    assert.equal(json.rows.length, results.rows.length);
    assert.equal(json.input.total, 800);
    assert.ok(json.machine.cores >= 1 && json.machine.node.startsWith('v'));
    assert.match(json.command, /^runExperiment\(/);
    const md = await readFile(join(out, 'report.md'), 'utf8');
    assert.match(md, /^# ris experiment: seed preset on /);
    assert.match(md, /## The notebook's index table\n\nThe notebook's table: .*\n\n\| row \| dim \| train s/);
    assert.match(md, /Made by:\n\n```sh\nrunExperiment/);
    assert.ok(md.includes(json.machine.cpuModel) && md.includes(`Node ${process.version}`));
    assert.match(md, /\| Flat \| 48 \| [\d.]+ \| [\d.]+ \| 200\.0 \|/);
    assert.deepEqual(json.plots.map((p) => p.file).sort(), [
      'build-time.svg',
      'recall-memory.svg',
      'recall-qps.svg',
    ]);
    const expectations: Record<string, string[]> = {
      'recall-qps.svg': [
        'Recall against speed',
        '10-recall@10 (held-out queries)',
        'Single-query QPS (queries/s, log scale)',
        'Index type',
        'IVF-PQ',
        'Pareto front',
      ],
      'recall-memory.svg': [
        'Memory per vector (bytes, log scale)',
        '10-recall@10 (held-out queries)',
        'Index type',
      ],
      'build-time.svg': ['Build time per index', 'Build time (s)', 'Index', 'Phase', 'train', 'add'],
    };
    for (const [file, texts] of Object.entries(expectations)) {
      const found = parseSvg(await readFile(join(out, file), 'utf8'));
      for (const t of texts)
        assert.ok(found.includes(t), `${file} has no text "${t}" (has ${found.slice(0, 20).join(' | ')})`);
      assert.ok(md.includes(`](${file})`));
    }
  });

  it('sweep: a curve per parameter, each with its plot', async () => {
    const { results: sweep } = await runExperiment({
      preset: 'sweep',
      vectors: fvecs,
      labels: labelsFile,
      queries: 50,
      out: join(dir, 'sweep-lib'),
      maxTimedQueries: 20,
    });
    const groups = new Set(sweep.rows.map((r) => r.group));
    assert.deepEqual([...groups].sort(), [
      'nprobes',
      'numPartitions',
      'numSubVectors',
      'pcaDimension',
      'refineFactor',
    ]);
    const probes = sweep.rows
      .filter((r) => r.group === 'nprobes' && r.index === 'IVF-Flat')
      .map((r) => r.params.nprobes);
    assert.deepEqual(probes, [1, 2, 4, 8, 16, 32, 64]);
    // IVF-Flat over every partition is exact search.
    assert.equal(
      sweep.rows.find((r) => r.group === 'nprobes' && r.index === 'IVF-Flat' && r.params.nprobes === 64)!
        .recall10At10,
      1,
    );
    for (const row of sweep.rows) checkUnitInterval(row, ['recallAt5Seed', 'recall10At10', 'precisionAt5']);
    const legends: Record<string, string> = {
      'nprobes.svg': 'Index',
      'num-partitions.svg': 'Search',
      'sub-vectors.svg': 'Search',
      'refine.svg': 'Codes and nprobes',
      'pca.svg': 'Index and search',
    };
    for (const [file, legend] of Object.entries(legends)) {
      const texts = parseSvg(await readFile(join(dir, 'sweep-lib', file), 'utf8'));
      for (const t of ['10-recall@10', 'Single-query QPS (queries/s, log scale)', legend])
        assert.ok(texts.includes(t), `${file} has no text "${t}"`);
    }
  });

  it('runtime: exact search and IVF-PQ at growing sizes of synthetic vectors', async () => {
    const { results: runtime } = await runExperiment({
      preset: 'runtime',
      vectors: 'synthetic:3000x32',
      out: join(dir, 'runtime-lib'),
      maxTimedQueries: 50,
    });
    assert.deepEqual(
      runtime.rows.map((r) => `${r.index} ${r.n}`),
      ['Flat 1000', 'IVF-PQ 1000', 'Flat 2000', 'IVF-PQ 2000'], // 1,000 of the 3,000 held out as queries
    );
    for (const row of runtime.rows.filter((r) => r.index === 'Flat')) assert.equal(row.recall10At10, 1);
    assert.match(runtime.notes.join(' '), /seeded subsample/);
    const texts = parseSvg(await readFile(join(dir, 'runtime-lib', 'runtime.svg'), 'utf8'));
    for (const t of [
      'Median query latency (ms, log scale)',
      'Vectors in the database (log scale)',
      'Index type',
    ])
      assert.ok(texts.includes(t), t);
  });

  it('refuses unusable options with messages that say what to give, before making any folder', async () => {
    const cwd = process.cwd();
    const empty = join(dir, 'refused');
    await mkdir(empty);
    process.chdir(empty); // where a run without --out would put ./experiments
    try {
      await refusals();
    } finally {
      process.chdir(cwd);
    }
    assert.deepEqual(await readdir(empty), []);
  });

  async function refusals() {
    await assert.rejects(runExperiment({}), /Give what to experiment on/);
    await assert.rejects(
      runExperiment({ vectors: fvecs, preset: 'nope' as 'seed' }),
      /Unknown preset "nope"; use one of seed, sweep, models, runtime/,
    );
    await assert.rejects(
      runExperiment({ vectors: fvecs, queries: 700 }),
      /Cannot hold out 700 queries from 800 vectors/,
    );
    await assert.rejects(runExperiment({ vectors: fvecs, preset: 'models' }), /models preset embeds images/);
    await assert.rejects(
      runExperiment({ vectors: fvecs, labels: join(dir, 'nowhere.txt') }),
      /No labels file/,
    );
    await assert.rejects(runExperiment({ vectors: 'synthetic:big' }), /synthetic:NxD/);
  }
});

describe('ris experiment --preset models (tiny models)', () => {
  let images: string;
  let floatModel: string;
  let quantModel: string;
  let flatModel: string;

  before(async () => {
    images = join(dir, 'labelled');
    await writeClassFolders(images, 4, 12, 48, 5);
    const models = join(dir, 'models');
    await mkdir(models);
    // The configured embedding is the global average pool's output, as in the built-in models.
    floatModel = await writeTinyModel(models, 'tinyfloat', 'float', tinyConfig({ tensor: 'pooled' }));
    quantModel = await writeTinyModel(models, 'tinyquant', 'quantized', tinyConfig({ tensor: 'pooled' }));
    flatModel = await writeTinyModel(
      models,
      'tinyflat',
      'float',
      tinyConfig({ tensor: 'features', pooling: 'none' }),
    );
  });

  it("finds the feature map a model's embedding is pooled from", () => {
    const config = parseModelConfig(tinyConfig({ tensor: 'pooled' }), 'tiny');
    assert.deepEqual(findFeatureMap(readModel(tinyModel('float')), config), {
      tensor: 'features',
      layout: 'nchw',
    });
    assert.deepEqual(findFeatureMap(readModel(tinyModel('quantized')), config), {
      tensor: 'features_dq',
      layout: 'nchw',
    });
    const pooling = parseModelConfig(tinyConfig({ tensor: 'features', pooling: 'gem' }), 'tiny');
    assert.equal(findFeatureMap(readModel(tinyModel('float')), pooling)?.tensor, 'features');
    const flat = parseModelConfig(tinyConfig({ tensor: 'features', pooling: 'none' }), 'tiny');
    assert.equal(findFeatureMap(readModel(tinyModel('float')), flat), undefined);
  });

  it('average pooling of the map is the configured embedding; max and GeM differ from it', async () => {
    const paths = (await readdir(join(images, 'class1'))).map((f) => join(images, 'class1', f)).slice(0, 5);
    const features = await modelFeatures(floatModel, paths, { threads: 1 });
    assert.equal(features.rows.length, 5);
    const unit = (v: Float32Array) => {
      const s = Math.hypot(...v);
      return v.map((x) => x / s);
    };
    const d = features.dimension;
    for (let i = 0; i < 5; i++) {
      const configured = features.vectors.get('configured')!.subarray(i * d, (i + 1) * d);
      const avg = unit(features.vectors.get('avg')!.slice(i * d, (i + 1) * d));
      const max = unit(features.vectors.get('max')!.slice(i * d, (i + 1) * d));
      for (let j = 0; j < d; j++) assert.ok(Math.abs(configured[j]! - avg[j]!) < 1e-4);
      assert.ok(max.some((v, j) => Math.abs(v - avg[j]!) > 1e-3));
    }
  });

  it('every model × pooling × normalisation, and an LDA projection saved for ris index --projection', async () => {
    const out = join(dir, 'models-lib');
    const { results, files } = await runExperiment({
      preset: 'models',
      images,
      models: [floatModel, quantModel, flatModel],
      out,
      threads: 1,
    });
    assert.equal(results.status, 'done');
    const measured = results.rows.filter((r) => !r.skipped);
    for (const model of ['tinyfloat.onnx', 'tinyquant.onnx']) {
      const rows = measured.filter((r) => r.model === model && r.group === 'models');
      assert.deepEqual(
        rows.map((r) => `${r.pooling} ${r.normalization}`),
        ['configured', 'avg', 'max', 'gem'].flatMap((p) =>
          ['none', 'l2', 'pca-whitening'].map((n) => `${p} ${n}`),
        ),
      );
      assert.equal(measured.filter((r) => r.model === model && r.group === 'projection').length, 8);
    }
    for (const row of measured) {
      checkUnitInterval(row, ['precisionAt1', 'precisionAt5', 'map10']);
      assert.ok(row.precisionAt5 !== null && row.map10 !== null);
      for (const key of REQUIRED) assert.ok(key in row);
    }
    // A model whose output is not pooled has only its configured embedding; the rest says why.
    const flatRows = results.rows.filter((r) => r.model === 'tinyflat.onnx');
    assert.ok(flatRows.filter((r) => r.pooling === 'configured').every((r) => r.skipped === null));
    assert.ok(
      flatRows
        .filter((r) => r.pooling !== 'configured')
        .every((r) => /no global pooling/.test(r.skipped ?? '')),
    );
    assert.equal(
      results.rows.filter((r) => r.model === 'tinyfloat.onnx' && r.split === 'leave-one-out')[0]!.n,
      48,
    );

    assert.equal(results.projections.length, 3);
    const saved = results.projections.find((p) => p.model === floatModel)!;
    assert.equal(saved.file, 'projection-tinyfloat.json');
    assert.ok(files.includes(saved.file));
    const projection = await loadProjection(join(out, saved.file));
    assert.equal(projection.method, 'lda');
    assert.equal(projection.model, floatModel);
    assert.match(projection.modelId!, /^tiny@/);
    assert.equal(projection.inputDimension, 4);
    assert.equal(projection.outputDimension, 3); // 4 labels
    const md = await readFile(join(out, 'report.md'), 'utf8');
    assert.match(
      md,
      /## Learned projection\n\nA linear projection learned .*tinyfloat\.onnx configured: LDA (beats|does not beat) the raw features/,
    );
    // Held out: fitted on one half of each label, measured within the other (24 of the 48 images).
    const { results: held } = await runExperiment({
      preset: 'models',
      images,
      models: [floatModel],
      split: 'held-out',
      out: join(dir, 'models-held-out'),
      threads: 1,
    });
    const whitened = held.rows.find((r) => r.group === 'models' && r.normalization === 'pca-whitening')!;
    assert.equal(whitened.split, 'held-out');
    assert.equal(whitened.n, 24);
    for (const file of ['models-p5.svg', 'projection-p5.svg']) {
      const texts = parseSvg(await readFile(join(out, file), 'utf8'));
      assert.ok(texts.includes('Same-label P@5') && texts.includes('Model · pooling'), file);
    }
  });
});

describe('ris experiment (the real binary)', () => {
  let images: string;
  let model: string;
  const home = () => join(dir, 'home');
  let collectionRun: Run;

  before(async () => {
    images = join(dir, 'pics');
    await writeClassFolders(images, 4, 80, 32, 9);
    model = await writeTinyModel(
      dir,
      'tinycli',
      'float',
      tinyConfig({ tensor: 'features', pooling: 'none' }),
    );
    const indexed = await ris(home(), 'index', images, '--collection', 'pics', '--model', model);
    assert.equal(indexed.code, 0, indexed.stderr);
    // One report in the collection's own folder, for the tests of the CLI and of the server below.
    collectionRun = await ris(home(), 'experiment', 'pics', '--queries', '40');
  });

  it('on a .fvecs: progress on stderr, a summary on stdout, the report folder written', async () => {
    const out = join(dir, 'cli-fvecs');
    const run = await ris(
      home(),
      'experiment',
      '--vectors',
      fvecs,
      '--labels',
      labelsFile,
      '--queries',
      '100',
      '--pca',
      '16',
      '--out',
      out,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /seed preset: 16 rows on 700 vectors of 48 dimensions, 100 held-out queries/);
    assert.match(run.stderr, /\[1\/16\] Flat: 10-R@10 1\.000, notebook R@5 1\.000, P@5 [\d.]+, [\d,]+ QPS/);
    assert.match(run.stdout, /^Flat: 10-R@10 1\.000/m);
    assert.match(run.stdout, /16 rows in \d+ s; wrote .*cli-fvecs\/report\.md, results\.json and 3 plots/);
    const json = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as ExperimentResults;
    assert.equal(
      json.command,
      `ris experiment --vectors ${fvecs} --labels ${labelsFile} --queries 100 --pca 16 --out ${out}`,
    );
    const again = await ris(
      home(),
      'experiment',
      '--vectors',
      fvecs,
      '--queries',
      '100',
      '--pca',
      '16',
      '--out',
      join(dir, 'cli-json'),
      '--json',
    );
    assert.equal(again.code, 0, again.stderr);
    const printed = JSON.parse(again.stdout) as ExperimentResults;
    assert.equal(printed.rows.length, 16);
    // The same seed gives the same recalls.
    assert.deepEqual(
      printed.rows.map((r) => r.recall10At10),
      json.rows.map((r) => r.recall10At10),
    );
    assert.ok(printed.rows.every((r) => r.precisionAt5 === null)); // no labels given
  });

  it('on a collection: its stored vectors, the report in <collection>/experiments/<time>/', async () => {
    assert.equal(collectionRun.code, 0, collectionRun.stderr);
    const reports = join(home(), 'collections', 'pics', 'experiments');
    const [id] = await readdir(reports);
    assert.match(id!, /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$/);
    const json = JSON.parse(await readFile(join(reports, id!, 'results.json'), 'utf8')) as ExperimentResults;
    assert.equal(json.input.kind, 'collection');
    assert.equal(json.input.dimension, 4 * 16 * 16);
    const flat = json.rows.find((r) => r.label === 'Flat')!;
    assert.equal(flat.n, 280);
    assert.equal(flat.recall10At10, 1);
    assert.ok(flat.precisionAt5! > 0.5); // the folders' labels
    // 280 vectors cannot determine a 1024×1024 rotation.
    assert.match(
      json.rows.find((r) => r.index === 'OPQ+IVF-PQ' && !r.params.pca)!.skipped!,
      /at least 1024 training vectors/,
    );
  });

  it('sweep, runtime and models on the collection too (library)', async () => {
    const common = { collection: 'pics', home: home(), queries: 40, maxTimedQueries: 20 };
    const { results: sweep } = await runExperiment({
      ...common,
      preset: 'sweep',
      out: join(dir, 'pics-sweep'),
    });
    assert.equal(sweep.status, 'done');
    assert.ok(sweep.rows.filter((r) => !r.skipped).length > 40);
    const { results: runtime } = await runExperiment({
      ...common,
      preset: 'runtime',
      out: join(dir, 'pics-runtime'),
    });
    assert.deepEqual(
      runtime.rows.map((r) => `${r.index} ${r.n} ${r.skipped ? 'skipped' : 'measured'}`),
      [
        'Flat 70 measured',
        'IVF-PQ 70 skipped',
        'Flat 140 measured',
        'IVF-PQ 140 skipped',
        'Flat 280 measured',
        'IVF-PQ 280 measured',
      ],
    );
    assert.match(runtime.rows[1]!.skipped!, /needs at least 256 vectors/);
    const { results: models } = await runExperiment({
      collection: 'pics',
      home: home(),
      preset: 'models',
      models: [model],
      perLabel: 10,
      out: join(dir, 'pics-models'),
      threads: 1,
    });
    // The collection's own model: its configured embedding is read from the collection, not embedded again.
    assert.match(models.notes.join(' '), /40 of 40 images embedded .* read from the collection/);
    const configured = models.rows.filter((r) => r.pooling === 'configured' && r.group === 'models');
    assert.equal(configured.length, 3);
    for (const row of configured) checkUnitInterval(row, ['precisionAt1', 'precisionAt5', 'map10']);
  });

  it('fails in one clear line on bad input', async () => {
    const none = await ris(home(), 'experiment');
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^ris: Give what to experiment on: a collection name, --vectors/);
    assert.equal(none.stderr.trim().split('\n').length, 1);
    const preset = await ris(home(), 'experiment', 'pics', '--preset', 'fast');
    assert.equal(preset.code, 2);
    assert.match(preset.stderr, /^ris: Invalid --preset: /);
    const missing = await ris(home(), 'experiment', 'nothing');
    assert.match(missing.stderr, /^ris: No collection "nothing" \(there are: pics\)/m);
  });

  it('Ctrl-C keeps the finished rows, writes the report, and exits 130', async () => {
    const out = join(dir, 'cli-interrupted');
    const child = spawn(
      process.execPath,
      [bin, 'experiment', '--vectors', 'synthetic:30000x64', '--preset', 'sweep', '--out', out],
      {
        env: { ...process.env, RIS_HOME: home() },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    for (let i = 0; i < 600 && !/\[2\/\d+\]/.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(stderr, /\[2\/\d+\]/);
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /stopping after the row in progress/);
    const json = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as ExperimentResults;
    assert.equal(json.status, 'interrupted');
    const planned = Number(/\[\d+\/(\d+)\]/.exec(stderr)![1]);
    assert.ok(json.rows.length >= 2 && json.rows.length < planned, `${json.rows.length} of ${planned}`);
    const md = await readFile(join(out, 'report.md'), 'utf8');
    assert.match(md, new RegExp(`\\*\\*Interrupted\\*\\*: the ${json.rows.length} rows finished`));
    assert.ok(existsSync(join(out, 'recall-qps.svg')));
  });

  it('the server lists reports newest first, serves their files, starts a cheap seed run and refuses the rest', async () => {
    const collection = await Collection.open('pics', { home: home() });
    try {
      const access = { writeToken: 'experiments-test-token' };
      const app = createApp({ collections: [collection], access });
      const list = async () =>
        (await (await app.request('/api/collections/pics/experiments')).json()) as {
          start: { allowed: boolean; command: string };
          running: string | null;
          reports: {
            id: string;
            status: string;
            preset: string;
            command: string;
            plots: { url: string }[];
            resultsUrl: string;
          }[];
        };
      const before = await list();
      assert.equal(before.start.allowed, true);
      assert.equal(before.start.command, 'ris experiment pics');
      assert.equal(before.reports.length, 1);
      assert.equal(before.reports[0]!.command, 'ris experiment pics --queries 40');
      const svg = await app.request(before.reports[0]!.plots[0]!.url);
      assert.equal(svg.status, 200);
      assert.equal(svg.headers.get('content-type'), 'image/svg+xml');
      parseSvg(await svg.text());
      const json = await app.request(before.reports[0]!.resultsUrl);
      assert.match(json.headers.get('content-type')!, /application\/json/);
      // Only report files by name: no way out of the report's folder, no other kind of file.
      const id0 = before.reports[0]!.id;
      for (const bad of [
        `${id0}/..%2F..%2Fmanifest.json`,
        `..%2F..%2Fpics/manifest.json`,
        `${id0}/..%2F..%2Findex.ris`,
      ])
        assert.equal((await app.request(`/api/collections/pics/experiments/${bad}`)).status, 404, bad);
      assert.equal((await app.request('/api/collections/nope/experiments')).status, 404);

      const post = (body: object, router = app) =>
        router.request('/api/collections/pics/experiments', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${access.writeToken}` },
          body: JSON.stringify(body),
        });
      // Starting a run is a change: without the token nothing starts, and nothing is read first.
      const anonymous = await app.request('/api/collections/pics/experiments', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer realm="ris"');
      const sweep = await post({ preset: 'sweep' });
      assert.equal(sweep.status, 409);
      assert.deepEqual(
        ((await sweep.json()) as { error: { command: string } }).error.command,
        'ris experiment pics --preset sweep',
      );
      const small = createApp({ collections: [collection], experimentMaxImages: 100, access });
      const large = await post({}, small);
      assert.equal(large.status, 409);
      assert.match(
        ((await large.json()) as { error: { message: string } }).error.message,
        /has 320 images; runs from the page are for collections under 100/,
      );

      const started = await post({});
      assert.equal(started.status, 202);
      const { id } = (await started.json()) as { id: string };
      const busy = await post({});
      assert.equal(busy.status, 409);
      assert.equal(((await busy.json()) as { error: { code: string } }).error.code, 'EXPERIMENT_RUNNING');
      let after = await list();
      for (let i = 0; i < 600 && (after.running || after.reports[0]?.status !== 'done'); i++) {
        await new Promise((r) => setTimeout(r, 200));
        after = await list();
      }
      assert.equal(after.reports.length, 2);
      assert.equal(after.reports[0]!.id, id); // newest first
      assert.equal(after.reports[0]!.status, 'done');
      assert.equal(after.reports[0]!.preset, 'seed');
    } finally {
      await collection.close();
    }
  });
});

describe('ris experiment on ../shared/data', { skip: noSharedData }, () => {
  it("finds mobilenetv2-int8's float feature map (tensor 627); its average pool is the built-in embedding", async () => {
    const cache = join(dir, 'cache', 'ris', 'models');
    await mkdir(cache, { recursive: true });
    await symlink(
      join(sharedData, 'models', 'mobilenetv2-12-int8.onnx'),
      join(cache, 'mobilenetv2-12-int8.onnx'),
    );
    const folder = join(sharedData, 'caltech101', 'airplanes');
    const paths = (await readdir(folder))
      .sort()
      .slice(0, 4)
      .map((f) => join(folder, f));
    const features = await modelFeatures('mobilenetv2-int8', paths, { cacheDir: cache, threads: 2 });
    assert.equal(features.dimension, 1280);
    assert.equal(features.note, null);
    for (let i = 0; i < 4; i++) {
      const a = features.vectors.get('configured')!.subarray(i * 1280, (i + 1) * 1280);
      const b = features.vectors.get('avg')!.subarray(i * 1280, (i + 1) * 1280);
      let dot = 0;
      let nb = 0;
      for (let j = 0; j < 1280; j++) {
        dot += a[j]! * b[j]!;
        nb += b[j]! ** 2;
      }
      // The configured embedding is the int8 pool of the same map: equal up to its quantization.
      assert.ok(dot / Math.sqrt(nb) > 0.99, `cosine ${dot / Math.sqrt(nb)}`);
    }
  });
});
