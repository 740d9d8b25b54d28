import { ArgumentError } from '../errors.ts';
import { kernels, type ResidentMatrix } from './kernels/index.ts';
import { Random } from './random.ts';

/**
 * Runs the Lloyd step of k-means (assign every point, sum the points of each cluster). The default runs
 * in this thread; a driver outside src/ann can spread it over worker threads
 * (see src/node/parallel-assigner.ts).
 */
export interface Assigner {
  /** Prepares to run Lloyd steps over these n points (row-major, d wide), as one k-means run does. */
  begin(points: Float32Array, n: number, d: number): Promise<AssignmentRun>;
}

/** What one Lloyd step over (a share of) the points yields; shares combine by adding. */
export interface LloydStep {
  /** k × d: the sum of the points assigned to each centroid. */
  sums: Float64Array;
  counts: Uint32Array;
  /** Sum of squared distances of the points to their nearest centroid. */
  objective: number;
}

export interface AssignmentRun {
  step(centroids: Float32Array, k: number): Promise<LloydStep>;
  end(): void;
}

export interface KMeansOptions {
  /** Number of clusters. */
  numCentroids: number;
  /** Upper bound on Lloyd iterations. Default 25 (as faiss); each costs one pass of n × k × d. */
  maxIterations?: number;
  /**
   * Stop once an iteration improves the objective (sum of squared distances) by less than this fraction.
   * Default 1e-3: later iterations move centroids by amounts search cannot see. 0 runs every iteration.
   */
  tolerance?: number;
  /** Train on at most this many points per centroid, sampled (faiss: 256). Default 256. */
  maxPointsPerCentroid?: number;
  /**
   * 'kmeans++' (default) spreads the starting centroids out (seeded on a sample of 32 points per centroid,
   * so it costs little); 'random' starts from distinct random points as faiss does, which can leave two
   * centroids in one cluster.
   */
  init?: 'kmeans++' | 'random';
  /** Seed for sampling and initialisation; the same seed gives the same centroids. Default 1. */
  seed?: number;
  assigner?: Assigner;
}

export interface KMeansResult {
  centroids: Float32Array;
  /** Sum of squared distances of the training points to the centroids of the last assignment. */
  objective: number;
  iterations: number;
}

/** Lloyd's k-means with the distance step as a blocked matrix product (‖x‖² + ‖c‖² − 2 x·c). */
export async function kmeans(data: Float32Array, d: number, options: KMeansOptions): Promise<KMeansResult> {
  const k = options.numCentroids;
  const maxIterations = options.maxIterations ?? 25;
  const tolerance = options.tolerance ?? 1e-3;
  const random = new Random(options.seed ?? 1);
  const total = data.length / d;
  if (total < k) {
    throw new ArgumentError(
      'TOO_FEW_TRAINING_VECTORS',
      `k-means with ${k} centroids needs at least ${k} training vectors but received ${total}; pass more vectors or ask for fewer centroids`,
    );
  }
  const cap = k * (options.maxPointsPerCentroid ?? 256);
  const points = total > cap ? gatherRows(data, d, random.sample(total, cap)) : data;
  const n = points.length / d;

  const centroids =
    options.init === 'random' ? randomInit(points, d, k, random) : kmeansPlusPlus(points, n, d, k, random);
  const run = await (options.assigner ?? localAssigner).begin(points, n, d);
  let objective = Number.POSITIVE_INFINITY;
  let iterations = 0;
  try {
    while (iterations < maxIterations) {
      const step = await run.step(centroids, k);
      iterations++;
      const improved = objective - step.objective;
      objective = step.objective;
      updateCentroids(step, d, centroids);
      // A split is judged by the next assignment: stopping now would leave its centroid empty.
      const split = splitEmptyClusters(centroids, d, step.counts, n, random);
      if (split === 0 && improved >= 0 && improved < tolerance * objective) break;
    }
  } finally {
    run.end();
  }
  return { centroids, objective, iterations };
}

/** Lloyd steps in the calling thread, with the points resident in the kernels' memory for the whole run. */
export const localAssigner: Assigner = {
  async begin(points, n, d) {
    const resident = kernels().resident(points);
    const norms = rowNorms(points, n, d);
    const labels = new Int32Array(n);
    const distances = new Float32Array(n);
    return {
      async step(centroids, k) {
        return lloydStep(resident, norms, n, d, centroids, k, labels, distances);
      },
      end: () => resident.dispose(),
    };
  },
};

/** One Lloyd step over rows [0, n) of `points`; shared with the worker driver. */
export function lloydStep(
  resident: ResidentMatrix,
  norms: Float32Array,
  n: number,
  d: number,
  centroids: Float32Array,
  k: number,
  labels: Int32Array,
  distances: Float32Array,
): LloydStep {
  assignNearest(resident, norms, n, d, centroids, k, labels, distances);
  const sums = new Float64Array(k * d);
  kernels().clusterSums({ source: resident }, n, d, labels, sums);
  const counts = new Uint32Array(k);
  let objective = 0;
  for (let i = 0; i < n; i++) {
    counts[labels[i]!]!++;
    objective += distances[i]!;
  }
  return { sums, counts, objective };
}

/** The nearest centroid of rows [0, n) of `points` (norms precomputed) and the squared distance to it. */
export function assignNearest(
  points: Float32Array | ResidentMatrix,
  pointNorms: Float32Array,
  n: number,
  d: number,
  centroids: Float32Array,
  k: number,
  labels: Int32Array,
  distances: Float32Array,
): void {
  const cNorms = rowNorms(centroids, k, d);
  kernels().nearest({ source: points }, n, { source: centroids }, k, d, cNorms, labels, distances);
  for (let i = 0; i < n; i++) distances[i] = Math.max(0, distances[i]! + pointNorms[i]!);
}

export function rowNorms(data: Float32Array, n: number, d: number): Float32Array {
  const norms = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = i * d, end = j + d; j < end; j++) s += data[j]! * data[j]!;
    norms[i] = s;
  }
  return norms;
}

export function gatherRows(data: Float32Array, d: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * d);
  for (let i = 0; i < rows.length; i++) out.set(data.subarray(rows[i]! * d, rows[i]! * d + d), i * d);
  return out;
}

function randomInit(points: Float32Array, d: number, k: number, random: Random): Float32Array {
  return gatherRows(points, d, random.sample(points.length / d, k));
}

/**
 * k-means++ seeding (Arthur & Vassilvitskii) on a sample of at most 32 points per centroid: each new
 * centroid is drawn with probability proportional to its squared distance from those already chosen.
 */
function kmeansPlusPlus(points: Float32Array, n: number, d: number, k: number, random: Random): Float32Array {
  const m = Math.min(n, 32 * k);
  const sample = m < n ? gatherRows(points, d, random.sample(n, m)) : points;
  const K = kernels();
  const resident = K.resident(sample);
  const norms = rowNorms(sample, m, d);
  const minDist = new Float64Array(m).fill(Number.POSITIVE_INFINITY);
  const products = new Float32Array(m);
  const centroids = new Float32Array(k * d);
  let chosen = random.int(m);
  try {
    for (let c = 0; c < k; c++) {
      const row = sample.subarray(chosen * d, chosen * d + d);
      centroids.set(row, c * d);
      if (c === k - 1) break;
      K.gemmNT({ source: resident }, m, { source: row }, 1, d, products, 1);
      const cNorm = norms[chosen]!;
      let total = 0;
      for (let i = 0; i < m; i++) {
        const dist = Math.max(0, norms[i]! + cNorm - 2 * products[i]!);
        if (dist < minDist[i]!) minDist[i] = dist;
        total += minDist[i]!;
      }
      if (total === 0) {
        // Fewer distinct points than centroids: the rest are split off in the first update.
        chosen = random.int(m);
        continue;
      }
      let target = random.next() * total;
      chosen = m - 1;
      for (let i = 0; i < m; i++) {
        target -= minDist[i]!;
        if (target < 0) {
          chosen = i;
          break;
        }
      }
    }
  } finally {
    resident.dispose();
  }
  return centroids;
}

function updateCentroids({ sums, counts }: LloydStep, d: number, centroids: Float32Array): void {
  for (let c = 0; c < counts.length; c++) {
    const count = counts[c]!;
    if (count === 0) continue;
    const inv = 1 / count;
    for (let j = c * d, end = j + d; j < end; j++) centroids[j] = sums[j]! * inv;
  }
}

/**
 * faiss's repair of empty clusters: copy a centroid chosen with probability growing with its cluster's
 * size, nudge the two copies apart, and let the next assignment split that cluster's points. Returns how
 * many clusters were split.
 */
function splitEmptyClusters(
  centroids: Float32Array,
  d: number,
  counts: Uint32Array,
  n: number,
  random: Random,
): number {
  const k = counts.length;
  const EPS = 1 / 1024;
  let split = 0;
  for (let ci = 0; ci < k; ci++) {
    if (counts[ci]! !== 0) continue;
    // Only clusters of two or more points can be split.
    if (n <= k || !counts.some((c) => c > 1)) return split;
    split++;
    let cj = 0;
    for (;;) {
      const p = (counts[cj]! - 1) / (n - k);
      if (random.next() < p) break;
      cj = (cj + 1) % k;
    }
    for (let j = 0; j < d; j++) {
      const v = centroids[cj * d + j]!;
      const sign = j % 2 === 0 ? 1 : -1;
      centroids[ci * d + j] = v * (1 + sign * EPS);
      centroids[cj * d + j] = v * (1 - sign * EPS);
    }
    counts[ci] = counts[cj]! >> 1;
    counts[cj] = counts[cj]! - counts[ci]!;
  }
  return split;
}
