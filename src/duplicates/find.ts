import { normalizeRows } from '../ann/metric.ts';
import { NO_ID } from '../ann/types.ts';
import { PlaneCache } from '../collection/plane-cache.ts';
import type { ImageCollection } from '../collection/store.ts';
import type { ImageRecord } from '../collection/types.ts';
import { MODEL_REGISTRY } from '../embed/config.ts';
import { ArgumentError, describe } from '../errors.ts';
import { type CalibrationProgress, calibratedThreshold } from './calibrate.ts';
import { dot, neighbourPairs, type SearchRows } from './candidates.ts';
import type { PairMatcher } from './copies.ts';
import { keeperOrder, UnionFind } from './groups.ts';
import { SecondLook } from './second-look.ts';

/**
 * Candidate pairs compared at once: enough to keep several threads busy, few enough that progress and
 * cancellation come often, and that pairs joined by an earlier window are skipped.
 */
const COMPARE_WINDOW = 2048;

/**
 * The beam of the neighbour search (HNSW; other indexes ignore it). A copy is among an image's very nearest,
 * so a narrow beam finds it: on all of Caltech101, 20 instead of the default 64 finds 35,841 candidate
 * pairs instead of 35,853 and the same groups, in 0.9 s instead of 1.5 s (bench:duplicates: recall kept).
 */
const NEIGHBOUR_EF_SEARCH = 20;

/** One image of a group, as `ris duplicates --json` prints it. */
export interface DuplicateImage {
  id: number;
  /** Relative to the collection's image root (absolute for images outside it), as `ris search --json` prints it. */
  path: string;
  width: number;
  height: number;
  bytes: number;
  /** Cosine similarity of the image's embedding to the kept image's (1 for the kept image itself). */
  similarity: number;
  /** The same bytes as the kept image (for the kept image: some other member has its bytes). */
  identical: boolean;
  /** The image to keep: most pixels, then the largest file, then the earliest added. */
  keep: boolean;
}

export interface DuplicateGroup {
  /** The kept image first, then the others most similar first. */
  images: DuplicateImage[];
}

export interface DuplicatesReport {
  /** The embedding similarity the groups were found from (given, the model's recorded one, or calibrated). */
  threshold: number;
  /**
   * Where `threshold` came from: `given` (the caller's), `model` (measured for the model by
   * `npm run bench:duplicates`), `calibrated` (on edited copies of the collection's own images), `none`
   * (fewer than two images, or none of the sample could be read to calibrate on: 1, which finds nothing;
   * give a threshold).
   */
  thresholdSource: 'given' | 'model' | 'calibrated' | 'none';
  /** Largest groups first. */
  groups: DuplicateGroup[];
}

export type DuplicatesProgress =
  | CalibrationProgress
  | { type: 'neighbours'; done: number; total: number }
  | { type: 'compare'; done: number; total: number; unreadable: number };

export interface DuplicatesOptions {
  /**
   * The cosine similarity of two images' embeddings from which their pixels are compared; raise it to
   * compare fewer pairs (faster, misses heavier edits), lower it to find heavier edits (slower). Each
   * model's similarities have their own scale: the default is the model's `duplicateThreshold` (measured
   * by `npm run bench:duplicates`), else one calibrated on the collection (edited copies of a sample of its
   * images against their nearest distinct neighbours, kept in the collection's folder).
   */
  threshold?: number;
  /** Nearest neighbours looked at per image. More finds copies in crowded neighbourhoods, slower. Default 8. */
  neighbours?: number;
  /** Images read at once for the pixel comparison. Default 8. */
  concurrency?: number;
  /**
   * Where the pixel comparisons run. Default: this thread. The CLI and the server pass worker threads
   * (`matchThreads`, src/node/match-threads.ts), which find the same groups in a fraction of the time on
   * a machine with several cores.
   */
  matcher?: PairMatcher;
  onProgress?: (event: DuplicatesProgress) => void;
  signal?: AbortSignal;
}

/**
 * Groups of images in a collection that are copies of one another: the original, resized, cropped,
 * mirrored, re-encoded, lightened or darkened, grayscale. Each image's nearest neighbours in the collection's
 * own index are the candidates (never all pairs); a candidate pair whose embeddings are at least
 * `threshold` alike gets a second look at its pixels (one image laid over the other, see matchImages);
 * the pairs that pass, and files with the same bytes, are joined into groups. In each group the image to
 * keep comes first.
 */
export async function findDuplicates(
  collection: ImageCollection,
  options: DuplicatesOptions = {},
): Promise<DuplicatesReport> {
  const neighbours = checkWhole(options.neighbours ?? 8, 'neighbours', 1, 100);
  const concurrency = checkWhole(options.concurrency ?? 8, 'concurrency', 1, 64);
  if (options.threshold !== undefined && !(options.threshold >= -1 && options.threshold <= 1))
    throw new ArgumentError(
      'OUT_OF_RANGE',
      `Expected threshold to be a cosine similarity from -1 to 1 but received ${describe(options.threshold)}`,
    );
  const { ids, vectors } = await collection.storedVectors();
  const n = ids.length;
  const recorded = recordedThreshold(collection);
  const source = options.threshold !== undefined ? 'given' : recorded !== undefined ? 'model' : undefined;
  if (n < 2)
    return { threshold: options.threshold ?? recorded ?? 1, thresholdSource: source ?? 'none', groups: [] };
  const d = vectors.length / n;
  const unit = normalizeRows(vectors, d);
  const search = searchRowsOf(collection);
  const cache = await PlaneCache.open(collection.dir);
  const look = new SecondLook(collection, ids, concurrency, cache, options.matcher);
  try {
    const calibration =
      source === undefined
        ? await calibratedThreshold(
            collection,
            { ids, unit },
            (rows) => nearestDistinct(rows, ids, vectors, unit, search, look),
            { onProgress: options.onProgress, signal: options.signal },
          )
        : undefined;
    const threshold = options.threshold ?? recorded ?? calibration!.threshold;
    const thresholdSource = source ?? (calibration!.copies > 0 ? 'calibrated' : 'none');
    const pairs = await neighbourPairs(search, ids, vectors, unit, {
      neighbours,
      threshold,
      onProgress: (done, total) => options.onProgress?.({ type: 'neighbours', done, total }),
      signal: options.signal,
    });

    // Most similar pairs first: a group grows from its surest pairs, and a pair already joined through
    // others is not compared at all. Pairs are compared a window at a time, side by side where the matcher
    // can; the answers are applied in the order of the pairs, so the groups do not depend on which
    // comparison ended first.
    const sets = new UnionFind(n);
    const total = pairs.a.length;
    look.prefetch(
      (function* () {
        for (let i = 0; i < total; i++) yield* [pairs.a[i]!, pairs.b[i]!];
      })(),
    );
    for (let start = 0; start < total; start += COMPARE_WINDOW) {
      options.signal?.throwIfAborted();
      options.onProgress?.({ type: 'compare', done: start, total, unreadable: look.unreadable });
      const end = Math.min(total, start + COMPARE_WINDOW);
      const asked: number[] = [];
      for (let i = start; i < end; i++) if (sets.find(pairs.a[i]!) !== sets.find(pairs.b[i]!)) asked.push(i);
      const answers = await look.sameMany(
        asked.map((i) => pairs.a[i]!),
        asked.map((i) => pairs.b[i]!),
      );
      for (const [j, i] of asked.entries()) if (answers[j]) sets.union(pairs.a[i]!, pairs.b[i]!);
    }
    options.onProgress?.({ type: 'compare', done: total, total, unreadable: look.unreadable });
    await cache.save(2 * n + 1000);

    const groups: DuplicateGroup[] = [];
    const joinedSets = await Promise.all(
      sets
        .groups()
        .map(async (joined) =>
          (
            await Promise.all([...joined].map(async (row) => ({ row, image: await look.record(row) })))
          ).filter((m): m is { row: number; image: ImageRecord } => m.image !== undefined),
        ),
    );
    for (const cut of await aroundKeepers(joinedSets, look)) {
      for (const images of cut) {
        const keeper = images[0]!;
        const twins = images.filter((m) => m.image.sha256 === keeper.image.sha256).length;
        const rows = images.map(({ row, image }, i) => ({
          id: image.id,
          path: image.path,
          width: image.width,
          height: image.height,
          bytes: image.bytes,
          similarity: i === 0 ? 1 : Math.min(1, dot(unit, row, keeper.row, d)),
          identical: image.sha256 === keeper.image.sha256 && twins > 1,
          keep: i === 0,
        }));
        groups.push({
          images: [rows[0]!, ...rows.slice(1).sort((x, y) => y.similarity - x.similarity || x.id - y.id)],
        });
      }
    }
    groups.sort((x, y) => y.images.length - x.images.length || x.images[0]!.id - y.images[0]!.id);
    return { threshold, thresholdSource, groups };
  } finally {
    look.close();
  }
}

/**
 * A joined set cut into groups around keepers: the keeper by the rule, the images the second look sees
 * as its copies, and those it sees as copies of one of these (two steps: when the kept image is itself
 * an edit, a mirrored copy say, a turned copy of the original is a copy of the original, not of the
 * mirror); the rest again the same way. Pairs join sets through chains; a chain of look-alikes (studio
 * photos of one motorbike model, each pair a near miss) must not become one group of dozens.
 */
async function aroundKeepers<T extends { row: number; image: ImageRecord }>(
  sets: T[][],
  look: SecondLook,
): Promise<T[][][]> {
  const groups: T[][][] = sets.map(() => []);
  let rests = sets.map((members) => [...members].sort((x, y) => keeperOrder(x.image, y.image)));
  // All sets a step at a time, so each step's comparisons go to the matcher together.
  while (rests.some((rest) => rest.length >= 2)) {
    const first: number[] = [];
    const second: number[] = [];
    for (const rest of rests)
      for (const other of rest.slice(1)) {
        first.push(rest[0]!.row);
        second.push(other.row);
      }
    const nearKeeper = await look.sameMany(first, second);
    const steps = rests.map((rest) => ({ rest, near: [] as T[], left: [] as T[] }));
    let answer = 0;
    for (const step of steps)
      if (step.rest.length >= 2)
        for (const other of step.rest.slice(1)) (nearKeeper[answer++] ? step.near : step.left).push(other);
    // Each one left against each copy of the keeper: joined when any sees it as a copy.
    first.length = 0;
    second.length = 0;
    for (const { near, left } of steps)
      for (const other of left)
        for (const member of near) {
          first.push(member.row);
          second.push(other.row);
        }
    const nearCopies = await look.sameMany(first, second);
    answer = 0;
    rests = steps.map(({ rest, near, left }, s) => {
      if (rest.length < 2) return [];
      const group = [rest[0]!, ...near];
      const next: T[] = [];
      for (const other of left) {
        let joined = false;
        for (let j = 0; j < near.length; j++) joined = nearCopies[answer++] === true || joined;
        (joined ? group : next).push(other);
      }
      if (group.length >= 2) groups[s]!.push(group.sort((x, y) => keeperOrder(x.image, y.image)));
      return next;
    });
  }
  return groups;
}

/** The threshold recorded for a built-in model (measured by npm run bench:duplicates). */
function recordedThreshold(collection: ImageCollection): number | undefined {
  return MODEL_REGISTRY[collection.manifest.model]?.duplicateThreshold;
}

/** k nearest neighbours of rows of stored vectors: through the index in memory, else one search per row. */
function searchRowsOf(collection: ImageCollection): SearchRows {
  const own = collection.searchIndex();
  if (own) {
    return async (rows, k) => {
      const d = own.index.dimension;
      const queries = new Float32Array(rows.length * d);
      for (const [i, vector] of rows.entries()) queries.set(own.query(vector), i * d);
      return own.index.searchBatch(queries, Math.min(k, own.index.size), {
        efSearch: NEIGHBOUR_EF_SEARCH,
        refineFactor: 8,
      }).ids;
    };
  }
  // An index that lives elsewhere (pgvector): the collection's own searches, a few at a time.
  return async (rows, k) => {
    const out = new Uint32Array(rows.length * k).fill(NO_ID);
    for (let start = 0; start < rows.length; start += 8) {
      const hits = await Promise.all(
        rows.slice(start, start + 8).map((vector) => collection.searchVector(vector, { k })),
      );
      hits.forEach((list, i) => {
        list.forEach((hit, j) => {
          out[(start + i) * k + j] = hit.id;
        });
      });
    }
    return out;
  };
}

function checkWhole(value: number, name: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new ArgumentError(
      'OUT_OF_RANGE',
      `Expected ${name} to be a whole number from ${min} to ${max} but received ${describe(value)}`,
    );
  return value;
}

/**
 * For calibration: the similarity of each row's nearest neighbour that is another picture (other bytes,
 * and not an edit of it to the pixel comparison); undefined where none of its few nearest is.
 */
async function nearestDistinct(
  rows: number[],
  ids: Uint32Array,
  vectors: Float32Array,
  unit: Float32Array,
  search: SearchRows,
  look: SecondLook,
): Promise<(number | undefined)[]> {
  const n = ids.length;
  const d = vectors.length / n;
  const k = Math.min(6, n);
  const found = await search(
    rows.map((row) => vectors.subarray(row * d, (row + 1) * d)),
    k,
  );
  const rowOf = new Map<number, number>();
  for (let row = 0; row < n; row++) rowOf.set(ids[row]!, row);
  const out: (number | undefined)[] = [];
  for (const [i, row] of rows.entries()) {
    let similarity: number | undefined;
    for (let j = 0; j < k && similarity === undefined; j++) {
      const other = rowOf.get(found[i * k + j]!);
      if (other === undefined || other === row) continue;
      if ((await look.same(row, other)) === false) similarity = dot(unit, row, other, d);
    }
    out.push(similarity);
  }
  return out;
}
