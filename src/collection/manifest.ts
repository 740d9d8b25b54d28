import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { CollectionError, FileFormatError } from '../errors.ts';

/** Version of manifest.json and of the database layout; a newer one was written by a newer ris. */
export const COLLECTION_FORMAT_VERSION = 2;

const auto = z.literal('auto');

/** The values of the `--index` option and of the manifest's `index.kind`. */
export const INDEX_KIND_SETTINGS = ['auto', 'flat', 'hnsw', 'ivf-pq', 'ivf-rabitq'] as const;

/**
 * How a collection's index is built. Every field is written out, `'auto'` included, so the manifest says
 * what every rebuild (retrain, repair) will do.
 */
export const indexSettingsSchema = z.object({
  /**
   * 'auto' (the default): exact search below {@link EXACT_SEARCH_BELOW} images, HNSW from there up to
   * {@link HNSW_UP_TO}, IVF-RaBitQ past it (or, with a `memoryBudget`, wherever HNSW would not fit it).
   * 'flat' always searches exactly (slow past some 100,000 images); 'hnsw' from the first image;
   * 'ivf-pq' and 'ivf-rabitq' are approximate from 256 images (exact until then). 'ivf-rabitq' holds
   * about a fifth of HNSW int8's bytes in memory (codes of one bit per dimension; the full vectors stay
   * in index.ris, read on demand to re-rank), at some recall and speed: see the README's Benchmarks.
   */
  kind: z.enum(INDEX_KIND_SETTINGS).default('auto'),
  /**
   * IVF partitions: 'auto' is about √n of the images at each (re)training (IVF-RaBitQ: one per 256
   * images between √n and 4√n; see IvfRabitqIndex.defaultPartitions).
   */
  numPartitions: z.union([auto, z.number().int().min(1)]).default('auto'),
  /**
   * PQ sub-vectors per vector: 'auto' is dimension / 32 (40 for 1280, 64 for 2048), which with the float16
   * re-ranking copy finds the candidates as well as twice as many and trains in half the time.
   */
  numSubVectors: z.union([auto, z.number().int().min(1)]).default('auto'),
  /**
   * Exact re-ranking copy of every vector: float16 (2 bytes per dimension) by default. IVF-PQ holds it
   * in memory; IVF-RaBitQ keeps it in index.ris and reads the few rows it needs.
   */
  refineStorage: z.enum(['float16', 'float32']).default('float16'),
  /**
   * HNSW links per node: more reach a given recall with a narrower beam, at 8 bytes per link and a
   * longer build. Default 16.
   */
  m: z.number().int().min(2).max(128).default(16),
  /** HNSW beam width while inserting: wider builds a better graph, in proportion slower. Default 200. */
  efConstruction: z.number().int().min(1).max(10_000).default(200),
  /**
   * How HNSW keeps the vectors: 'int8' (the default: 1 byte per dimension, and on Caltech101 still
   * 10-recall@10 0.99), 'float16' or 'float32' (exact distances, 2 or 4 bytes per dimension).
   */
  hnswStorage: z.enum(['int8', 'float16', 'float32']).default('int8'),
  /**
   * Bytes the index may hold in memory ('auto' kind only; null, the default, for no limit): at every
   * build the kind is the best one whose estimate for the collection's size fits (exact search, then
   * HNSW, then IVF-RaBitQ; see src/collection/memory-plan.ts). `ris index --memory-budget 2GB` sets it.
   */
  memoryBudget: z.number().int().min(1).nullable().default(null),
});
export type IndexSettings = z.output<typeof indexSettingsSchema>;
export type IndexSettingsInput = z.input<typeof indexSettingsSchema>;

/** Below this many images an 'auto' collection searches exactly (fast enough, and nothing to build). */
export const EXACT_SEARCH_BELOW = 2048;
/**
 * Up to this many images an 'auto' collection uses HNSW: on Caltech101 (npm run bench:ann) it answers
 * 2–3× the queries of IVF-PQ with float16 re-ranking at the same recall, in about half the memory (int8),
 * needs no training, and grows without retraining. Past it IVF-RaBitQ's fifth of HNSW int8's memory wins
 * (an HNSW index lives in one WebAssembly memory of at most 4 GiB: some 2.7 million int8 vectors of 1,280
 * dimensions), at recall 0.95–0.97 with its defaults.
 */
export const HNSW_UP_TO = 1_000_000;

export const manifestSchema = z.object({
  formatVersion: z.number().int().min(1),
  name: z.string().min(1),
  /** The model as given to Embedder.create: a registry name or an absolute .onnx path. */
  model: z.string().min(1),
  /** The model file and config's hash: vectors of another id cannot be mixed in. */
  modelId: z.string().min(1),
  dimension: z.number().int().min(1).max(65536),
  /** Image paths are stored relative to this folder (absolute when outside it). */
  root: z.string().min(1),
  index: indexSettingsSchema,
  /**
   * A linear projection learned from labels (`ris experiment --preset models` writes one): the stored
   * vectors stay as the model made them, the index holds them projected. Its matrix is in the database.
   */
  projection: z
    .object({ method: z.string(), outputDimension: z.number().int().min(1), sha256: z.string() })
    .nullable()
    .default(null),
  createdAt: z.string(),
});
export type CollectionManifest = z.output<typeof manifestSchema>;

/** Parses a manifest's JSON text; a version-1 manifest (ris before collections had settings) is upgraded. */
export function parseManifest(text: string, path: string, name: string): CollectionManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw broken(name, `${path} is not valid JSON (${(error as Error).message})`);
  }
  if (typeof raw === 'object' && raw !== null && 'formatVersion' in raw) {
    const version = (raw as { formatVersion: unknown }).formatVersion;
    if (typeof version === 'number' && version > COLLECTION_FORMAT_VERSION) {
      throw new FileFormatError(
        'UNSUPPORTED_VERSION',
        `Collection "${name}" was written by a newer ris (format ${version}; this one reads up to ${COLLECTION_FORMAT_VERSION}); upgrade ris to use it`,
      );
    }
    if (version === 1) raw = upgradeFromVersion1(raw as Record<string, unknown>);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw broken(name, `${path} is invalid at "${issue.path.join('.') || '(root)'}": ${issue.message}`);
  }
  if (parsed.data.name !== name) throw broken(name, `${path} names the collection "${parsed.data.name}"`);
  return parsed.data;
}

export async function readManifest(path: string, name: string): Promise<CollectionManifest> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw broken(name, `${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? error})`);
  }
  return parseManifest(text, path, name);
}

export function manifestText(manifest: CollectionManifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/** Version 1 recorded only the parameters given on the command line, and what was built (now the index's own). */
function upgradeFromVersion1(raw: Record<string, unknown>): Record<string, unknown> {
  const old = (raw.index ?? {}) as { numPartitions?: number; numSubVectors?: number };
  return {
    ...raw,
    formatVersion: COLLECTION_FORMAT_VERSION,
    projection: null,
    index: {
      kind: 'auto',
      numPartitions: old.numPartitions ?? 'auto',
      numSubVectors: old.numSubVectors ?? 'auto',
      refineStorage: 'float16',
      m: 16,
      efConstruction: 200,
      hnswStorage: 'int8',
      memoryBudget: null,
    },
  };
}

/** The error of a collection that cannot be opened as it is: what is wrong, and how to recover. */
export function broken(
  name: string,
  what: string,
  recover = `run ris collections repair ${name}`,
): CollectionError {
  return new CollectionError('COLLECTION_BROKEN', `Collection "${name}" is broken: ${what}; ${recover}`);
}
