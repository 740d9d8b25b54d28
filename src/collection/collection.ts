import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import Database from 'better-sqlite3';
import { FlatIndex } from '../ann/flat.ts';
import { IvfPqIndex } from '../ann/ivf-pq.ts';
import type { Assigner } from '../ann/kmeans.ts';
import { Embedder, type EmbedderProgress, type EmbedProgress } from '../embed/embedder.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { ArgumentError, CollectionError, type RisError } from '../errors.ts';
import { nodeFileStore } from '../node/file-store.ts';
import { type CollectionIndex, loadIndex } from './index-file.ts';

/** Where collections live: $RIS_HOME, else ~/.local/share/ris. */
export function risHome(): string {
  return process.env.RIS_HOME || join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'ris');
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;
const FORMAT_VERSION = 1;
/** Below this many images a collection searches exactly (fast enough, and nothing to train). */
export const EXACT_SEARCH_BELOW = 2048;

export interface CollectionManifest {
  formatVersion: number;
  name: string;
  /** The model as given to Embedder.create: a registry name or an absolute .onnx path. */
  model: string;
  modelId: string;
  dimension: number;
  /** Image paths are stored relative to this folder (absolute when outside it). */
  root: string;
  index: { numPartitions?: number; numSubVectors?: number; kind?: 'flat' | 'ivf-pq'; trainedOn?: number };
  createdAt: string;
}

export interface ImageRecord {
  id: number;
  /** Relative to the collection's root, or absolute. */
  path: string;
  absolutePath: string;
  labels: string[];
  width: number;
  height: number;
  bytes: number;
  sha256: string;
  addedAt: string;
}

export interface SearchHit extends ImageRecord {
  /** Cosine distance, 0 (same direction) to 2. */
  distance: number;
  /** 1 − distance: 1 for the same picture, about 0 for unrelated ones. */
  similarity: number;
}

export interface AddReport {
  added: number;
  /** Already in the collection (by path): an interrupted run resumed, or the same call twice. */
  alreadyPresent: number;
  failures: { path: string; error: RisError }[];
  /** Images whose bytes equal an image already in the collection. */
  duplicates: { path: string; sameAs: string }[];
  ids: number[];
}

export interface ImageToAdd {
  path: string;
  labels?: string[];
}

export interface CollectionOptions {
  /** Where collections live. Default: risHome(). */
  home?: string;
  /** Options for the embedder the collection opens for its model (threads, cache directory, …). */
  embedder?: {
    threads?: number;
    cacheDir?: string;
    batchSize?: number;
    onProgress?: (e: EmbedderProgress) => void;
  };
  /** Spreads index training over threads. */
  assigner?: Assigner;
}

/**
 * A named, self-contained folder: manifest.json (model, index parameters), metadata.db (SQLite, WAL: one
 * row per image with its labels, size, sha256 and vector), and index.ris. Images are added and removed
 * without rebuilding; `retrain` rebuilds the index when many were added since it was trained.
 */
export class Collection {
  readonly dir: string;
  private readonly db: Database.Database;
  private index: CollectionIndex | undefined;
  private embedderPromise: Promise<Embedder> | undefined;

  private constructor(
    readonly manifest: CollectionManifest,
    dir: string,
    private readonly options: CollectionOptions,
  ) {
    this.dir = dir;
    this.db = new Database(join(dir, 'metadata.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS images (
      id INTEGER PRIMARY KEY,
      path TEXT NOT NULL UNIQUE,
      labels TEXT NOT NULL,
      width INTEGER NOT NULL,
      height INTEGER NOT NULL,
      bytes INTEGER NOT NULL,
      sha256 TEXT NOT NULL,
      added_at TEXT NOT NULL,
      vector BLOB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS images_sha256 ON images (sha256);`);
  }

  get name(): string {
    return this.manifest.name;
  }

  static directory(name: string, home = risHome()): string {
    if (!NAME.test(name)) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Expected a collection name of letters, digits, '.', '_' or '-' (at most 64) but received ${JSON.stringify(name)}`,
      );
    }
    return join(home, 'collections', name);
  }

  static exists(name: string, home = risHome()): boolean {
    return existsSync(join(Collection.directory(name, home), 'manifest.json'));
  }

  /** Creates an empty collection for images under `root`, embedded with `model`. */
  static async create(
    name: string,
    init: { model: string; root: string; numPartitions?: number; numSubVectors?: number },
    options: CollectionOptions = {},
  ): Promise<Collection> {
    const dir = Collection.directory(name, options.home);
    if (existsSync(join(dir, 'manifest.json'))) {
      throw new CollectionError(
        'COLLECTION_EXISTS',
        `Collection "${name}" already exists; add images to it with ris add, or delete it first`,
      );
    }
    const model = init.model.endsWith('.onnx') ? resolve(init.model) : init.model;
    const embedder = await Embedder.create({ model, ...options.embedder });
    await mkdir(dir, { recursive: true });
    const manifest: CollectionManifest = {
      formatVersion: FORMAT_VERSION,
      name,
      model,
      modelId: embedder.modelId,
      dimension: embedder.dimension,
      root: resolve(init.root),
      index: { numPartitions: init.numPartitions, numSubVectors: init.numSubVectors },
      createdAt: new Date().toISOString(),
    };
    await writeManifest(dir, manifest);
    const collection = new Collection(manifest, dir, options);
    collection.embedderPromise = Promise.resolve(embedder);
    return collection;
  }

  static async open(name: string, options: CollectionOptions = {}): Promise<Collection> {
    const dir = Collection.directory(name, options.home);
    let manifest: CollectionManifest;
    try {
      manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as CollectionManifest;
    } catch {
      const known = await Collection.list(options.home);
      throw new CollectionError(
        'COLLECTION_NOT_FOUND',
        `No collection "${name}"${known.length ? ` (there are: ${known.join(', ')})` : ''}; create it with ris index <folder> --collection ${name}`,
      );
    }
    const collection = new Collection(manifest, dir, options);
    if (existsSync(join(dir, 'index.ris'))) collection.index = await loadIndex(join(dir, 'index.ris'));
    return collection;
  }

  static async list(home = risHome()): Promise<string[]> {
    const dir = join(home, 'collections');
    if (!existsSync(dir)) return [];
    const names = await readdir(dir);
    return names.filter((n) => existsSync(join(dir, n, 'manifest.json'))).sort();
  }

  static async delete(name: string, home = risHome()): Promise<void> {
    if (!Collection.exists(name, home)) {
      throw new CollectionError(
        'COLLECTION_NOT_FOUND',
        `No collection "${name}"; ris collections list shows them`,
      );
    }
    await rm(Collection.directory(name, home), { recursive: true, force: true });
  }

  /** The embedder of the collection's model, checked to be the very model the vectors came from. */
  embedder(): Promise<Embedder> {
    this.embedderPromise ??= Embedder.create({ model: this.manifest.model, ...this.options.embedder }).then(
      (embedder) => {
        if (embedder.modelId !== this.manifest.modelId) {
          throw new CollectionError(
            'MODEL_MISMATCH',
            `Collection "${this.name}" was built with ${this.manifest.modelId} but the model now is ${embedder.modelId}; ` +
              'restore that model file, or build a new collection',
          );
        }
        return embedder;
      },
    );
    return this.embedderPromise;
  }

  get size(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM images').get() as { n: number }).n;
  }

  /** Paths already in the collection (as stored). */
  storedPaths(): Set<string> {
    return new Set(this.db.prepare('SELECT path FROM images').pluck().all() as string[]);
  }

  storedPath(file: string): string {
    const absolute = resolve(file);
    const rel = relative(this.manifest.root, absolute);
    return rel.startsWith('..') || isAbsolute(rel) ? absolute : rel.split(sep).join('/');
  }

  absolutePath(stored: string): string {
    return isAbsolute(stored) ? stored : join(this.manifest.root, stored);
  }

  /**
   * Embeds and stores images, one SQLite transaction per batch, so an interrupted run keeps what it
   * finished and the next run skips those images. Does not touch the index: call `updateIndex` after.
   */
  async addImages(
    images: ImageToAdd[],
    options: { onProgress?: (e: EmbedProgress) => void } = {},
  ): Promise<AddReport> {
    const embedder = await this.embedder();
    const present = this.storedPaths();
    const todo = images.filter((image) => !present.has(this.storedPath(image.path)));
    const report: AddReport = {
      added: 0,
      alreadyPresent: images.length - todo.length,
      failures: [],
      duplicates: [],
      ids: [],
    };
    const bySha = this.db.prepare('SELECT path FROM images WHERE sha256 = ? LIMIT 1').pluck();
    const insert = this.db.prepare(
      'INSERT INTO images (path, labels, width, height, bytes, sha256, added_at, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const bytesOf = new Map<number, Buffer>();
    const inputs = async function* () {
      for (const [i, image] of todo.entries()) {
        try {
          const bytes = await readFile(image.path);
          bytesOf.set(i, bytes);
          yield bytes as ImageInput;
        } catch {
          yield image.path; // the embedder reports it as unreadable
        }
      }
    };
    const d = embedder.dimension;
    for await (const batch of embedder.embedMany(inputs(), { onProgress: options.onProgress })) {
      const rows = [...batch.indices].map((index, r) => {
        const bytes = bytesOf.get(index)!;
        return {
          image: todo[index]!,
          width: batch.sizes[2 * r]!,
          height: batch.sizes[2 * r + 1]!,
          bytes: bytes.length,
          sha256: createHash('sha256').update(bytes).digest('hex'),
          vector: Buffer.from(batch.vectors.buffer, batch.vectors.byteOffset + r * d * 4, d * 4),
        };
      });
      const now = new Date().toISOString();
      this.db.transaction(() => {
        for (const row of rows) {
          const path = this.storedPath(row.image.path);
          const same = bySha.get(row.sha256) as string | undefined;
          if (same !== undefined) report.duplicates.push({ path, sameAs: same });
          const { lastInsertRowid } = insert.run(
            path,
            JSON.stringify(row.image.labels ?? []),
            row.width,
            row.height,
            row.bytes,
            row.sha256,
            now,
            row.vector,
          );
          report.ids.push(Number(lastInsertRowid));
          report.added++;
        }
      })();
      for (const failure of batch.failures)
        report.failures.push({ path: todo[failure.index]!.path, error: failure.error });
      for (const index of batch.indices) bytesOf.delete(index);
      for (const failure of batch.failures) bytesOf.delete(failure.index);
    }
    return report;
  }

  /**
   * Brings the index up to date: adds vectors missing from it with the existing quantizers, or builds it
   * when there is none yet (or when an exact index grew past EXACT_SEARCH_BELOW).
   */
  async updateIndex(): Promise<void> {
    const index = this.index;
    if (!index || (index instanceof FlatIndex && this.size >= EXACT_SEARCH_BELOW)) {
      await this.retrain();
      return;
    }
    // Reconcile with the stored rows: an interrupted run may have stopped between the two.
    const stored = new Set(this.db.prepare('SELECT id FROM images').pluck().all() as number[]);
    const indexed = index.ids();
    const stale = indexed.filter((id) => !stored.has(id));
    if (stale.length > 0) index.remove(stale);
    for (const id of indexed) stored.delete(id);
    if (stored.size > 0) {
      const { ids, vectors } = this.vectorsOf([...stored].sort((a, b) => a - b));
      index.add(vectors, ids);
    }
    if (stale.length > 0 || stored.size > 0) await this.saveIndex();
  }

  /** Rebuilds the index from every stored vector: exact below EXACT_SEARCH_BELOW images, IVF-PQ above. */
  async retrain(): Promise<void> {
    const { ids, vectors } = this.allVectors();
    const d = this.manifest.dimension;
    let index: CollectionIndex;
    if (ids.length < EXACT_SEARCH_BELOW) {
      index = new FlatIndex({ dimension: d, distanceType: 'cosine' });
      index.add(vectors, ids);
    } else {
      index = new IvfPqIndex({
        dimension: d,
        distanceType: 'cosine',
        numPartitions: this.manifest.index.numPartitions,
        // With the float16 copy re-ranking candidates exactly, dimension / 32 sub-vectors (40 for 1280)
        // find the candidates as well as twice as many, and train in half the time.
        numSubVectors: this.manifest.index.numSubVectors ?? collectionSubVectors(d),
        refineStorage: 'float16',
        assigner: this.options.assigner,
      });
      await index.train(vectors);
      index.add(vectors, ids);
    }
    this.index = index;
    this.manifest.index.kind = index instanceof FlatIndex ? 'flat' : 'ivf-pq';
    this.manifest.index.trainedOn = ids.length;
    await writeManifest(this.dir, this.manifest);
    await this.saveIndex();
  }

  private async saveIndex(): Promise<void> {
    await nodeFileStore.write(join(this.dir, 'index.ris'), this.index!.toBytes());
  }

  private allVectors(): { ids: Uint32Array; vectors: Float32Array } {
    return this.packRows(
      this.db.prepare('SELECT id, vector FROM images ORDER BY id').all() as { id: number; vector: Buffer }[],
    );
  }

  private vectorsOf(ids: number[]): { ids: Uint32Array; vectors: Float32Array } {
    const select = this.db.prepare('SELECT id, vector FROM images WHERE id = ?');
    return this.packRows(ids.map((id) => select.get(id) as { id: number; vector: Buffer }));
  }

  private packRows(rows: { id: number; vector: Buffer }[]): { ids: Uint32Array; vectors: Float32Array } {
    const d = this.manifest.dimension;
    const ids = new Uint32Array(rows.length);
    const vectors = new Float32Array(rows.length * d);
    const bytes = new Uint8Array(vectors.buffer);
    for (const [i, row] of rows.entries()) {
      ids[i] = row.id;
      bytes.set(row.vector, i * d * 4); // byte copy: the blob need not be 4-byte aligned
    }
    return { ids, vectors };
  }

  /** Removes images by id or by path; returns how many were removed. */
  async removeImages(targets: (number | string)[]): Promise<number> {
    const ids = new Set<number>();
    const byPath = this.db.prepare('SELECT id FROM images WHERE path = ?').pluck();
    for (const target of targets) {
      if (typeof target === 'number') ids.add(target);
      else {
        const id = (byPath.get(this.storedPath(target)) ?? byPath.get(target)) as number | undefined;
        if (id !== undefined) ids.add(id);
      }
    }
    const remove = this.db.prepare('DELETE FROM images WHERE id = ?');
    let removed = 0;
    this.db.transaction(() => {
      for (const id of ids) removed += remove.run(id).changes;
    })();
    if (this.index) {
      this.index.remove(Uint32Array.from(ids));
      await this.saveIndex();
    }
    return removed;
  }

  get(id: number): ImageRecord | undefined {
    const row = this.db
      .prepare('SELECT id, path, labels, width, height, bytes, sha256, added_at FROM images WHERE id = ?')
      .get(id) as
      | {
          id: number;
          path: string;
          labels: string;
          width: number;
          height: number;
          bytes: number;
          sha256: string;
          added_at: string;
        }
      | undefined;
    if (!row) return undefined;
    return {
      id: row.id,
      path: row.path,
      absolutePath: this.absolutePath(row.path),
      labels: JSON.parse(row.labels) as string[],
      width: row.width,
      height: row.height,
      bytes: row.bytes,
      sha256: row.sha256,
      addedAt: row.added_at,
    };
  }

  /** The k images most similar to `input` (a path, bytes or a stream), nearest first. */
  async search(
    input: ImageInput,
    options: { k?: number; crop?: CropBox; nprobes?: number } = {},
  ): Promise<SearchHit[]> {
    const embedder = await this.embedder();
    const query = await embedder.embed(input, { crop: options.crop });
    return this.searchVector(query, options);
  }

  searchVector(query: Float32Array, options: { k?: number; nprobes?: number } = {}): SearchHit[] {
    if (!this.index || this.index.size === 0) {
      throw new CollectionError(
        'EMPTY_COLLECTION',
        `Collection "${this.name}" has no indexed images yet; add some with ris add ${this.name} <folder>`,
      );
    }
    const k = options.k ?? 5;
    const result =
      this.index instanceof IvfPqIndex
        ? this.index.search(query, k, {
            nprobes: options.nprobes ?? Math.min(this.index.numPartitions, 16),
            refineFactor: 8,
          })
        : this.index.search(query, k);
    return Array.from(result.ids, (id, i) => {
      const record = this.get(id)!;
      const distance = result.distances[i]!;
      return { ...record, distance, similarity: 1 - distance };
    });
  }

  /** Every image id, ascending. */
  allIds(): Uint32Array {
    return Uint32Array.from(this.db.prepare('SELECT id FROM images ORDER BY id').pluck().all() as number[]);
  }

  /** Counts per label, most frequent first. */
  labels(): { label: string; count: number }[] {
    const counts = new Map<string, number>();
    for (const labels of this.db.prepare('SELECT labels FROM images').pluck().all() as string[]) {
      for (const label of JSON.parse(labels) as string[]) counts.set(label, (counts.get(label) ?? 0) + 1);
    }
    return [...counts]
      .map(([label, count]) => ({ label, count }))
      .sort((a, b) => b.count - a.count || a.label.localeCompare(b.label));
  }

  get indexState(): { kind: 'none' | 'flat' | 'ivf-pq'; indexed: number; trainedOn: number } {
    return {
      kind: !this.index ? 'none' : this.index instanceof FlatIndex ? 'flat' : 'ivf-pq',
      indexed: this.index?.size ?? 0,
      trainedOn: this.manifest.index.trainedOn ?? 0,
    };
  }

  async close(): Promise<void> {
    this.db.close();
    if (this.embedderPromise) await (await this.embedderPromise.catch(() => undefined))?.close();
  }
}

function collectionSubVectors(d: number): number {
  for (let m = Math.max(1, Math.floor(d / 32)); m > 1; m--) if (d % m === 0) return m;
  return 1;
}

async function writeManifest(dir: string, manifest: CollectionManifest): Promise<void> {
  await nodeFileStore.write(
    join(dir, 'manifest.json'),
    new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`),
  );
}

/** Image files under a folder, recursively, sorted; labels from the first sub-folder. */
export async function walkImages(folder: string): Promise<ImageToAdd[]> {
  const root = resolve(folder);
  const out: ImageToAdd[] = [];
  const extensions = /\.(jpe?g|png|webp|gif|tiff?|avif)$/i;
  const visit = async (dir: string) => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await visit(path);
      else if (entry.isFile() && extensions.test(entry.name)) {
        const rel = relative(root, path).split(sep);
        out.push({ path, labels: rel.length > 1 ? [rel[0]!] : [] });
      }
    }
  };
  await visit(root);
  return out;
}
