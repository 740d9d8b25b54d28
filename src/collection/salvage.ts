import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import Database from 'better-sqlite3';
import type { ImageRow } from './database.ts';
import { broken } from './manifest.ts';

type Row = ImageRow & { vector: Buffer };

/**
 * Checks every page of metadata.db (SQLite's integrity_check); when some are damaged, copies every row
 * SQLite can still read into a new database, keeps the damaged file beside it, and says what was kept and
 * what was lost. Returns undefined when the database is sound.
 */
export async function salvageDatabase(path: string, name: string): Promise<string | undefined> {
  let old: Database.Database;
  let problems: string[];
  try {
    old = new Database(path, { fileMustExist: true });
  } catch (error) {
    throw unreadable(error);
  }
  try {
    problems = (old.pragma('integrity_check', { simple: false }) as Record<string, string>[]).map(
      (r) => Object.values(r)[0]!,
    );
  } catch (error) {
    // So damaged that the check itself stops: salvage what can be read, unless it is no database at all.
    if ((error as { code?: string }).code === 'SQLITE_NOTADB') {
      old.close();
      throw unreadable(error);
    }
    problems = [(error as Error).message];
  }
  function unreadable(error: unknown) {
    return broken(
      name,
      `${path} cannot be read as a database (${(error as Error).message})`,
      `restore it from a backup, or delete the collection (ris collections delete ${name}) and index its images again`,
    );
  }
  if (problems.length === 1 && problems[0] === 'ok') {
    old.close();
    return undefined;
  }
  const rows: Row[] = [];
  let lostIds = 0;
  const select = old.prepare('SELECT * FROM images WHERE id BETWEEN ? AND ?');
  const copyRange = (low: number, high: number): void => {
    try {
      rows.push(...(select.all(low, high) as Row[]));
    } catch {
      if (low === high) lostIds++;
      else {
        const middle = Math.floor((low + high) / 2);
        copyRange(low, middle);
        copyRange(middle + 1, high);
      }
    }
  };
  const tryGet = <T>(sql: string, fallback: T): T => {
    try {
      return (old.prepare(sql).pluck().get() as T | undefined) ?? fallback;
    } catch {
      return fallback;
    }
  };
  const highest = Math.max(
    Number(tryGet('SELECT max(id) FROM images', 0)),
    Number(tryGet("SELECT seq FROM sqlite_sequence WHERE name = 'images'", 0)),
  );
  // Ranges of ids, split in halves around what cannot be read.
  for (let low = 1; low <= highest; low += 1024) copyRange(low, Math.min(highest, low + 1023));
  const meta = new Map<string, string>();
  try {
    for (const { key, value } of old.prepare('SELECT key, value FROM meta').all() as {
      key: string;
      value: string;
    }[])
      meta.set(key, value);
  } catch {
    // The manifest copy may be lost with its page; manifest.json is then the one left.
  }
  old.close();

  const fresh = `${path}.salvaged`;
  await rm(fresh, { force: true });
  const db = new Database(fresh);
  db.pragma('journal_mode = WAL');
  db.transaction(() => {
    db.exec(`CREATE TABLE images (
      id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE, labels TEXT NOT NULL,
      width INTEGER NOT NULL, height INTEGER NOT NULL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,
      added_at TEXT NOT NULL, vector BLOB NOT NULL);
    CREATE INDEX images_sha256 ON images (sha256);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE changes (generation INTEGER NOT NULL, id INTEGER NOT NULL, op INTEGER NOT NULL, at INTEGER NOT NULL);
    CREATE INDEX changes_generation ON changes (generation);`);
    const insert = db.prepare(
      'INSERT OR IGNORE INTO images (id, path, labels, width, height, bytes, sha256, added_at, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    for (const r of rows)
      insert.run(r.id, r.path, r.labels, r.width, r.height, r.bytes, r.sha256, r.added_at, r.vector);
    // Ids stay never reused: the counter starts past every id the old file knew of.
    db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('images', ?)").run(highest);
    const generation = Number(meta.get('generation') ?? 0) + 1;
    const setMeta = db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    for (const [key, value] of meta) setMeta.run(key, value);
    setMeta.run('format_version', meta.get('format_version') ?? '2');
    setMeta.run('generation', String(generation));
    // No log reaches back past this: every index is compared id by id once.
    setMeta.run('log_start', String(generation));
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const kept = `${path}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await rename(path, kept);
  for (const suffix of ['-wal', '-shm'])
    if (existsSync(path + suffix)) await rm(path + suffix, { force: true });
  await rm(`${fresh}-shm`, { force: true });
  await rm(`${fresh}-wal`, { force: true });
  await rename(fresh, path);
  return (
    `${path} was damaged (${problems[0]}): copied the ${rows.length} images SQLite could still read into a new database` +
    `${lostIds ? `, ${lostIds} ids could not be read and are lost` : ''}; the damaged file is kept as ${kept}`
  );
}
