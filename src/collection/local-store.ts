import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CollectionError } from '../errors.ts';
import { Collection } from './collection.ts';
import { CollectionDb } from './database.ts';
import {
  collectionDirectory,
  collectionExists,
  collectionNames,
  DATABASE,
  INDEX,
  MANIFEST,
  risHome,
} from './home.ts';
import { removeOrphanTempFiles, writeAtomicSync } from './index-file.ts';
import { manifestText, readManifest } from './manifest.ts';
import type { CollectionStore } from './store.ts';
import type { CollectionOptions } from './types.ts';

/** The collections of a folder on this machine (default risHome()): SQLite and index files. */
export function localStore(home = risHome()): CollectionStore {
  const withHome = (options: CollectionOptions = {}) => ({ ...options, home });
  return {
    location: home,
    list: () => collectionNames(home),
    exists: async (name) => collectionExists(name, home),
    open: (name, options) => Collection.open(name, withHome(options)),
    create: (name, init, options) => Collection.create(name, init, withHome(options)),
    delete: (name) => deleteCollection(name, home),
    repair: (name, options) => repairCollection(name, withHome(options)),
    close: async () => {},
  };
}

async function deleteCollection(name: string, home: string): Promise<void> {
  if (!collectionExists(name, home)) throw notFound(name);
  await rm(collectionDirectory(name, home), { recursive: true, force: true });
}

/**
 * Repairs what can be repaired from metadata.db: checks every page of it (rows SQLite can no longer
 * read are dropped and listed), restores manifest.json from the database's copy, removes temp files left
 * by killed writers, and rebuilds index.ris from the stored vectors. Returns what it did.
 */
async function repairCollection(name: string, options: CollectionOptions): Promise<string[]> {
  const dir = collectionDirectory(name, options.home);
  if (!collectionExists(name, options.home)) throw notFound(name);
  const done: string[] = [];
  const { salvageDatabase } = await import('./salvage.ts');
  const salvaged = await salvageDatabase(join(dir, DATABASE), name);
  if (salvaged) done.push(salvaged);
  const db = CollectionDb.open(join(dir, DATABASE), name);
  try {
    const stored = db.meta('manifest');
    const manifestPath = join(dir, MANIFEST);
    if (stored === undefined) {
      // A version-1 collection keeps its manifest only in manifest.json: it has to be sound.
      const manifest = await readManifest(manifestPath, name);
      db.setMeta('manifest', manifestText(manifest));
    } else {
      const current = await readFile(manifestPath, 'utf8').catch(() => undefined);
      if (current !== stored) {
        db.locked(() => writeAtomicSync(manifestPath, new TextEncoder().encode(stored), dir));
        done.push(`restored ${MANIFEST} from the copy in ${DATABASE}`);
      }
    }
    const orphans = db.locked(() => removeOrphanTempFiles(dir));
    if (orphans.length) done.push(`removed ${orphans.length} temp files left by interrupted writes`);
  } finally {
    db.close();
  }
  const collection = await Collection.open(name, { ...options, persistIndex: 'always' });
  try {
    await collection.retrain();
    done.push(`rebuilt ${INDEX} from the ${await collection.count()} stored vectors`);
  } finally {
    await collection.close();
  }
  return done;
}

function notFound(name: string): CollectionError {
  return new CollectionError(
    'COLLECTION_NOT_FOUND',
    `No collection "${name}"; ris collections list shows them`,
  );
}
