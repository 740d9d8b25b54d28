import { defaultBits, IvfRabitqIndex } from '../ann/ivf-rabitq.ts';
import { paddedDimension } from '../ann/rabitq.ts';
import { ArgumentError } from '../errors.ts';
import { EXACT_SEARCH_BELOW, HNSW_UP_TO, type IndexSettings } from './manifest.ts';

/** The index kinds a collection builds. */
export type CollectionIndexKind = 'flat' | 'hnsw' | 'ivf-pq' | 'ivf-rabitq';

/**
 * 10-recall@10 each kind reaches with a collection's search defaults, as measured by `npm run bench:ann`
 * on the Caltech101 MobileNetV2 vectors (README, Benchmarks): exact search finds them all; HNSW int8 at
 * efSearch 64 0.995 (float16/float32 rows a little more); IVF-RaBitQ at its default nprobes with its error-bound
 * re-rank 0.969; IVF-PQ at nprobes 16 with 8 candidates per result re-ranked 0.95. Other data differ:
 * these say what to expect, they promise nothing.
 */
const EXPECTED_RECALL: Record<CollectionIndexKind, number> = {
  flat: 1,
  hnsw: 0.995,
  'ivf-rabitq': 0.97,
  'ivf-pq': 0.95,
};

/** 10-recall@10 measured for `kind` with a collection's search defaults (see EXPECTED_RECALL). */
export function expectedRecall(kind: CollectionIndexKind): number {
  return EXPECTED_RECALL[kind];
}

/**
 * What `ris index --memory-budget` says of the index it built: the kind, its bytes against the budget,
 * and the recall to expect.
 */
export function budgetReport(
  status: { kind: string; indexed: number; memoryBytes?: number },
  budget: number,
): string {
  const kind = status.kind as CollectionIndexKind;
  const bytes = status.memoryBytes ?? 0;
  const within =
    bytes <= budget
      ? `of the ${formatBytes(budget)} budget`
      : `over the ${formatBytes(budget)} budget (nothing smaller fits ${status.indexed} images; raise --memory-budget)`;
  return (
    `index ${kind} for ${status.indexed} images: ${formatBytes(bytes)} in memory ${within}; ` +
    `expect 10-recall@10 about ${EXPECTED_RECALL[kind]?.toFixed(2) ?? '?'} (Caltech101, npm run bench:ann)`
  );
}

/** An HNSW graph lives in one WebAssembly memory of at most 4 GiB: leave room for its growth. */
const HNSW_MEMORY_LIMIT = 3.5 * 2 ** 30;
/** An 'ivf-rabitq' collection switches back to HNSW only once HNSW needs less than this share of the budget. */
const HYSTERESIS = 0.8;

/** Which index a memory budget gets, and what to expect of it. */
export interface IndexPlan {
  kind: CollectionIndexKind;
  /** Estimated bytes held in memory for the collection's size (memoryUsage().total once loaded). */
  bytes: number;
  /** 10-recall@10 measured for the kind with a collection's defaults (see EXPECTED_RECALL). */
  expectedRecall: number;
  /** Whether the estimate fits the budget (the smallest kind is chosen when nothing does). */
  fits: boolean;
}

/**
 * Bytes `kind` holds in memory for `size` vectors of `dimension`, as its memoryUsage() counts them once
 * loaded (within a few percent on bench:ann's data):
 * - flat: the float32 vectors and ids;
 * - hnsw: the vectors as stored (int8 with one float of its own per vector, float16, float32) and about
 *   14 bytes per link of M (1,498 bytes per vector measured for 1,280 int8 dimensions at M 16);
 * - ivf-pq: the PQ codes, the in-memory re-ranking copy, ids, and the centroids;
 * - ivf-rabitq: one bit per padded dimension (five below 256) with its factors, ids and row numbers,
 *   a half-empty 32-vector block per partition, the centroids (as f32 and i16), and the kernel's own page; the full
 *   vectors stay on disk.
 */
export function estimateIndexBytes(
  kind: CollectionIndexKind,
  size: number,
  dimension: number,
  settings: IndexSettings,
): number {
  const d = dimension;
  const partitions =
    settings.numPartitions !== 'auto'
      ? settings.numPartitions
      : kind === 'ivf-rabitq'
        ? IvfRabitqIndex.defaultPartitions(size)
        : Math.max(1, Math.round(Math.sqrt(size)));
  const refine = settings.refineStorage === 'float16' ? 2 : 4;
  switch (kind) {
    case 'flat':
      return size * (4 * d + 4);
    case 'hnsw': {
      const rows = { int8: d + 4, float16: 2 * d, float32: 4 * d }[settings.hnswStorage];
      return size * (rows + 14 * settings.m);
    }
    case 'ivf-pq': {
      const codes =
        settings.numSubVectors === 'auto' ? Math.max(1, Math.floor(d / 32)) : settings.numSubVectors;
      return size * (codes + refine * d + 4) + partitions * 4 * d;
    }
    case 'ivf-rabitq': {
      const D = paddedDimension(d);
      const code = D / 8 + 12 + (defaultBits(d) === 5 ? D / 2 + 12 : 0);
      return size * (code + 8) + partitions * (6 * D + 12 + 16 * (code + 8)) + 96 * 1024;
    }
  }
}

/**
 * The kind a collection of `size` images gets within `budget` bytes: exact search while it is small
 * (as 'auto'), else HNSW (the fastest at the highest recall) while its estimate fits, else IVF-RaBitQ;
 * when even that does not fit, IVF-RaBitQ still (the smallest), with `fits` false. `built` (the kind
 * there is now) keeps an IVF-RaBitQ index until HNSW fits with room to spare, so a collection at the
 * limit is not rebuilt back and forth as images come and go.
 */
export function planIndex(
  settings: IndexSettings,
  size: number,
  dimension: number,
  budget: number,
  built: 'none' | string = 'none',
): IndexPlan {
  const plan = (kind: CollectionIndexKind): IndexPlan => {
    const bytes = estimateIndexBytes(kind, size, dimension, settings);
    return { kind, bytes, expectedRecall: EXPECTED_RECALL[kind], fits: bytes <= budget };
  };
  const small = built === 'flat' ? EXACT_SEARCH_BELOW : EXACT_SEARCH_BELOW / 2;
  if (size < small || size < 256) {
    const flat = plan('flat');
    if (flat.fits) return flat;
  }
  const hnsw = plan('hnsw');
  const room = built === 'ivf-rabitq' ? HYSTERESIS * budget : budget;
  if (hnsw.bytes <= room && hnsw.bytes <= HNSW_MEMORY_LIMIT && size <= HNSW_UP_TO) return hnsw;
  return size < 256 ? plan('flat') : plan('ivf-rabitq');
}

/** Reads a byte size as people write it: 2GB, 512 MiB, 1.5G, 1000000 (bytes). G and GB are 10⁹, GiB 2³⁰. */
export function parseByteSize(text: string, what = '--memory-budget'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$/i.exec(text);
  const units = { '': 0, k: 1, m: 2, g: 3, t: 4 } as const;
  if (match) {
    const prefix = match[2]!.toLowerCase() as keyof typeof units;
    const base = match[3] ? 1024 : 1000;
    const bytes = Math.round(Number(match[1]) * base ** units[prefix]);
    if (bytes >= 1 && Number.isSafeInteger(bytes)) return bytes;
  }
  throw new ArgumentError(
    'INVALID_ARGUMENT',
    `Expected ${what} to be a size such as 2GB, 512MiB or 800M but received ${JSON.stringify(text)}`,
  );
}

/** A byte count for people: 1.5 GB, 283 MB, 12 kB (powers of 1,000, as disks are sold). */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0
    ? `${bytes} bytes`
    : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}
