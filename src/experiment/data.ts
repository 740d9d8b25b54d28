import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Random } from '../ann/random.ts';
import { Collection } from '../collection/collection.ts';
import { ArgumentError, CollectionError, FileFormatError } from '../errors.ts';
import { readFvecs } from '../node/fvecs.ts';

/** Vectors to experiment on, with their labels when there are any (−1: no label). */
export interface VectorSet {
  kind: 'collection' | 'vectors' | 'synthetic';
  name: string;
  dimension: number;
  vectors: Float32Array;
  count: number;
  labels: Int32Array | undefined;
  labelNames: string[];
  /** Queries given separately (--queries-file): then nothing is held out of `vectors`. */
  queries?: Float32Array;
  queryLabels?: Int32Array;
}

/** The database and the held-out queries every row is measured with. */
export interface Dataset {
  kind: VectorSet['kind'];
  name: string;
  dimension: number;
  base: Float32Array;
  n: number;
  baseLabels: Int32Array | undefined;
  queries: Float32Array;
  nq: number;
  queryLabels: Int32Array | undefined;
  labelNames: string[];
  /** Vectors in the input before the queries were held out. */
  total: number;
  /** Where the queries came from, in words, for the report. */
  queriesFrom: string;
}

/** Label names to indices in order of first appearance; '' (no label) is −1. */
export function indexLabels(names: readonly string[], known: string[] = []): Int32Array {
  const index = new Map(known.map((name, i) => [name, i]));
  return Int32Array.from(names, (name) => {
    if (name === '') return -1;
    let i = index.get(name);
    if (i === undefined) {
      i = known.length;
      known.push(name);
      index.set(name, i);
    }
    return i;
  });
}

async function readLabels(path: string, count: number, what: string, known: string[]): Promise<Int32Array> {
  if (!existsSync(path))
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `No labels file ${path}; give one label per line, row i for vector i`,
    );
  const lines = (await readFile(path, 'utf8')).split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  if (lines.length !== count) {
    throw new ArgumentError(
      'DIMENSION_MISMATCH',
      `${path} has ${lines.length} labels but ${what} has ${count} vectors; give exactly one label per line, row i for vector i`,
    );
  }
  return indexLabels(
    lines.map((l) => l.trim()),
    known,
  );
}

async function readVectorsFile(
  path: string,
): Promise<{ vectors: Float32Array; dimension: number; count: number }> {
  if (!existsSync(path))
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `No file ${path}; give a .fvecs file (per vector: int32 dimension, then the floats)`,
    );
  return readFvecs(path);
}

/** A .fvecs file, with optional labels and a separate queries file. */
export async function loadVectorsFile(
  path: string,
  options: { queriesFile?: string; labels?: string; queryLabels?: string } = {},
): Promise<VectorSet> {
  const { vectors, dimension, count } = await readVectorsFile(path);
  const labelNames: string[] = [];
  const labels = options.labels ? await readLabels(options.labels, count, path, labelNames) : undefined;
  const set: VectorSet = { kind: 'vectors', name: path, dimension, vectors, count, labels, labelNames };
  if (options.queriesFile) {
    const q = await readVectorsFile(options.queriesFile);
    if (q.dimension !== dimension) {
      throw new FileFormatError(
        'CORRUPT_FILE',
        `${options.queriesFile} holds ${q.dimension}-dimensional vectors but ${path} holds ${dimension}; give queries of the same model`,
      );
    }
    set.queries = q.vectors;
    if (options.queryLabels)
      set.queryLabels = await readLabels(options.queryLabels, q.count, options.queriesFile, labelNames);
  } else if (options.queryLabels) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      '--query-labels needs --queries-file (the queries they label)',
    );
  }
  return set;
}

/** 'synthetic:N' or 'synthetic:NxD': seeded clustered vectors, labelled by cluster. */
export function isSyntheticSpec(spec: string): boolean {
  return spec.startsWith('synthetic:');
}

/**
 * Clustered vectors on a 16-dimensional subspace plus a little full-rank noise (the structure real
 * embeddings have, as in bench/ann.ts), labelled by their cluster so same-label precision means something.
 */
export function syntheticVectors(spec: string, seed: number): VectorSet {
  const match = /^synthetic:(\d+)(?:x(\d+))?$/.exec(spec);
  const count = Number(match?.[1]);
  const d = Number(match?.[2] ?? 128);
  if (!match || !(count >= 2 && count <= 10_000_000) || !(d >= 2 && d <= 4096)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected synthetic:N or synthetic:NxD (2 ≤ N ≤ 10,000,000, 2 ≤ D ≤ 4096) but received ${JSON.stringify(spec)}; for example synthetic:1000000x128`,
    );
  }
  const latent = Math.min(16, d);
  const clusters = Math.max(2, Math.min(2000, Math.round(count / 50)));
  const random = new Random(seed ^ 0x51a7);
  const mixing = new Float32Array(latent * d).map(() => random.gaussian() / Math.sqrt(latent));
  const centres = new Float32Array(clusters * latent).map(() => random.gaussian());
  const vectors = new Float32Array(count * d);
  const labels = new Int32Array(count);
  const z = new Float32Array(latent);
  for (let i = 0; i < count; i++) {
    const c = random.int(clusters);
    labels[i] = c;
    for (let t = 0; t < latent; t++) z[t] = centres[c * latent + t]! + 0.3 * random.gaussian();
    for (let j = 0; j < d; j++) {
      let s = 0.02 * random.gaussian();
      for (let t = 0; t < latent; t++) s += z[t]! * mixing[t * d + j]!;
      vectors[i * d + j] = s;
    }
  }
  return {
    kind: 'synthetic',
    name: spec,
    dimension: d,
    vectors,
    count,
    labels,
    labelNames: Array.from({ length: clusters }, (_, c) => `cluster${c}`),
  };
}

/** A collection's stored vectors (exactly what its index holds) with the first label of each image. */
export async function loadCollectionVectors(
  name: string,
  home?: string,
): Promise<VectorSet & { dir: string; model: string; modelId: string; paths: string[]; root: string }> {
  const collection = await Collection.open(name, { home, persistIndex: 'builds' });
  const { dir, manifest } = collection;
  try {
    const stored = await collection.storedVectors();
    if (stored.ids.length === 0) {
      throw new CollectionError(
        'EMPTY_COLLECTION',
        `Collection "${name}" has no images yet; add some with ris add ${name} <folder>`,
      );
    }
    const d = manifest.dimension;
    const vectors = stored.vectors;
    const names = stored.labels.map((labels) => labels[0] ?? '');
    const labelNames: string[] = [];
    const labels = indexLabels(names, labelNames);
    return {
      kind: 'collection',
      name,
      dimension: d,
      vectors,
      count: stored.ids.length,
      labels: labelNames.length > 0 ? labels : undefined,
      labelNames,
      dir,
      model: manifest.model,
      modelId: manifest.modelId,
      root: manifest.root,
      paths: stored.paths,
    };
  } finally {
    await collection.close();
  }
}

export function gather(data: Float32Array, d: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * d);
  for (let i = 0; i < rows.length; i++) out.set(data.subarray(rows[i]! * d, (rows[i]! + 1) * d), i * d);
  return out;
}

function gatherLabels(labels: Int32Array | undefined, rows: ArrayLike<number>): Int32Array | undefined {
  return labels ? Int32Array.from({ length: rows.length }, (_, i) => labels[rows[i]!]!) : undefined;
}

/**
 * Holds `queries` seeded random vectors out of the database (the rest keeps its order), unless the
 * set brought its own queries. Held-out queries are never in the database, so a query cannot find itself.
 */
/** Vectors a product quantizer of 8-bit codes needs to train (one per centroid). */
const PQ_TRAINING_MINIMUM = 256;

export function splitQueries(set: VectorSet, queries: number, seed: number, explicit: boolean): Dataset {
  const d = set.dimension;
  if (set.queries) {
    return {
      kind: set.kind,
      name: set.name,
      dimension: d,
      base: set.vectors,
      n: set.count,
      baseLabels: set.labels,
      queries: set.queries,
      nq: set.queries.length / d,
      queryLabels: set.queryLabels,
      labelNames: set.labelNames,
      total: set.count,
      queriesFrom: 'the queries file',
    };
  }
  let nq = queries;
  if (nq > set.count / 2) {
    if (explicit) {
      throw new ArgumentError(
        'OUT_OF_RANGE',
        `Cannot hold out ${queries} queries from ${set.count} vectors; use --queries ${Math.floor(set.count / 5)} or fewer`,
      );
    }
    // A fifth, but leaving the 256 vectors a product quantizer trains on where that still leaves some
    // queries: otherwise every PQ row of a small collection would be skipped.
    const fifth = Math.max(1, Math.floor(set.count / 5));
    nq = set.count - PQ_TRAINING_MINIMUM >= 10 ? Math.min(fifth, set.count - PQ_TRAINING_MINIMUM) : fifth;
  }
  const picked = new Random(seed).sample(set.count, nq);
  const isQuery = new Uint8Array(set.count);
  for (const i of picked) isQuery[i] = 1;
  const baseRows: number[] = [];
  for (let i = 0; i < set.count; i++) if (!isQuery[i]) baseRows.push(i);
  return {
    kind: set.kind,
    name: set.name,
    dimension: d,
    base: gather(set.vectors, d, baseRows),
    n: baseRows.length,
    baseLabels: gatherLabels(set.labels, baseRows),
    queries: gather(set.vectors, d, picked),
    nq,
    queryLabels: gatherLabels(set.labels, picked),
    labelNames: set.labelNames,
    total: set.count,
    queriesFrom: `${nq} vectors held out of the database (seeded)`,
  };
}
