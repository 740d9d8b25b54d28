import { existsSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { CollectionError, StorageError } from '../errors.ts';
import { broken, COLLECTION_FORMAT_VERSION } from './manifest.ts';

/** One image as stored: everything but its vector. */
export interface StoredImage {
  id: number;
  /** Relative to the collection's root, or absolute. */
  path: string;
  labels: string[];
  width: number;
  height: number;
  bytes: number;
  sha256: string;
  addedAt: string;
}

/** What a rescan compares a file on disk with: its size and modification time when it was embedded. */
export interface StoredFile {
  id: number;
  path: string;
  bytes: number;
  sha256: string;
  /** The file's mtime in ms when it was embedded; null for images stored before ris recorded it. */
  mtimeMs: number | null;
}

/** A file of the collection's folder that a user removed: rescans leave it out until it changes. */
export interface Exclusion {
  path: string;
  bytes: number;
  mtimeMs: number | null;
}

/** A row of the images table as SQLite returns it (labels as JSON text), without its vector. */
export interface ImageRow {
  id: number;
  path: string;
  labels: string;
  width: number;
  height: number;
  bytes: number;
  sha256: string;
  added_at: string;
}

/** A change to the set of images, as the changes log records it. */
export const ChangeOp = { Remove: 0, Add: 1 } as const;
export type ChangeOp = (typeof ChangeOp)[keyof typeof ChangeOp];

/** How long a writer waits for another one to finish before it gives up. */
const BUSY_TIMEOUT_MS = 60_000;
/** Entries of the changes log older than this may be pruned once an index reflects them. */
const LOG_KEEP_MS = 3_600_000;

const IMAGE_COLUMNS = 'id, path, labels, width, height, bytes, sha256, added_at';

/**
 * metadata.db, the one truth of a collection: its images (path, labels, size, sha256, vector), a generation
 * number bumped by every change, a log of which ids each generation added or removed, and a copy of the
 * manifest. Everything else (index.ris, manifest.json, thumbnails) is derived from it.
 *
 * Every change is one `BEGIN IMMEDIATE` transaction: writers queue on SQLite's lock (waiting up to a
 * minute) instead of failing, and readers (WAL) see either all of a change or none of it.
 */
export class CollectionDb {
  private readonly db: Database.Database;
  private readonly statements: ReturnType<CollectionDb['prepare']>;

  private constructor(
    readonly path: string,
    private readonly name: string,
    db: Database.Database,
  ) {
    this.db = db;
    this.statements = this.prepare();
  }

  /**
   * Opens (or, with `create`, creates) the database, migrating a version-1 one. `idFloor`: ids up to this
   * may have been used before (by an index of a version-1 collection) and are never handed out again.
   */
  static open(
    path: string,
    name: string,
    options: { create?: boolean; idFloor?: () => number } = {},
  ): CollectionDb {
    if (!options.create && !existsSync(path)) {
      throw broken(
        name,
        `its database ${path} is missing, and with it every stored vector`,
        `delete the collection (ris collections delete ${name}) and index its images again`,
      );
    }
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      const collection = new CollectionDb(path, name, CollectionDb.migrate(db, options.idFloor ?? (() => 0)));
      return collection;
    } catch (error) {
      throw databaseError(error, name, path);
    }
  }

  /** Creates the current layout, or brings a version-1 database (no generation, reusable ids) up to it. */
  private static migrate(db: Database.Database, idFloor: () => number): Database.Database {
    const tables = new Set(
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[],
    );
    if (tables.has('meta')) {
      const version = Number(
        db.prepare("SELECT value FROM meta WHERE key = 'format_version'").pluck().get() ?? 0,
      );
      if (version > COLLECTION_FORMAT_VERSION) {
        throw new CollectionError(
          'COLLECTION_BROKEN',
          `The database was written by a newer ris (format ${version}); upgrade ris to use it`,
        );
      }
      return CollectionDb.addFileTracking(db);
    }
    db.transaction(() => {
      // AUTOINCREMENT: an id, once used, is never handed out again (an index may still hold it).
      db.exec(`CREATE TABLE images_v2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        labels TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        added_at TEXT NOT NULL,
        vector BLOB NOT NULL
      );
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE changes (generation INTEGER NOT NULL, id INTEGER NOT NULL, op INTEGER NOT NULL, at INTEGER NOT NULL);
      CREATE INDEX changes_generation ON changes (generation);`);
      let maxId = 0;
      if (tables.has('images')) {
        db.exec(
          'INSERT INTO images_v2 SELECT id, path, labels, width, height, bytes, sha256, added_at, vector FROM images',
        );
        db.exec('DROP TABLE images');
        maxId = Number(db.prepare('SELECT max(id) FROM images_v2').pluck().get() ?? 0);
      }
      db.exec('ALTER TABLE images_v2 RENAME TO images; CREATE INDEX images_sha256 ON images (sha256);');
      const floor = Math.max(maxId, tables.has('images') ? idFloor() : 0);
      if (floor > 0) {
        db.prepare("DELETE FROM sqlite_sequence WHERE name = 'images'").run();
        db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('images', ?)").run(floor);
      }
      const meta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      meta.run('format_version', String(COLLECTION_FORMAT_VERSION));
      // A migrated collection starts at generation 1 with no log: its index is compared id by id once.
      meta.run('generation', tables.has('images') ? '1' : '0');
      meta.run('log_start', tables.has('images') ? '1' : '0');
    }).immediate();
    return CollectionDb.addFileTracking(db);
  }

  /**
   * What rescans and folder watching need, added to any database that lacks it: each image's file mtime,
   * and the files users removed from a watched folder. Additions only, so an older ris still reads and
   * writes the database (its rows get no mtime, which a rescan then checks by content).
   */
  private static addFileTracking(db: Database.Database): Database.Database {
    const has = () =>
      (db.prepare('PRAGMA table_info(images)').all() as { name: string }[]).some(
        (c) => c.name === 'mtime_ms',
      );
    if (has()) return db;
    db.transaction(() => {
      if (has()) return; // another process added them while we waited for the lock
      db.exec(`ALTER TABLE images ADD COLUMN mtime_ms REAL;
        CREATE TABLE IF NOT EXISTS exclusions (
          path TEXT PRIMARY KEY, bytes INTEGER NOT NULL, mtime_ms REAL, excluded_at TEXT NOT NULL
        );`);
    }).immediate();
    return db;
  }

  private prepare() {
    const db = this.db;
    return {
      generation: db.prepare("SELECT value FROM meta WHERE key = 'generation'").pluck(),
      setMeta: db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      count: db.prepare('SELECT count(*) FROM images').pluck(),
      ids: db.prepare('SELECT id FROM images ORDER BY id').pluck(),
      get: db.prepare(`SELECT ${IMAGE_COLUMNS} FROM images WHERE id = ?`),
      byPath: db.prepare('SELECT id FROM images WHERE path = ?').pluck(),
      bySha: db.prepare('SELECT path FROM images WHERE sha256 = ? LIMIT 1').pluck(),
      paths: db.prepare('SELECT path FROM images').pluck(),
      labels: db.prepare('SELECT labels FROM images').pluck(),
      vector: db.prepare('SELECT id, vector FROM images WHERE id = ?'),
      allVectors: db.prepare('SELECT id, vector FROM images ORDER BY id'),
      allRows: db.prepare('SELECT id, path, labels, vector FROM images ORDER BY id'),
      oneVector: db.prepare('SELECT vector FROM images LIMIT 1').pluck(),
      insert: db.prepare(
        'INSERT OR IGNORE INTO images (path, labels, width, height, bytes, sha256, added_at, vector, mtime_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      files: db.prepare('SELECT id, path, bytes, sha256, mtime_ms AS mtimeMs FROM images'),
      // A stored path, or the paths below it ('/' sorts just before '0'): a range of the path index.
      filesUnder: db.prepare(
        'SELECT id, path, bytes, sha256, mtime_ms AS mtimeMs FROM images WHERE path = ? OR (path >= ? AND path < ?)',
      ),
      move: db.prepare('UPDATE images SET path = ?, labels = ?, mtime_ms = ? WHERE id = ?'),
      touch: db.prepare('UPDATE images SET mtime_ms = ? WHERE id = ?'),
      exclusions: db.prepare('SELECT path, bytes, mtime_ms AS mtimeMs FROM exclusions'),
      exclude: db.prepare(
        'INSERT INTO exclusions (path, bytes, mtime_ms, excluded_at) VALUES (?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET bytes = excluded.bytes, mtime_ms = excluded.mtime_ms, excluded_at = excluded.excluded_at',
      ),
      unexclude: db.prepare('DELETE FROM exclusions WHERE path = ?'),
      idBySha: db.prepare('SELECT id FROM images WHERE sha256 = ? LIMIT 1').pluck(),
      remove: db.prepare('DELETE FROM images WHERE id = ?'),
      log: db.prepare('INSERT INTO changes (generation, id, op, at) VALUES (?, ?, ?, ?)'),
      changes: db.prepare(
        'SELECT id, op FROM changes WHERE generation > ? AND generation <= ? ORDER BY generation, rowid',
      ),
      prunable: db.prepare('SELECT max(generation) FROM changes WHERE generation <= ? AND at < ?').pluck(),
      prune: db.prepare('DELETE FROM changes WHERE generation <= ?'),
    };
  }

  /** The generation: how many changes the collection has seen. Cheap enough to ask on every request. */
  generation(): number {
    return Number(this.statements.generation.get());
  }

  /**
   * Runs `change` as one immediate transaction that bumps the generation; `change` gets the new
   * generation number (to log its changes under). Waits for another writer rather than failing.
   */
  write<T>(change: (generation: number) => T): T {
    return this.guard(() =>
      this.db
        .transaction(() => {
          const next = this.generation() + 1;
          const result = change(next);
          this.statements.setMeta.run('generation', String(next));
          return result;
        })
        .immediate(),
    );
  }

  /** Runs `work` holding the write lock without changing anything: index saves are serialized by it. */
  locked<T>(work: () => T): T {
    return this.guard(() => this.db.transaction(work).immediate());
  }

  /** Runs `reads` on one snapshot of the database. */
  snapshot<T>(reads: () => T): T {
    return this.guard(() => this.db.transaction(reads).deferred());
  }

  meta(key: string): string | undefined {
    return this.guard(() => this.statements.getMeta.get(key) as string | undefined);
  }

  setMeta(key: string, value: string): void {
    this.guard(() => this.statements.setMeta.run(key, value));
  }

  count(): number {
    return Number(this.guard(() => this.statements.count.get()));
  }

  ids(): Uint32Array {
    return Uint32Array.from(this.guard(() => this.statements.ids.all() as number[]));
  }

  get(id: number): StoredImage | undefined {
    const row = this.guard(() => this.statements.get.get(id) as ImageRow | undefined);
    return row && toStored(row);
  }

  idByPath(path: string): number | undefined {
    return this.statements.byPath.get(path) as number | undefined;
  }

  pathOfSha(sha256: string): string | undefined {
    return this.statements.bySha.get(sha256) as string | undefined;
  }

  paths(): Set<string> {
    return new Set(this.guard(() => this.statements.paths.all() as string[]));
  }

  labelCounts(): { label: string; count: number }[] {
    const counts = new Map<string, number>();
    for (const labels of this.guard(() => this.statements.labels.all() as string[])) {
      for (const label of JSON.parse(labels) as string[]) counts.set(label, (counts.get(label) ?? 0) + 1);
    }
    return [...counts]
      .map(([label, count]) => ({ label, count }))
      .sort((a, b) => b.count - a.count || a.label.localeCompare(b.label));
  }

  /** The id of an image with these bytes, if any. */
  idOfSha(sha256: string): number | undefined {
    return this.guard(() => this.statements.idBySha.get(sha256) as number | undefined);
  }

  /**
   * Inserts one image (inside `write`); undefined when its path is already stored. An exclusion of its
   * path ends: adding a file on purpose takes it back.
   */
  insert(
    row: Omit<StoredImage, 'id' | 'addedAt'> & { vector: Uint8Array; mtimeMs?: number | null },
    generation: number,
    addedAt: string,
  ): number | undefined {
    const s = this.statements;
    const { changes, lastInsertRowid } = s.insert.run(
      row.path,
      JSON.stringify(row.labels),
      row.width,
      row.height,
      row.bytes,
      row.sha256,
      addedAt,
      row.vector,
      row.mtimeMs ?? null,
    );
    if (changes === 0) return undefined;
    const id = Number(lastInsertRowid);
    s.log.run(generation, id, ChangeOp.Add, Date.now());
    s.unexclude.run(row.path);
    return id;
  }

  /**
   * Every image's path with what a rescan compares it by; with `under`, only the images stored at or
   * below these paths ('/'-separated, relative to the root; '' for all).
   */
  files(under?: string[]): StoredFile[] {
    if (!under || under.includes('')) return this.guard(() => this.statements.files.all() as StoredFile[]);
    const found = new Map<number, StoredFile>();
    this.guard(() => {
      for (const path of under)
        for (const file of this.statements.filesUnder.all(path, `${path}/`, `${path}0`) as StoredFile[])
          found.set(file.id, file);
    });
    return [...found.values()];
  }

  /** Gives an image another path (a renamed or moved file with the same bytes), inside `write`. */
  move(id: number, path: string, labels: string[], mtimeMs: number | null): void {
    this.statements.move.run(path, JSON.stringify(labels), mtimeMs, id);
    this.statements.unexclude.run(path);
  }

  /** Records the mtime of an image's file found unchanged by content (inside `write` or `locked`). */
  touch(id: number, mtimeMs: number | null): void {
    this.statements.touch.run(mtimeMs, id);
  }

  exclusions(): Exclusion[] {
    return this.guard(() => this.statements.exclusions.all() as Exclusion[]);
  }

  /** Keeps a removed file of the folder out of rescans until it changes (inside `write`). */
  exclude(file: Exclusion): void {
    this.statements.exclude.run(file.path, file.bytes, file.mtimeMs, new Date().toISOString());
  }

  /** Ends an exclusion (the file changed, or was added on purpose), inside `write`. */
  unexclude(path: string): void {
    this.statements.unexclude.run(path);
  }

  /** Deletes one image (inside `write`); false when there was none with that id. */
  remove(id: number, generation: number): boolean {
    const s = this.statements;
    if (s.remove.run(id).changes === 0) return false;
    s.log.run(generation, id, ChangeOp.Remove, Date.now());
    return true;
  }

  /**
   * The ids each generation after `since` (up to `until`) added and removed, in order; undefined when the
   * log no longer reaches back that far (the caller then compares ids one by one).
   */
  changesSince(since: number, until: number): { id: number; op: ChangeOp }[] | undefined {
    if (since < Number(this.statements.getMeta.get('log_start') ?? 0)) return undefined;
    return this.statements.changes.all(since, until) as { id: number; op: ChangeOp }[];
  }

  /** Drops log entries an index file now reflects and that are old (inside `locked`). */
  pruneLog(reflected: number): void {
    const upTo = this.statements.prunable.get(reflected, Date.now() - LOG_KEEP_MS) as number | null;
    if (upTo === null) return;
    this.statements.prune.run(upTo);
    this.statements.setMeta.run('log_start', String(upTo));
  }

  /** Vectors of these ids, packed row-major (ids without a row are left out). */
  vectorsOf(ids: Iterable<number>, dimension: number): { ids: Uint32Array; vectors: Float32Array } {
    const rows: { id: number; vector: Buffer }[] = [];
    for (const id of ids) {
      const row = this.statements.vector.get(id) as { id: number; vector: Buffer } | undefined;
      if (row) rows.push(row);
    }
    return pack(rows, dimension, this.name);
  }

  allVectors(dimension: number): { ids: Uint32Array; vectors: Float32Array } {
    return pack(this.statements.allVectors.all() as { id: number; vector: Buffer }[], dimension, this.name);
  }

  /** Every image's id, path, labels and vector (packed row-major), in id order. */
  allImages(dimension: number): {
    ids: Uint32Array;
    vectors: Float32Array;
    paths: string[];
    labels: string[][];
  } {
    const rows = this.guard(
      () => this.statements.allRows.all() as { id: number; path: string; labels: string; vector: Buffer }[],
    );
    return {
      ...pack(rows, dimension, this.name),
      paths: rows.map((r) => r.path),
      labels: rows.map((r) => JSON.parse(r.labels) as string[]),
    };
  }

  /** The byte length of a stored vector (to check the manifest's dimension), undefined when empty. */
  vectorBytes(): number | undefined {
    const vector = this.guard(() => this.statements.oneVector.get() as Buffer | undefined);
    return vector?.length;
  }

  /** SQLite's own check of every page: [] when the database is sound, else the problems it found. */
  check(full = false): string[] {
    const rows = this.guard(() =>
      this.db.pragma(full ? 'integrity_check' : 'quick_check', { simple: false }),
    );
    const problems = (rows as Record<string, string>[]).map((r) => Object.values(r)[0]!);
    return problems.length === 1 && problems[0] === 'ok' ? [] : problems;
  }

  close(): void {
    this.db.close();
  }

  /** SQLite failures as the errors they are: a full disk, a damaged file, a writer that never let go. */
  private guard<T>(work: () => T): T {
    try {
      return work();
    } catch (error) {
      throw databaseError(error, this.name, this.path);
    }
  }
}

function toStored(row: ImageRow): StoredImage {
  return {
    id: row.id,
    path: row.path,
    labels: JSON.parse(row.labels) as string[],
    width: row.width,
    height: row.height,
    bytes: row.bytes,
    sha256: row.sha256,
    addedAt: row.added_at,
  };
}

function pack(
  rows: { id: number; vector: Buffer }[],
  dimension: number,
  name: string,
): { ids: Uint32Array; vectors: Float32Array } {
  const ids = new Uint32Array(rows.length);
  const vectors = new Float32Array(rows.length * dimension);
  const bytes = new Uint8Array(vectors.buffer);
  for (const [i, row] of rows.entries()) {
    if (row.vector.length !== dimension * 4) {
      throw broken(
        name,
        `image ${row.id}'s vector has ${row.vector.length / 4} dimensions where the manifest says ${dimension}`,
      );
    }
    ids[i] = row.id;
    bytes.set(row.vector, i * dimension * 4); // byte copy: the blob need not be 4-byte aligned
  }
  return { ids, vectors };
}

/**
 * SQLite reports a write that failed for want of space as SQLITE_FULL, or, when the shared-memory file of
 * the WAL cannot grow, as an I/O error: the free space on the database's disk tells which.
 */
function diskNearlyFull(path: string): boolean {
  try {
    const { bavail, bsize } = statfsSync(dirname(path));
    return bavail * bsize < 4 * 1024 * 1024;
  } catch {
    return false;
  }
}

function databaseError(error: unknown, name: string, path: string): unknown {
  const code = (error as { code?: string } | undefined)?.code;
  const message = (error as Error | undefined)?.message ?? String(error);
  if (code === 'SQLITE_FULL' || (code?.startsWith('SQLITE_IOERR') && diskNearlyFull(path)))
    return new StorageError(
      'DISK_FULL',
      `The disk is full while writing ${path}; free some space and run the command again (nothing was lost)`,
      { cause: error },
    );
  if (code === 'SQLITE_BUSY')
    return new CollectionError(
      'COLLECTION_BUSY',
      `Collection "${name}" is busy: another ris process has been writing to it for over a minute; try again when it is done`,
      { cause: error },
    );
  if (code === 'SQLITE_NOTADB')
    return broken(
      name,
      `${path} is not a SQLite database (${message})`,
      `restore it from a backup, or delete the collection (ris collections delete ${name}) and index its images again`,
    );
  if (code === 'SQLITE_CORRUPT' || code?.startsWith('SQLITE_CORRUPT'))
    return broken(name, `${path} is damaged (${message})`);
  return error;
}
