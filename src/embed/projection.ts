import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { projectRows, symmetricEigen, topEigenvectors, transposeProduct } from '../ann/linalg.ts';
import { normalizeRows } from '../ann/metric.ts';
import { Random } from '../ann/random.ts';
import { ArgumentError, FileFormatError } from '../errors.ts';
import { nodeFileStore } from '../node/file-store.ts';

/**
 * y = normalize(W (normalize(x) − mean)): a learned linear map applied to embeddings before they are
 * indexed and searched. LDA (from labels) and PCA-whitening (from the vectors alone) are both this.
 */
export interface LinearProjection {
  method: 'lda' | 'pca-whitening';
  inputDimension: number;
  outputDimension: number;
  /** Scale inputs to unit length first (as collections store them). */
  normalizeInput: boolean;
  /** Scale outputs to unit length, so L2 search ranks by cosine in the projected space. */
  normalizeOutput: boolean;
  /** inputDimension values. */
  mean: Float32Array;
  /** outputDimension × inputDimension, row-major. */
  matrix: Float32Array;
  /** The model whose embeddings it expects (name and ris modelId); null when unknown. */
  model: string | null;
  modelId: string | null;
  trainedOn: { vectors: number; classes: number; shrinkage: number | null };
}

/** Applies a projection to n rows (n × inputDimension, row-major): n × outputDimension. */
export function applyProjection(projection: LinearProjection, vectors: Float32Array): Float32Array {
  const d = projection.inputDimension;
  if (!(vectors instanceof Float32Array) || vectors.length % d !== 0) {
    throw new ArgumentError(
      'DIMENSION_MISMATCH',
      `The projection expects rows of ${d} values (embeddings of ${projection.model ?? 'its model'}) but received ${vectors.length} values; use vectors of that model`,
    );
  }
  const n = vectors.length / d;
  const input = projection.normalizeInput ? normalizeRows(vectors, d) : Float32Array.from(vectors);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) input[i * d + j] = input[i * d + j]! - projection.mean[j]!;
  const out = projectRows(input, n, d, projection.matrix, projection.outputDimension);
  return projection.normalizeOutput ? normalizeRows(out, projection.outputDimension) : out;
}

/** Rows whose label is ≥ 0, optionally scaled to unit length. */
function labelled(vectors: Float32Array, labels: Int32Array, d: number, normalize: boolean) {
  const keep: number[] = [];
  for (let i = 0; i < labels.length; i++) if (labels[i]! >= 0) keep.push(i);
  const x = new Float32Array(keep.length * d);
  keep.forEach((row, i) => {
    x.set(vectors.subarray(row * d, (row + 1) * d), i * d);
  });
  return { x: normalize ? normalizeRows(x, d) : x, labels: Int32Array.from(keep, (row) => labels[row]!) };
}

/** The parts of LDA that do not depend on the shrinkage: within-class scatter and weighted class means. */
interface Scatter {
  d: number;
  n: number;
  classes: number;
  mean: Float64Array;
  /** d × d within-class covariance. */
  within: Float64Array;
  /** classes × d: √(n_c / n) (μ_c − μ). */
  between: Float64Array;
}

function scatterOf(x: Float32Array, labels: Int32Array, d: number): Scatter {
  const n = labels.length;
  const ids = new Map<number, number>();
  for (const l of labels) if (!ids.has(l)) ids.set(l, ids.size);
  const C = ids.size;
  const counts = new Float64Array(C);
  const sums = new Float64Array(C * d);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const c = ids.get(labels[i]!)!;
    counts[c]!++;
    for (let j = 0; j < d; j++) {
      sums[c * d + j] = sums[c * d + j]! + x[i * d + j]!;
      mean[j] = mean[j]! + x[i * d + j]!;
    }
  }
  for (let j = 0; j < d; j++) mean[j] = mean[j]! / n;
  for (let c = 0; c < C; c++) for (let j = 0; j < d; j++) sums[c * d + j] = sums[c * d + j]! / counts[c]!;
  const centred = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = ids.get(labels[i]!)!;
    for (let j = 0; j < d; j++) centred[i * d + j] = x[i * d + j]! - sums[c * d + j]!;
  }
  const product = transposeProduct(centred, d, centred, d, n); // the one O(n d²) step, in the kernels
  const within = Float64Array.from(product, (v) => v / n);
  const between = new Float64Array(C * d);
  for (let c = 0; c < C; c++) {
    const w = Math.sqrt(counts[c]! / n);
    for (let j = 0; j < d; j++) between[c * d + j] = w * (sums[c * d + j]! - mean[j]!);
  }
  return { d, n, classes: C, mean, within, between };
}

/** In-place Cholesky factor (lower triangle) of a symmetric positive definite d × d matrix. */
function cholesky(a: Float64Array, d: number): void {
  for (let j = 0; j < d; j++) {
    let s = a[j * d + j]!;
    for (let k = 0; k < j; k++) s -= a[j * d + k]! * a[j * d + k]!;
    const diag = Math.sqrt(Math.max(s, 1e-300));
    a[j * d + j] = diag;
    for (let i = j + 1; i < d; i++) {
      let t = a[i * d + j]!;
      for (let k = 0; k < j; k++) t -= a[i * d + k]! * a[j * d + k]!;
      a[i * d + j] = t / diag;
    }
  }
}

/**
 * LDA directions for one shrinkage α: the generalized eigenvectors of S_b v = λ S_w' v with
 * S_w' = (1 − α) S_w + α (tr S_w / d) I. With S_w' = L Lᵀ and S_b = Bᵀ B (rank ≤ classes − 1), they are
 * v = L⁻ᵀ u for the top left singular vectors u of Z = L⁻¹ Bᵀ, found from the small classes × classes
 * matrix ZᵀZ, so nothing d × d is ever eigen-decomposed.
 */
function ldaDirections(s: Scatter, alpha: number): { matrix: Float32Array; out: number } {
  const { d, classes: C } = s;
  const a = new Float64Array(d * d);
  let trace = 0;
  for (let j = 0; j < d; j++) trace += s.within[j * d + j]!;
  const ridge = (alpha * trace) / d + 1e-12;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) a[i * d + j] = (1 - alpha) * s.within[i * d + j]!;
    a[i * d + i] = a[i * d + i]! + ridge;
  }
  cholesky(a, d);
  // Z = L⁻¹ Bᵀ (d × C), by forward substitution on each class column.
  const z = new Float64Array(d * C);
  for (let c = 0; c < C; c++) {
    for (let i = 0; i < d; i++) {
      let t = s.between[c * d + i]!;
      for (let k = 0; k < i; k++) t -= a[i * d + k]! * z[k * C + c]!;
      z[i * C + c] = t / a[i * d + i]!;
    }
  }
  const g = new Float64Array(C * C);
  for (let p = 0; p < C; p++)
    for (let q = p; q < C; q++) {
      let t = 0;
      for (let i = 0; i < d; i++) t += z[i * C + p]! * z[i * C + q]!;
      g[p * C + q] = t;
      g[q * C + p] = t;
    }
  const { values, vectors } = symmetricEigen(g, C);
  let out = 0;
  const limit = Math.min(C - 1, d);
  while (out < limit && values[out]! > 1e-9 * Math.max(values[0]!, 1e-300)) out++;
  out = Math.max(out, 1);
  const matrix = new Float32Array(out * d);
  const u = new Float64Array(d);
  const v = new Float64Array(d);
  for (let r = 0; r < out; r++) {
    const scale = 1 / Math.sqrt(Math.max(values[r]!, 1e-300));
    for (let i = 0; i < d; i++) {
      let t = 0;
      for (let c = 0; c < C; c++) t += z[i * C + c]! * vectors[r * C + c]!;
      u[i] = t * scale;
    }
    // Lᵀ v = u, by back substitution.
    for (let i = d - 1; i >= 0; i--) {
      let t = u[i]!;
      for (let k = i + 1; k < d; k++) t -= a[k * d + i]! * v[k]!;
      v[i] = t / a[i * d + i]!;
    }
    let norm = 0;
    for (let i = 0; i < d; i++) norm += v[i]! * v[i]!;
    const inv = 1 / Math.sqrt(Math.max(norm, 1e-300));
    for (let i = 0; i < d; i++) matrix[r * d + i] = v[i]! * inv;
  }
  return { matrix, out };
}

export interface LdaOptions {
  /** Shrinkage of the within-class scatter towards a multiple of I, 0–1. Default: chosen by validation. */
  shrinkage?: number;
  /** Candidates for the validation. Default 0.01, 0.1, 0.3, 0.6, 0.9. */
  shrinkages?: number[];
  /** Scale inputs to unit length first. Default true. */
  normalizeInput?: boolean;
  seed?: number;
  /** Scores a candidate on validation vectors: higher is better (same-label P@5 by default, see models.ts). */
  score?: (projected: Float32Array, d: number, labels: Int32Array) => number;
  model?: string | null;
  modelId?: string | null;
}

/**
 * Linear discriminant analysis from labelled vectors: the directions that separate the classes most
 * relative to their spread within a class (at most classes − 1). Without a given shrinkage, a quarter of
 * each class is held back to choose it, then the projection is refit on everything.
 */
export function learnLda(
  vectors: Float32Array,
  labels: Int32Array,
  d: number,
  options: LdaOptions = {},
): LinearProjection {
  if (!(vectors instanceof Float32Array) || vectors.length !== labels.length * d) {
    throw new ArgumentError(
      'DIMENSION_MISMATCH',
      `Expected ${labels.length} rows of ${d} values (one label per row) but received ${vectors.length} values`,
    );
  }
  const normalizeInput = options.normalizeInput ?? true;
  const { x, labels: y } = labelled(vectors, labels, d, normalizeInput);
  const classes = new Set(y).size;
  if (classes < 2) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `LDA needs at least 2 labels among the training vectors but found ${classes}; label the images (by sub-folder) first`,
    );
  }
  let alpha = options.shrinkage;
  if (alpha === undefined) {
    const { fit, check } = stratifiedSplit(y, 0.25, options.seed ?? 1);
    const candidates = options.shrinkages ?? [0.01, 0.1, 0.3, 0.6, 0.9];
    if (check.length >= 4 && options.score) {
      const fx = pick(x, d, fit);
      const s = scatterOf(
        fx,
        Int32Array.from(fit, (i) => y[i]!),
        d,
      );
      const cx = pick(x, d, check);
      const cy = Int32Array.from(check, (i) => y[i]!);
      let best = -Infinity;
      for (const candidate of candidates) {
        const { matrix, out } = ldaDirections(s, candidate);
        const projected = project(cx, check.length, d, s.mean, matrix, out);
        const score = options.score(projected, out, cy);
        if (score > best) {
          best = score;
          alpha = candidate;
        }
      }
    }
    alpha ??= 0.1;
  }
  if (!(alpha >= 0 && alpha <= 1))
    throw new ArgumentError('OUT_OF_RANGE', `Expected shrinkage in [0, 1] but received ${alpha}`);
  const s = scatterOf(x, y, d);
  const { matrix, out } = ldaDirections(s, alpha);
  return {
    method: 'lda',
    inputDimension: d,
    outputDimension: out,
    normalizeInput,
    normalizeOutput: true,
    mean: Float32Array.from(s.mean),
    matrix,
    model: options.model ?? null,
    modelId: options.modelId ?? null,
    trainedOn: { vectors: y.length, classes, shrinkage: alpha },
  };
}

function pick(x: Float32Array, d: number, rows: number[]): Float32Array {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => {
    out.set(x.subarray(r * d, (r + 1) * d), i * d);
  });
  return out;
}

function project(
  x: Float32Array,
  n: number,
  d: number,
  mean: Float64Array,
  matrix: Float32Array,
  out: number,
): Float32Array {
  const centred = new Float32Array(x.length);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) centred[i * d + j] = x[i * d + j]! - mean[j]!;
  return normalizeRows(projectRows(centred, n, d, matrix, out), out);
}

/**
 * Splits row positions per label: about `fraction` of each label's rows (seeded) go to `check`, at least
 * one row of every label with two or more stays in `fit`.
 */
export function stratifiedSplit(
  labels: Int32Array,
  fraction: number,
  seed: number,
): { fit: number[]; check: number[] } {
  const byLabel = new Map<number, number[]>();
  labels.forEach((l, i) => {
    if (l < 0) return;
    const rows = byLabel.get(l);
    if (rows) rows.push(i);
    else byLabel.set(l, [i]);
  });
  const random = new Random(seed ^ 0x1da);
  const fit: number[] = [];
  const check: number[] = [];
  for (const label of [...byLabel.keys()].sort((a, b) => a - b)) {
    const rows = byLabel.get(label)!;
    const order = random.sample(rows.length, rows.length);
    const held = rows.length >= 2 ? Math.min(rows.length - 1, Math.round(rows.length * fraction)) : 0;
    order.forEach((o, i) => {
      (i < held ? check : fit).push(rows[o]!);
    });
  }
  fit.sort((a, b) => a - b);
  check.sort((a, b) => a - b);
  return { fit, check };
}

/**
 * PCA-whitening (Jégou & Chum 2012): unit-length inputs, centred, projected on the top `dimensions`
 * principal directions, each divided by its standard deviation, then unit length again. Learned from the
 * vectors alone.
 */
export function learnWhitening(
  vectors: Float32Array,
  d: number,
  options: { dimensions?: number; seed?: number; model?: string | null; modelId?: string | null } = {},
): LinearProjection {
  const n = vectors.length / d;
  const out = Math.max(1, Math.min(options.dimensions ?? 256, d, n - 1));
  const x = normalizeRows(vectors, d);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] = mean[j]! + x[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j] = mean[j]! / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) x[i * d + j] = x[i * d + j]! - mean[j]!;
  const covariance = transposeProduct(x, d, x, d, n);
  for (let i = 0; i < covariance.length; i++) covariance[i] = covariance[i]! / n;
  const directions = topEigenvectors(covariance, d, out, new Random(options.seed ?? 1));
  // Eigenvalues as Rayleigh quotients vᵀ C v (the eigen solver returns the directions only).
  const cv = projectRows(directions, out, d, covariance, d);
  const values = new Float64Array(out);
  for (let r = 0; r < out; r++) {
    let t = 0;
    for (let j = 0; j < d; j++) t += cv[r * d + j]! * directions[r * d + j]!;
    values[r] = Math.max(t, 0);
  }
  // A small floor keeps near-empty directions from being blown up into noise.
  const floor = 1e-4 * (values[0] ?? 0) + 1e-12;
  const matrix = new Float32Array(out * d);
  for (let r = 0; r < out; r++) {
    const scale = 1 / Math.sqrt(values[r]! + floor);
    for (let j = 0; j < d; j++) matrix[r * d + j] = directions[r * d + j]! * scale;
  }
  return {
    method: 'pca-whitening',
    inputDimension: d,
    outputDimension: out,
    normalizeInput: true,
    normalizeOutput: true,
    mean: Float32Array.from(mean),
    matrix,
    model: options.model ?? null,
    modelId: options.modelId ?? null,
    trainedOn: { vectors: n, classes: 0, shrinkage: null },
  };
}

const FORMAT = 'ris-projection';

const fileSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(1),
  method: z.enum(['lda', 'pca-whitening']),
  inputDimension: z.number().int().positive(),
  outputDimension: z.number().int().positive(),
  normalizeInput: z.boolean(),
  normalizeOutput: z.boolean(),
  model: z.string().nullable(),
  modelId: z.string().nullable(),
  trainedOn: z.object({
    vectors: z.number().int().nonnegative(),
    classes: z.number().int().nonnegative(),
    shrinkage: z.number().nullable(),
  }),
  /** Little-endian float32, base64. */
  mean: z.string(),
  matrix: z.string(),
});

function floatsToBase64(values: Float32Array): string {
  const le = new Float32Array(values); // a fresh, aligned copy; every platform ris runs on is little-endian
  return Buffer.from(le.buffer, le.byteOffset, le.byteLength).toString('base64');
}

function base64ToFloats(text: string, length: number, name: string, field: string): Float32Array {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== length * 4) {
    throw new FileFormatError(
      'CORRUPT_FILE',
      `${name}: "${field}" holds ${bytes.length / 4} values but should hold ${length}; learn the projection again`,
    );
  }
  const out = new Float32Array(length);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** The projection as a JSON document: readable fields, the matrix and mean as base64 float32. */
export function projectionToJson(projection: LinearProjection): string {
  const { mean, matrix, ...fields } = projection;
  return `${JSON.stringify(
    {
      format: FORMAT,
      version: 1,
      ...fields,
      mean: floatsToBase64(mean),
      matrix: floatsToBase64(matrix),
    },
    null,
    2,
  )}\n`;
}

export function projectionFromJson(text: string, name = 'projection file'): LinearProjection {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FileFormatError(
      'CORRUPT_FILE',
      `${name} is not JSON (${(error as Error).message}); learn it again with ris experiment --preset models`,
    );
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FileFormatError(
      'CORRUPT_FILE',
      `${name} is not a ris projection file (at "${issue.path.join('.') || '(root)'}": ${issue.message}); learn it again with ris experiment --preset models`,
    );
  }
  const f = parsed.data;
  return {
    method: f.method,
    inputDimension: f.inputDimension,
    outputDimension: f.outputDimension,
    normalizeInput: f.normalizeInput,
    normalizeOutput: f.normalizeOutput,
    model: f.model,
    modelId: f.modelId,
    trainedOn: f.trainedOn,
    mean: base64ToFloats(f.mean, f.inputDimension, name, 'mean'),
    matrix: base64ToFloats(f.matrix, f.inputDimension * f.outputDimension, name, 'matrix'),
  };
}

/** Writes the projection atomically (temp file, fsync, rename). */
export async function saveProjection(path: string, projection: LinearProjection): Promise<void> {
  await nodeFileStore.write(path, new TextEncoder().encode(projectionToJson(projection)));
}

export async function loadProjection(path: string): Promise<LinearProjection> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `No projection file ${path}; make one with ris experiment <collection> --preset models`,
    );
  }
  return projectionFromJson(text, path);
}
