import { UMAP } from 'umap-js';
import { orthonormalizeRows, projectRows, symmetricEigen, transposeProduct } from '../ann/linalg.ts';
import { normalizeRows } from '../ann/metric.ts';
import { Random } from '../ann/random.ts';
import { sampleIndices } from './sample.ts';

/** How a set of vectors was laid out in 2-D. */
export type LayoutMethod = 'umap' | 'pca';

export interface Layout {
  method: LayoutMethod;
  seed: number;
  /** n points, x then y for each, every coordinate in [0, 1]. */
  points: Float32Array;
}

/** Lays out n vectors of d dimensions (layoutVectors, here or on another thread). */
export type LayoutFunction = (data: Float32Array, n: number, d: number, seed: number) => Promise<Layout>;

/** UMAP needs a neighbourhood per point; below this many points a PCA plane says as much, faster. */
export const UMAP_MIN_POINTS = 24;
/** UMAP runs on this many principal components rather than on the raw 1,000-odd dimensions: much faster, same picture. */
const UMAP_INPUT_DIMENSIONS = 32;
/** Fewer epochs than umap-js's default of 500 for small sets: the picture settles well before (and each costs some 10 ms at 1,500 points). */
const UMAP_EPOCHS = 150;

/** Principal axes of a set of rows: subtract `mean`, then the product with each row of `axes` is a score. */
export interface PcaAxes {
  mean: Float32Array;
  /** components × d, row-major. */
  axes: Float32Array;
  components: number;
}

/**
 * The first `components` principal axes of n rows (n × d, row-major), by seeded subspace iteration: cost
 * O(n·d·components) per iteration, fine for tens of thousands of 1,280-d rows. Each axis's sign is fixed
 * (the rows' largest score on it is positive), so the same input and seed give the same numbers.
 */
export function pcaAxes(data: Float32Array, n: number, d: number, components: number, seed: number): PcaAxes {
  const mean = new Float32Array(d);
  const sums = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) sums[j]! += data[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j] = sums[j]! / Math.max(1, n);
  const centred = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) centred[i * d + j] = data[i * d + j]! - mean[j]!;
  const c = Math.min(components, n, d);
  const p = Math.min(d, n, c + 8);
  const axes = new Float32Array(components * d);
  if (c === 0) return { mean, axes, components };
  const random = new Random(seed);
  let basis: Float32Array = new Float32Array(p * d).map(() => random.gaussian());
  orthonormalizeRows(basis, p, d);
  for (let iteration = 0; iteration < 6; iteration++) {
    const scores = projectRows(centred, n, d, basis, p); // n × p
    basis = transposeProduct(scores, p, centred, d, n); // p × d: the rows of (XᵀX·basisᵀ)ᵀ
    orthonormalizeRows(basis, p, d);
  }
  // Rayleigh–Ritz: the eigenvectors of (X·Bᵀ)ᵀ(X·Bᵀ) turn the basis into principal axes.
  const scores = projectRows(centred, n, d, basis, p);
  const gram = transposeProduct(scores, p, scores, p, n);
  const { vectors } = symmetricEigen(Float64Array.from(gram), p);
  for (let k = 0; k < c; k++) {
    const axis = axes.subarray(k * d, (k + 1) * d);
    for (let j = 0; j < p; j++) {
      const w = vectors[k * p + j]!;
      for (let t = 0; t < d; t++) axis[t] = axis[t]! + w * basis[j * d + t]!;
    }
    let extreme = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < p; j++) s += scores[i * p + j]! * vectors[k * p + j]!;
      if (Math.abs(s) > Math.abs(extreme)) extreme = s;
    }
    if (extreme < 0) for (let t = 0; t < d; t++) axis[t] = -axis[t]!;
  }
  return { mean, axes, components };
}

/** The scores of rows (n × d) on principal axes: n × components. */
export function projectOnAxes(pca: PcaAxes, rows: Float32Array, n: number, d: number): Float32Array {
  const centred = new Float32Array(n * d);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) centred[i * d + j] = rows[i * d + j]! - pca.mean[j]!;
  return projectRows(centred, n, d, pca.axes, pca.components);
}

/** The first `components` principal-component scores of n rows: n × components, row-major. */
export function pcaScores(
  data: Float32Array,
  n: number,
  d: number,
  components: number,
  seed: number,
): Float32Array {
  return projectOnAxes(pcaAxes(data, n, d, components, seed), data, n, d);
}

/**
 * The map from 2-D points into [0, 1]² that keeps their aspect: the points' extent spans the square, the
 * shorter axis centred. The same map places later points (a query) among them, clamped to the square.
 */
export function squareFit(points: Float32Array): (points: Float32Array) => Float32Array {
  const n = points.length / 2;
  const low = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY];
  const high = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (let i = 0; i < n * 2; i++) {
    low[i % 2] = Math.min(low[i % 2]!, points[i]!);
    high[i % 2] = Math.max(high[i % 2]!, points[i]!);
  }
  const spans = [0, 1].map((axis) => (n === 0 ? 0 : high[axis]! - low[axis]!));
  const span = Math.max(spans[0]!, spans[1]!) || 1;
  const start = [0, 1].map((axis) => (n === 0 ? 0 : low[axis]! - (span - spans[axis]!) / 2));
  return (input) => input.map((v, i) => Math.min(1, Math.max(0, (v - start[i % 2]!) / span)));
}

/** `points` scaled into [0, 1]² (see squareFit). */
export function fitToSquare(points: Float32Array): Float32Array {
  return squareFit(points)(points);
}

/**
 * Evens out a layout in [0, 1]²: each coordinate moves `weight` of the way to its rank along its axis
 * (spread evenly over [0, 1]). Order along each axis is kept, but tight clumps open up: a Voronoi map of
 * centroids or a plane of 10,000 graph nodes stays readable instead of a few crowded spots and empty
 * space. The same map places a later point (a query) by its rank among the points.
 */
export function rankSpread(
  points: Float32Array,
  weight: number,
): { points: Float32Array; place(x: number, y: number): { x: number; y: number } } {
  const n = points.length / 2;
  const sorted = [0, 1].map((axis) =>
    Float32Array.from({ length: n }, (_, i) => points[i * 2 + axis]!).sort(),
  );
  const rankOf = (axis: number, v: number) => {
    const values = sorted[axis]!;
    let low = 0;
    let high = n;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (values[mid]! < v) low = mid + 1;
      else high = mid;
    }
    // Ties share the middle of their run, so equal coordinates stay equal.
    let end = low;
    while (end < n && values[end] === v) end++;
    return n === 0 ? 0.5 : (low + end) / 2 / n;
  };
  const move = (axis: number, v: number) =>
    Math.min(1, Math.max(0, (1 - weight) * v + weight * rankOf(axis, v)));
  const out = points.map((v, i) => move(i % 2, v));
  return { points: out, place: (x, y) => ({ x: move(0, x), y: move(1, y) }) };
}

/**
 * Pushes apart points of [0, 1]² closer than `minDistance` (each pair half the overlap each way, for a
 * number of rounds), keeping them in the square: clumps become a locally even packing while the map's
 * arrangement (who is next to whom) stays. O(n²) a round: for the few hundred points of a partition map.
 */
export function separate(points: Float32Array, minDistance: number, rounds = 60): Float32Array {
  const out = Float32Array.from(points);
  const n = out.length / 2;
  const random = new Random(n);
  for (let round = 0; round < rounds; round++) {
    let moved = false;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        let dx = out[j * 2]! - out[i * 2]!;
        let dy = out[j * 2 + 1]! - out[i * 2 + 1]!;
        let distance = Math.hypot(dx, dy);
        if (distance >= minDistance) continue;
        if (distance < 1e-9) {
          // Two points on one spot: part them in a seeded direction.
          const angle = random.next() * 2 * Math.PI;
          [dx, dy, distance] = [Math.cos(angle), Math.sin(angle), 1];
        }
        const push = (minDistance - Math.min(distance, minDistance)) / 2 / distance;
        out[i * 2] = out[i * 2]! - dx * push;
        out[i * 2 + 1] = out[i * 2 + 1]! - dy * push;
        out[j * 2] = out[j * 2]! + dx * push;
        out[j * 2 + 1] = out[j * 2 + 1]! + dy * push;
        moved = true;
      }
    }
    for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, out[i]!));
    if (!moved) break;
  }
  return out;
}

/** Rows PCA's axes are fitted on, at most: a sample says as much as the whole, for a fraction of the time. */
const PLANE_FIT_ROWS = 4_000;
/** How much the HNSW planes are evened out (see rankSpread): graph links are unreadable in clumps. */
const PLANE_SPREAD = 0.7;

/** A plane through many vectors: each one's place in [0, 1]², and how to place another (a query). */
export interface Plane {
  points: Float32Array;
  place(vector: Float32Array): { x: number; y: number };
}

/**
 * The first two principal components of n vectors compared by cosine (rows normalized), fitted on a
 * seeded sample of them and evened out (rankSpread): the HNSW planes, where every node keeps one place
 * on every level.
 */
export function planeLayout(data: Float32Array, n: number, d: number, seed: number): Plane {
  const unit = normalizeRows(data, d);
  const chosen = sampleIndices(n, PLANE_FIT_ROWS, seed);
  const fitted = new Float32Array(chosen.length * d);
  chosen.forEach((row, i) => {
    fitted.set(unit.subarray(row * d, (row + 1) * d), i * d);
  });
  const pca = pcaAxes(fitted, chosen.length, d, 2, seed);
  const scores = projectOnAxes(pca, unit, n, d);
  const fit = squareFit(scores);
  const spread = rankSpread(fit(scores), PLANE_SPREAD);
  return {
    points: spread.points,
    place: (vector) => {
      const [x, y] = fit(projectOnAxes(pca, normalizeRows(vector, d), 1, d));
      return spread.place(x!, y!);
    },
  };
}

/**
 * A 2-D layout of n vectors compared by cosine (rows are normalized first): UMAP (umap-js, seeded) on
 * their leading principal components from UMAP_MIN_POINTS points on, a PCA plane below. The same
 * vectors and seed always give the same layout. The neighbours UMAP starts from are found exactly here
 * (umap-js's own search is the slow part), and its epochs run with a pause between them, so a server
 * stays responsive while it lays out a few thousand points.
 */
export async function layoutVectors(data: Float32Array, n: number, d: number, seed: number): Promise<Layout> {
  if (n === 0) return { method: 'pca', seed, points: new Float32Array(0) };
  const unit = normalizeRows(data, d);
  if (n < UMAP_MIN_POINTS)
    return { method: 'pca', seed, points: fitToSquare(pcaScores(unit, n, d, 2, seed)) };
  const dims = Math.min(UMAP_INPUT_DIMENSIONS, d, n);
  const reduced = pcaScores(unit, n, d, dims, seed);
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) rows.push(Array.from(reduced.subarray(i * dims, (i + 1) * dims)));
  const random = new Random(seed);
  const neighbours = Math.min(15, n - 1);
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: neighbours,
    minDist: 0.1,
    nEpochs: UMAP_EPOCHS,
    random: () => random.next(),
  });
  const knn = nearestNeighbours(reduced, n, dims, neighbours);
  umap.setPrecomputedKNN(knn.indices, knn.distances);
  const embedding = await umap.fitAsync(rows);
  const points = new Float32Array(n * 2);
  embedding.forEach(([x, y], i) => {
    points[i * 2] = x ?? 0;
    points[i * 2 + 1] = y ?? 0;
  });
  return { method: 'umap', seed, points: fitToSquare(points) };
}

/**
 * The k nearest rows of each row by Euclidean distance, itself first (as umap-js expects), by one
 * matrix product: n × n, fine for the few thousand points a layout takes.
 */
export function nearestNeighbours(
  rows: Float32Array,
  n: number,
  d: number,
  k: number,
): { indices: number[][]; distances: number[][] } {
  const products = projectRows(rows, n, d, rows, n);
  const norms = Float32Array.from({ length: n }, (_, i) => products[i * n + i]!);
  const indices: number[][] = [];
  const distances: number[][] = [];
  const best = new Int32Array(k + 1);
  const bestDistance = new Float64Array(k + 1);
  for (let i = 0; i < n; i++) {
    let count = 0;
    for (let j = 0; j < n; j++) {
      const squared = j === i ? -1 : Math.max(0, norms[i]! + norms[j]! - 2 * products[i * n + j]!);
      if (count === k + 1 && squared >= bestDistance[k]!) continue;
      // Insertion into the sorted short list.
      let at = count === k + 1 ? k : count++;
      while (at > 0 && bestDistance[at - 1]! > squared) {
        bestDistance[at] = bestDistance[at - 1]!;
        best[at] = best[at - 1]!;
        at--;
      }
      bestDistance[at] = squared;
      best[at] = j;
    }
    indices.push(Array.from(best.subarray(0, count)));
    distances.push(Array.from(bestDistance.subarray(0, count), (v) => Math.sqrt(Math.max(0, v))));
  }
  return { indices, distances };
}

/** A coordinate rounded for JSON: 4 decimals of the unit square are finer than any screen. */
export const roundCoordinate = (v: number): number => Math.round(v * 10_000) / 10_000;

/** A distance rounded for JSON to 5 significant digits. */
export const roundDistance = (v: number): number => (Number.isFinite(v) ? Number(v.toPrecision(5)) : v);
