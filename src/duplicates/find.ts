import { normalizeRows } from '../ann/metric.ts';
import { NO_ID } from '../ann/types.ts';
import type { ImageCollection } from '../collection/store.ts';
import type { ImageRecord } from '../collection/types.ts';
import { MODEL_REGISTRY } from '../embed/config.ts';
import { ArgumentError, describe } from '../errors.ts';
import { type CalibrationProgress, calibratedThreshold } from './calibrate.ts';
import { dot, neighbourPairs, type SearchRows } from './candidates.ts';
import { keeperOrder, UnionFind } from './groups.ts';
import { PlaneCache } from './plane-cache.ts';
import { SecondLook } from './second-look.ts';

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
  if (n < 2) return { threshold: options.threshold ?? recorded ?? 1, groups: [] };
  const d = vectors.length / n;
  const unit = normalizeRows(vectors, d);
  const search = searchRowsOf(collection);
  const cache = await PlaneCache.open(collection.dir);
  const look = new SecondLook(collection, ids, concurrency, cache);
  const threshold =
    options.threshold ??
    recorded ??
    (
      await calibratedThreshold(
        collection,
        { ids, unit },
        (rows) => nearestDistinct(rows, ids, vectors, unit, search, look),
        {
          onProgress: options.onProgress,
          signal: options.signal,
        },
      )
    ).threshold;
  const pairs = await neighbourPairs(search, ids, vectors, unit, {
    neighbours,
    threshold,
    onProgress: (done, total) => options.onProgress?.({ type: 'neighbours', done, total }),
    signal: options.signal,
  });

  // Most similar pairs first: a group grows from its surest pairs, and a pair already joined through
  // others is not compared at all.
  const sets = new UnionFind(n);
  const total = pairs.a.length;
  look.prefetch(
    (function* () {
      for (let i = 0; i < total; i++) yield* [pairs.a[i]!, pairs.b[i]!];
    })(),
  );
  let lastPause = performance.now();
  for (let i = 0; i < total; i++) {
    if (i % 256 === 0) {
      options.signal?.throwIfAborted();
      options.onProgress?.({ type: 'compare', done: i, total, unreadable: look.unreadable });
    }
    // The comparisons run on this thread: a server answers other requests every 20 ms meanwhile.
    if (performance.now() - lastPause > 20) {
      await new Promise((resolve) => setImmediate(resolve));
      lastPause = performance.now();
    }
    const a = pairs.a[i]!;
    const b = pairs.b[i]!;
    if (sets.find(a) === sets.find(b)) continue;
    if (await look.same(a, b)) sets.union(a, b);
  }
  options.onProgress?.({ type: 'compare', done: total, total, unreadable: look.unreadable });
  await cache.save(2 * n + 1000);

  const groups: DuplicateGroup[] = [];
  for (const joined of sets.groups()) {
    const members = (
      await Promise.all([...joined].map(async (row) => ({ row, image: await look.record(row) })))
    ).filter((m): m is { row: number; image: ImageRecord } => m.image !== undefined);
    for (const images of await aroundKeepers(members, look)) {
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
  return { threshold, groups };
}

/**
 * A joined set cut into groups around keepers: the keeper by the rule, the images the second look sees
 * as its copies, and those it sees as copies of one of these (two steps: when the kept image is itself
 * an edit, a mirrored copy say, a turned copy of the original is a copy of the original, not of the
 * mirror); the rest again the same way. Pairs join sets through chains; a chain of look-alikes (studio
 * photos of one motorbike model, each pair a near miss) must not become one group of dozens.
 */
async function aroundKeepers<T extends { row: number; image: ImageRecord }>(
  members: T[],
  look: SecondLook,
): Promise<T[][]> {
  const groups: T[][] = [];
  let rest = [...members].sort((x, y) => keeperOrder(x.image, y.image));
  while (rest.length >= 2) {
    const [keeper, ...others] = rest as [T, ...T[]];
    const near: T[] = [];
    const left: T[] = [];
    for (const other of others) ((await look.same(keeper.row, other.row)) ? near : left).push(other);
    const group = [keeper, ...near];
    rest = [];
    for (const other of left) {
      let joined = false;
      for (const member of near) {
        joined = (await look.same(member.row, other.row)) === true;
        if (joined) break;
      }
      (joined ? group : rest).push(other);
    }
    if (group.length >= 2) groups.push(group.sort((x, y) => keeperOrder(x.image, y.image)));
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
      return own.index.searchBatch(queries, Math.min(k, own.index.size), { refineFactor: 8 }).ids;
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
