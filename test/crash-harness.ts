// The invariants a collection keeps after any crash or interleaving of writers (issue 11), checked on
// the real files after the next command.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Collection } from '../src/collection/collection.ts';
import { openIndexFile } from '../src/collection/index-file.ts';
import { ris } from './ris-process.ts';

/** What a collection's files say, read directly (not through ris). */
export async function snapshot(home: string, name: string) {
  const dir = join(home, 'collections', name);
  const db = new Database(join(dir, 'metadata.db'), { readonly: true, fileMustExist: true });
  const rows = db.prepare('SELECT id, path, sha256, vector FROM images ORDER BY id').all() as {
    id: number;
    path: string;
    sha256: string;
    vector: Buffer;
  }[];
  const generation = Number(db.prepare("SELECT value FROM meta WHERE key = 'generation'").pluck().get());
  db.close();
  const bytes = new Uint8Array(await readFile(join(dir, 'index.ris')));
  return { rows, generation, ...openIndexFile(bytes, 'index.ris') };
}

/**
 * What holds after any crash and any interleaving, checked after the next command (which must exit 0):
 * the index file holds exactly the stored ids and says so in its stamp, no id was ever reused (for other
 * bytes: a file moved in a rescan keeps its id under its new path), no removed id came back, and every
 * stored image finds itself first.
 */
export class Invariants {
  /** Every id ever seen, with the path and bytes it had. */
  private readonly seen = new Map<number, { path: string; sha256: string }>();
  /** Ids once stored and then gone. */
  private readonly gone = new Set<number>();
  checks = 0;

  constructor(
    readonly home: string,
    readonly name: string,
  ) {}

  async check(context: string): Promise<void> {
    const next = await ris(this.home, ['collections', 'info', this.name]);
    assert.equal(next.code, 0, `${context}: the next command failed: ${next.stderr}`);
    const { rows, generation, index, stamp } = await snapshot(this.home, this.name);
    const stored = rows.map((r) => r.id);
    assert.deepEqual(
      Array.from(index.ids()).sort((a, b) => a - b),
      stored,
      `${context}: the index holds exactly the stored images`,
    );
    assert.equal(stamp.data, generation, `${context}: the index says which generation it reflects`);
    const ids = new Set(stored);
    for (const id of this.seen.keys()) if (!ids.has(id)) this.gone.add(id);
    for (const row of rows) {
      assert.ok(!this.gone.has(row.id), `${context}: removed id ${row.id} is back`);
      const before = this.seen.get(row.id);
      assert.ok(
        before === undefined || before.sha256 === row.sha256,
        `${context}: id ${row.id} (${before?.path}) reused for other bytes at ${row.path}`,
      );
      this.seen.set(row.id, { path: row.path, sha256: row.sha256 });
    }
    // What a search answers: through the library, as ris search and the server do.
    const collection = await Collection.open(this.name, { home: this.home, persistIndex: 'builds' });
    try {
      for (const row of rows) {
        const vector = new Float32Array(new Uint8Array(row.vector).buffer);
        const hits = await collection.searchVector(vector, { k: 3 });
        assert.equal(hits[0]?.id, row.id, `${context}: image ${row.id} (${row.path}) finds itself first`);
        for (const hit of hits) assert.ok(!this.gone.has(hit.id), `${context}: removed ${hit.id} answered`);
      }
    } finally {
      await collection.close();
    }
    this.checks++;
  }

  /** Ids stored now (after a check). */
  async storedIds(): Promise<number[]> {
    return (await snapshot(this.home, this.name)).rows.map((r) => r.id);
  }
}
