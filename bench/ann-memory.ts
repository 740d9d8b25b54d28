/**
 * Issue 25's comparison, part of `npm run bench:ann`: indexes near the memory limit against usearch
 * (f16 and f32, l2sq, M 16, expansion_add 128, expansion_search swept), hnswlib-node (M 16,
 * efConstruction 128) and ris's HNSW (int8, and int8 with a float16 re-rank copy on disk), one thread
 * each, in one process.
 *
 * - Build = new + train + add (single thread); ris indexes are then saved and opened with loadIndex,
 *   and searched as opened (what a collection does).
 * - Bytes per vector: ris's memoryUsage().total after loadIndex (everything held in memory: codes,
 *   factors, ids, centroids, rotation, kernel pages; the full vectors read on demand are `onDisk`, not
 *   counted); the peers' index file sizes (less than they hold in memory).
 * - QPS: single queries, timed on this shared 2-core machine as 10 chunks of 100 queries, each chunk
 *   timed in every round (rounds interleave every engine and setting) and its best time kept: a burst
 *   of load elsewhere hits every engine alike, and a full pass per setting would not (best-of-3 full
 *   passes swung usearch between 3,000 and 9,600 QPS run to run).
 */
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HnswIndex, type HnswOptions, IvfRabitqIndex, loadIndex, NO_ID } from '../src/index.ts';

export interface MemoryDataset {
  name: string;
  d: number;
  base: Float32Array;
  queries: Float32Array;
  /** The true 10 nearest of each query (nq × 10). */
  truth: Uint32Array;
  /** Builds per engine, the fastest kept (1 for large sets). */
  buildRuns: number;
  /** Timing rounds over every setting. */
  rounds: number;
  /**
   * Only these engines, by key (ivf-rabitq, hnsw-int8, hnsw-int8-f16, usearch-f16, usearch-f32, hnswlib):
   * a large set's row against its closest peer in a fraction of the time. Default all.
   */
  engines?: string[];
}

export interface SweepPoint {
  setting: string;
  qps: number;
  recall10: number;
}

export interface MemoryEngine {
  engine: string;
  buildSeconds: number;
  bytesPerVector: number;
  /** Bytes per vector read from disk on demand (ris indexes that keep full vectors in their file). */
  onDiskBytesPerVector?: number;
  curve: SweepPoint[];
}

/** Every setting past the first that reaches this recall is dropped after the first round. */
const STOP_RECALL = 0.995;
export const TARGET_RECALL = 0.95;

interface Contender {
  engine: string;
  /** What --memory-engines names it by. */
  key: string;
  build(): Promise<void>;
  /** After the builds: save and reopen (ris), or nothing. */
  open?(): Promise<void>;
  settings: string[];
  searcher(setting: string): (q: Float32Array) => ArrayLike<number | bigint>;
  bytesPerVector(): number;
  onDiskBytesPerVector?(): number;
}

function recall10(found: Uint32Array, truth: Uint32Array, nq: number): number {
  let hits = 0;
  for (let i = 0; i < nq; i++) {
    const expected = new Set(truth.subarray(i * 10, i * 10 + 10));
    for (const id of found.subarray(i * 10, i * 10 + 10)) if (id !== NO_ID && expected.has(id)) hits++;
  }
  return hits / (nq * 10);
}

/** QPS at a recall, interpolated linearly (in recall) along the sweep; undefined when never reached. */
export function qpsAt(curve: SweepPoint[], target: number): number | undefined {
  const i = curve.findIndex((p) => p.recall10 >= target);
  if (i < 0) return undefined;
  if (i === 0) return curve[0]!.qps;
  const a = curve[i - 1]!;
  const b = curve[i]!;
  return a.qps + ((target - a.recall10) / (b.recall10 - a.recall10)) * (b.qps - a.qps);
}

export async function memoryLimitComparison(ds: MemoryDataset): Promise<MemoryEngine[]> {
  const { d, base, queries, truth } = ds;
  const nb = base.length / d;
  const nq = queries.length / d;
  const require = createRequire(import.meta.url);
  const scratch = await mkdtemp(join(tmpdir(), 'ris-bench-memory-'));
  const contenders: Contender[] = [];
  try {
    // ris IVF-RaBitQ, with its defaults (numPartitions ≈ √n, bits by dimension, float32 rows on disk).
    {
      let index = new IvfRabitqIndex({ dimension: d });
      const file = join(scratch, 'rabitq.ris');
      contenders.push({
        engine: 'ris IVF-RaBitQ',
        key: 'ivf-rabitq',
        async build() {
          index = new IvfRabitqIndex({ dimension: d });
          await index.train(base);
          index.add(base);
        },
        async open() {
          await index.save(file);
          index = (await loadIndex(file)) as IvfRabitqIndex;
        },
        settings: [2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128]
          .filter((p) => p <= Math.round(Math.sqrt(nb)))
          .map((p) => `nprobes ${p}`),
        searcher(setting) {
          const nprobes = Number(setting.split(' ')[1]);
          return (q) => index.search(q, 10, { nprobes }).ids;
        },
        bytesPerVector: () => index.memoryUsage().total / nb,
        onDiskBytesPerVector: () => index.memoryUsage().onDisk / nb,
      });
    }
    // ris HNSW int8, without and with a float16 re-rank copy on disk.
    for (const copy of [false, true]) {
      const options: HnswOptions = {
        dimension: d,
        m: 16,
        efConstruction: 128,
        storage: 'int8',
        seed: 1,
        rerankStorage: copy ? 'float16' : 'none',
      };
      let index = new HnswIndex(options);
      const file = join(scratch, `hnsw-${copy}.ris`);
      contenders.push({
        engine: copy ? 'ris HNSW int8 + f16 re-rank on disk' : 'ris HNSW int8',
        key: copy ? 'hnsw-int8-f16' : 'hnsw-int8',
        async build() {
          index = new HnswIndex(options);
          index.add(base);
        },
        async open() {
          await index.save(file);
          index = (await loadIndex(file)) as HnswIndex;
        },
        settings: [10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256].map((ef) => `ef ${ef}`),
        searcher(setting) {
          const efSearch = Number(setting.split(' ')[1]);
          return (q) => index.search(q, 10, { efSearch }).ids;
        },
        bytesPerVector: () => index.memoryUsage().total / nb,
        ...(copy ? { onDiskBytesPerVector: () => index.memoryUsage().onDisk / nb } : {}),
      });
    }
    try {
      const usearch = require('usearch') as typeof import('usearch');
      const keys = BigUint64Array.from({ length: nb }, (_, i) => BigInt(i));
      for (const [label, quantization] of [
        ['f16', usearch.ScalarKind.F16],
        ['f32', usearch.ScalarKind.F32],
      ] as const) {
        const make = (ef: number) =>
          new usearch.Index({
            dimensions: d,
            metric: usearch.MetricKind.L2sq,
            quantization,
            multi: false,
            connectivity: 16,
            expansion_add: 128,
            expansion_search: ef,
          });
        const file = join(scratch, `usearch-${label}.bin`);
        const views = new Map<string, ReturnType<typeof make>>();
        contenders.push({
          engine: `usearch (${label})`,
          key: `usearch-${label}`,
          async build() {
            const index = make(64);
            index.add(keys, base, 1);
            index.save(file);
          },
          settings: [10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256].map((ef) => `ef ${ef}`),
          searcher(setting) {
            // expansion_search is fixed at construction: each setting views the saved graph (memory-mapped,
            // so the settings share one copy in the page cache).
            let at = views.get(setting);
            if (!at) {
              at = make(Number(setting.split(' ')[1]));
              at.view(file);
              views.set(setting, at);
            }
            const index = at;
            return (q) => index.search(q, 10, 1).keys;
          },
          bytesPerVector: () => statSync(file).size / nb,
        });
      }
    } catch (error) {
      console.log(`usearch skipped: ${(error as Error).message.split('\n')[0]}`);
    }
    try {
      const { HierarchicalNSW } = require('hnswlib-node') as typeof import('hnswlib-node');
      let index = new HierarchicalNSW('l2', d);
      const file = join(scratch, 'hnswlib.bin');
      const queryArrays = Array.from({ length: nq }, (_, i) =>
        Array.from(queries.subarray(i * d, (i + 1) * d)),
      );
      contenders.push({
        engine: 'hnswlib-node (f32)',
        key: 'hnswlib',
        async build() {
          index = new HierarchicalNSW('l2', d);
          index.initIndex({ maxElements: nb, m: 16, efConstruction: 128, randomSeed: 1 });
          // number[] rows, made in the loop (a copy of a million rows up front would not fit): a
          // microsecond a row against the insertion's hundreds.
          for (let i = 0; i < nb; i++) index.addPoint(Array.from(base.subarray(i * d, (i + 1) * d)), i);
        },
        async open() {
          index.writeIndexSync(file);
        },
        settings: [10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256].map((ef) => `ef ${ef}`),
        searcher(setting) {
          const ef = Number(setting.split(' ')[1]);
          // By position: the number[] copies of the queries were made before any clock started.
          return (q) => {
            index.setEf(ef);
            return index.searchKnn(queryArrays[(q.byteOffset - queries.byteOffset) / (4 * d)]!, 10).neighbors;
          };
        },
        bytesPerVector: () => statSync(file).size / nb,
      });
    } catch (error) {
      console.log(`hnswlib-node skipped: ${(error as Error).message.split('\n')[0]}`);
    }

    if (ds.engines) {
      const unknown = ds.engines.filter((key) => !contenders.some((c) => c.key === key));
      if (unknown.length > 0) throw new Error(`--memory-engines: no engine ${unknown.join(', ')}`);
      contenders.splice(0, contenders.length, ...contenders.filter((c) => ds.engines!.includes(c.key)));
    }
    // Builds, round-robin, the fastest of buildRuns kept.
    const seconds = new Map<Contender, number>();
    for (let run = 0; run < ds.buildRuns; run++) {
      for (const c of contenders) {
        const start = performance.now();
        await c.build();
        const took = (performance.now() - start) / 1000;
        seconds.set(c, Math.min(seconds.get(c) ?? Number.POSITIVE_INFINITY, took));
        console.log(`  ${c.engine}: built in ${took.toFixed(2)} s`);
      }
    }
    for (const c of contenders) await c.open?.();

    // Every (engine, setting) point; a first round finds each point's recall and drops the settings
    // past the first that reaches STOP_RECALL.
    type Point = { c: Contender; setting: string; search: (q: Float32Array) => ArrayLike<number | bigint> };
    let points: Point[] = contenders.flatMap((c) =>
      c.settings.map((setting) => ({ c, setting, search: c.searcher(setting) })),
    );
    const chunks = 10;
    const per = Math.ceil(nq / chunks);
    const best = new Map<Point, Float64Array>(
      points.map((p) => [p, new Float64Array(chunks).fill(Number.POSITIVE_INFINITY)]),
    );
    const found = new Map<Point, Uint32Array>(points.map((p) => [p, new Uint32Array(nq * 10).fill(NO_ID)]));
    const recalls = new Map<Point, number>();
    for (let round = 0; round < ds.rounds; round++) {
      for (let chunk = 0; chunk < chunks; chunk++) {
        for (const p of points) {
          const out = found.get(p)!;
          const start = performance.now();
          for (let i = chunk * per; i < Math.min(nq, (chunk + 1) * per); i++) {
            const ids = p.search(queries.subarray(i * d, (i + 1) * d));
            for (let j = 0; j < Math.min(10, ids.length); j++) out[i * 10 + j] = Number(ids[j]);
          }
          const took = performance.now() - start;
          const times = best.get(p)!;
          if (took < times[chunk]!) times[chunk] = took;
        }
      }
      if (round === 0) {
        for (const p of points) recalls.set(p, recall10(found.get(p)!, truth, nq));
        points = points.filter((p) => {
          const ofEngine = points.filter((o) => o.c === p.c);
          const first = ofEngine.findIndex((o) => recalls.get(o)! >= STOP_RECALL);
          return first < 0 || ofEngine.indexOf(p) <= first;
        });
      }
    }
    return contenders.map((c) => ({
      engine: c.engine,
      buildSeconds: seconds.get(c)!,
      bytesPerVector: c.bytesPerVector(),
      ...(c.onDiskBytesPerVector ? { onDiskBytesPerVector: c.onDiskBytesPerVector() } : {}),
      curve: points
        .filter((p) => p.c === c)
        .map((p) => ({
          setting: p.setting,
          qps: nq / (best.get(p)!.reduce((a, b) => a + b, 0) / 1000),
          recall10: recalls.get(p)!,
        })),
    }));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The table of the comparison: one row per engine and setting. */
export function memoryTable(engines: MemoryEngine[]): string {
  const header = ['engine', 'build s', 'B/vec RAM', 'B/vec disk', 'setting', 'QPS', '10R@10'];
  const lines = engines.flatMap((e) =>
    e.curve.map((p) => [
      e.engine,
      e.buildSeconds.toFixed(2),
      e.bytesPerVector.toFixed(0),
      e.onDiskBytesPerVector?.toFixed(0) ?? '',
      p.setting,
      p.qps.toFixed(0),
      p.recall10.toFixed(3),
    ]),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

/** The issue's target, as ratios against usearch in the same run. */
export function memoryRatios(engines: MemoryEngine[]): string[] {
  const find = (name: string) => engines.find((e) => e.engine === name);
  const ours = find('ris IVF-RaBitQ');
  const f16 = find('usearch (f16)');
  const f32 = find('usearch (f32)');
  const lines: string[] = [];
  const at = (e: MemoryEngine | undefined, r: number) => (e ? qpsAt(e.curve, r) : undefined);
  if (ours && f16) {
    const qps = [0.9, TARGET_RECALL, 0.99].map((r) => {
      const a = at(ours, r);
      const b = at(f16, r);
      return `${r}: ${a && b ? `${(a / b).toFixed(2)}×` : '—'}`;
    });
    lines.push(
      `IVF-RaBitQ vs usearch f16: QPS at 10-recall@10 ${qps.join(', ')}; ${ours.bytesPerVector.toFixed(0)} B/vector in RAM ` +
        `(${(ours.bytesPerVector / f16.bytesPerVector).toFixed(2)}× usearch f16's file` +
        (f32 ? `, ${(ours.bytesPerVector / f32.bytesPerVector).toFixed(2)}× f32's` : '') +
        `); build ${(ours.buildSeconds / f16.buildSeconds).toFixed(2)}× usearch f16's time`,
    );
  }
  for (const e of engines) {
    const top = Math.max(...e.curve.map((p) => p.recall10));
    lines.push(
      `${e.engine}: ${e.bytesPerVector.toFixed(0)} B/vector, build ${e.buildSeconds.toFixed(1)} s, ` +
        `QPS at 0.95 ${at(e, TARGET_RECALL)?.toFixed(0) ?? '—'}, at 0.99 ${at(e, 0.99)?.toFixed(0) ?? '—'}, top recall ${top.toFixed(4)}`,
    );
  }
  return lines;
}
