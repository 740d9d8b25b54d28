/**
 * `npm run bench:duplicates`: how well `ris duplicates` finds edited copies, against two baselines in the
 * same run, and what it costs.
 *
 * The set: Caltech101 originals (2 per class by default) each with an edited copy per edit (mirror, crop
 * to 70–90 %, JPEG quality 15–30, resize to 25–40 %, 30 % lighter or darker, grayscale, a quarter turn),
 * among distractors of the same classes (10 per class), indexed as a collection with mobilenetv2-int8.
 * A pair is any two images in one reported group; the truth is every pair within a family.
 * Rows: ris (findDuplicates, the library call itself), its steps one by one, a 64-bit pHash with Hamming
 * ≤ 10 (imagededup's and LibrePhotos' default), and plain cosine of the embedding at its best threshold
 * (both as connected components of their pairs).
 * Cost: the whole of Caltech101 (9,144 images) grouped after indexing, and 1,000,000 synthetic vectors.
 *
 * Options: --seed N, --originals N, --distractors N (per class), --skip-caltech, --skip-million,
 * --million-size N (the synthetic row's size, default 1,000,000), --keep
 * (leave the set in its temporary folder).
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeRows } from '../src/ann/metric.ts';
import { indexCollection } from '../src/collection/build.ts';
import { imagePlanes } from '../src/collection/planes.ts';
import type { ImageCollection } from '../src/collection/store.ts';
import { dot, neighbourPairs, type SearchRows } from '../src/duplicates/candidates.ts';
import { COLOUR_LIMIT, DETAIL_MATCH, isCopy, PIXEL_MATCH } from '../src/duplicates/copies.ts';
import { EDITS } from '../src/duplicates/edits.ts';
import { findDuplicates } from '../src/duplicates/find.ts';
import { type Match, matchImages } from '../src/duplicates/match.ts';
import { MODEL_REGISTRY } from '../src/index.ts';
import { createNodeHnswBuilder } from '../src/node/hnsw-builder.ts';
import { matchThreads } from '../src/node/match-threads.ts';
import { components, type PairScore, type Row, scoreGroups } from './duplicates-metrics.ts';
import { millionRow } from './duplicates-million.ts';
import { buildSet, type SetImage } from './duplicates-set.ts';
import { numberOption } from './lib.ts';
import { hammingDistance, perceptualHash } from './phash.ts';

const shared = join(import.meta.dirname, '..', '..', 'shared', 'data');
const caltech = join(shared, 'caltech101');
if (!existsSync(caltech)) {
  console.log('bench:duplicates needs ../shared/data/caltech101 (Caltech101 images); skipped');
  process.exit(0);
}
const option = numberOption;
const flag = (name: string) => process.argv.includes(name);
const seed = option('--seed', 1);
const MODEL = 'mobilenetv2-int8';

const work = await mkdtemp(join(tmpdir(), 'ris-bench-duplicates-'));
const cacheDir = join(work, 'models');
await mkdir(cacheDir);
const entry = MODEL_REGISTRY[MODEL]!;
await copyFile(join(shared, 'models', entry.fileName), join(cacheDir, entry.fileName));
const hnswBuilder = await createNodeHnswBuilder();

try {
  // 1. The set, indexed as a collection.
  let started = performance.now();
  const root = join(work, 'set');
  const set = await buildSet({
    caltech,
    vectors: join(shared, 'vectors', 'caltech101-mobilenetv2.fvecs'),
    out: root,
    seed,
    originalsPerClass: option('--originals', 2),
    distractorsPerClass: option('--distractors', 10),
  });
  const families = new Set(set.images.filter((i) => i.family >= 0).map((i) => i.family)).size;
  console.log(
    `set: ${set.images.length} images from ${set.classes} Caltech101 classes (seed ${seed}): ${families} originals × ` +
      `${EDITS.length} edited copies, ${set.images.filter((i) => i.kind === 'distractor').length} distractors; ` +
      `${set.leftOut} source images left out as copies of others in Caltech101 itself (${seconds(started)})`,
  );
  started = performance.now();
  const { collection } = await indexCollection('duplicates', root, {
    model: MODEL,
    home: join(work, 'home'),
    embedder: { cacheDir },
    hnswBuilder,
  });
  const status = await collection.status();
  console.log(`indexed with ${MODEL}: ${status.indexed} images, ${status.kind} index (${seconds(started)})`);

  const { ids, vectors, paths } = await collection.storedVectors();
  const byPath = new Map(set.images.map((image) => [image.path, image]));
  const imageOf = (row: number) => byPath.get(paths[row]!)!;
  const n = ids.length;
  const d = vectors.length / n;
  const unit = normalizeRows(vectors, d);
  const rowOfId = new Map([...ids].map((id, row) => [id, row]));

  // 2. ris: the library call, as the CLI and the server make it.
  started = performance.now();
  const report = await findDuplicates(collection, { matcher: matchThreads });
  const risSeconds = (performance.now() - started) / 1000;
  const threshold = report.threshold;
  const risGroups = report.groups.map((g) => g.images.map((image) => imageOf(rowOfId.get(image.id)!)));
  const results: { method: string; groups: SetImage[][] }[] = [
    { method: `ris (threshold ${threshold}, ${risSeconds.toFixed(1)} s)`, groups: risGroups },
  ];

  // 3. Its steps one by one, on the same candidate pairs (every pair compared, none skipped).
  const search = searchOf(collection);
  const candidates = await neighbourPairs(search, ids, vectors, unit, { neighbours: 8, threshold });
  const planes = await Promise.all(
    [...paths.keys()].map(async (row) => {
      const image = (await collection.get(ids[row]!))!;
      return imagePlanes(join(root, paths[row]!), image.width, image.height);
    }),
  );
  const matches: { a: number; b: number; full: Match; whole: Match }[] = [];
  for (let i = 0; i < candidates.a.length; i++) {
    const a = candidates.a[i]!;
    const b = candidates.b[i]!;
    matches.push({
      a,
      b,
      full: matchImages(planes[a]!, planes[b]!),
      whole: matchImages(planes[a]!, planes[b]!, { minSide: 0.97 }),
    });
  }
  const asGroups = (edges: [number, number][]) => components(n, edges).map((g) => g.map(imageOf));
  const edgesWhere = (accept: (m: (typeof matches)[number]) => boolean) =>
    matches.filter(accept).map((m): [number, number] => [m.a, m.b]);
  results.push(
    { method: `  8 neighbours ≥ ${threshold}, no second look`, groups: asGroups(edgesWhere(() => true)) },
    {
      method: `  + lightness ≥ ${PIXEL_MATCH}, whole frames only`,
      groups: asGroups(edgesWhere((m) => m.whole.lightness >= PIXEL_MATCH)),
    },
    {
      method: '  + crops looked for',
      groups: asGroups(edgesWhere((m) => m.full.lightness >= PIXEL_MATCH)),
    },
    {
      method: `  + colours within ΔE ${COLOUR_LIMIT}`,
      groups: asGroups(edgesWhere((m) => m.full.lightness >= PIXEL_MATCH && m.full.colour <= COLOUR_LIMIT)),
    },
    {
      method: `  + fine detail ≥ ${DETAIL_MATCH} (every pair)`,
      groups: asGroups(edgesWhere((m) => isCopy(m.full))),
    },
  );

  // 4. Baselines: pHash (64 bits, Hamming ≤ 10) and plain cosine at its best threshold, all pairs.
  started = performance.now();
  const hashes = await Promise.all(paths.map((path) => perceptualHash(join(root, path))));
  const phashEdges: [number, number][] = [];
  for (let a = 0; a < n; a++)
    for (let b = a + 1; b < n; b++)
      if (hammingDistance(hashes[a]!.hash, hashes[b]!.hash) <= 10) phashEdges.push([a, b]);
  results.push({ method: `pHash, Hamming ≤ 10 (${seconds(started)})`, groups: asGroups(phashEdges) });

  const similarities: { a: number; b: number; s: number }[] = [];
  for (let a = 0; a < n; a++)
    for (let b = a + 1; b < n; b++) {
      const s = dot(unit, a, b, d);
      if (s >= 0.7) similarities.push({ a, b, s });
    }
  let bestCosine: { t: number; groups: SetImage[][]; f1: number } | undefined;
  for (let t = 0.7; t <= 0.995; t += 0.005) {
    const groups = asGroups(similarities.filter((p) => p.s >= t).map((p): [number, number] => [p.a, p.b]));
    const all = scoreGroups(groups, set.images).get('all but rotation')!;
    const f1 = (2 * all.precision * all.recall) / (all.precision + all.recall || 1);
    if (!bestCosine || f1 > bestCosine.f1) bestCosine = { t, groups, f1 };
  }
  results.push({
    method: `cosine, components at ${bestCosine!.t.toFixed(3)} (best F1)`,
    groups: bestCosine!.groups,
  });

  printTable(results.map((r) => ({ method: r.method, scores: scoreGroups(r.groups, set.images) })));

  // 5. Cost.
  if (!flag('--skip-caltech')) await caltechRow();
  if (!flag('--skip-million')) await millionRow(hnswBuilder, option('--million-size', 1_000_000));
  await collection.close();
} finally {
  await hnswBuilder.close();
  if (!flag('--keep')) await rm(work, { recursive: true, force: true });
  else console.log(`set and collection kept in ${work}`);
}

/** All of Caltech101 indexed, then grouped: the time after indexing. */
async function caltechRow(): Promise<void> {
  let started = performance.now();
  const { collection } = await indexCollection('caltech101', caltech, {
    model: MODEL,
    home: join(work, 'home'),
    embedder: { cacheDir },
    hnswBuilder,
  });
  const indexed = seconds(started);
  let compared = 0;
  started = performance.now();
  const report = await findDuplicates(collection, {
    matcher: matchThreads,
    onProgress: (e) => {
      if (e.type === 'compare') compared = e.total;
    },
  });
  const grouped = (performance.now() - started) / 1000;
  const images = report.groups.reduce((sum, g) => sum + g.images.length, 0);
  console.log(
    `\nCaltech101, ${await collection.count()} images (indexed in ${indexed}): grouped in ${grouped.toFixed(1)} s ` +
      `(target ≤ 10 s); ${compared} candidate pairs, ${report.groups.length} groups of ${images} images ` +
      '(copies within Caltech101 itself)',
  );
  await collection.close();
}

function searchOf(collection: ImageCollection): SearchRows {
  const own = collection.searchIndex()!;
  return async (rows, k) => {
    const queries = new Float32Array(rows.length * own.index.dimension);
    for (const [i, v] of rows.entries()) queries.set(own.query(v), i * own.index.dimension);
    return own.index.searchBatch(queries, k, { refineFactor: 8 }).ids;
  };
}

function printTable(rows: { method: string; scores: Map<Row, PairScore> }[]): void {
  const columns: Row[] = ['all but rotation', ...EDITS];
  const header = ['pair precision / recall', ...columns.map((c) => (c === 'rotate' ? 'rotation' : c))];
  const body = rows.map((r) => [
    r.method,
    ...columns.map((c) => {
      const s = r.scores.get(c)!;
      return `${s.precision.toFixed(3)} / ${s.recall.toFixed(3)}`;
    }),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(`\n${line(header)}\n| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
  for (const b of body) console.log(line(b));
  const all = rows[0]!.scores.get('all but rotation')!;
  console.log(
    `\nris over all edits but rotation: ${all.correct} of ${all.reported} reported pairs correct, ${all.correct} of ${all.truth} ` +
      `true pairs found (target: precision ≥ 0.99, recall ≥ 0.95)`,
  );
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}
