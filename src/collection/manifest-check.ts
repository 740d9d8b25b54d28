import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type LinearProjection, projectionFromJson } from '../embed/projection.ts';
import type { CollectionDb } from './database.ts';
import { DATABASE } from './home.ts';
import { writeAtomicSync } from './index-file.ts';
import { broken, type CollectionManifest, manifestText, parseManifest } from './manifest.ts';

/**
 * The manifest, checked against the copy in the database (the truth). A collection written by ris before
 * the copy existed gets one now (and its manifest.json rewritten in the current format).
 */
export async function checkedManifest(
  db: CollectionDb,
  path: string,
  name: string,
): Promise<CollectionManifest> {
  const stored = db.meta('manifest');
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (stored !== undefined) {
      throw broken(name, `${path} cannot be read (${error.code ?? error.message})`);
    }
    throw broken(
      name,
      `${path} cannot be read (${error.code ?? error.message}) and the database has no copy of it`,
      `delete the collection (ris collections delete ${name}) and index its images again`,
    );
  });
  const manifest = parseManifest(text, path, name);
  if (stored === undefined) {
    const current = manifestText(manifest);
    db.locked(() => {
      db.setMeta('manifest', current);
      if (text !== current) writeAtomicSync(path, new TextEncoder().encode(current), join(path, '..'));
    });
    return manifest;
  }
  if (text !== stored) {
    const truth = parseManifest(stored, `the copy in ${db.path}`, name);
    const field = firstDifference(manifest, truth);
    throw broken(
      name,
      `${path} differs from the copy in ${DATABASE} (${field})`,
      `run ris collections repair ${name} to restore it from the database`,
    );
  }
  return manifest;
}

/** The projection a collection's database holds, checked against its manifest. */
export function storedProjection(
  db: CollectionDb,
  manifest: CollectionManifest,
): LinearProjection | undefined {
  if (!manifest.projection) return undefined;
  const text = db.meta('projection');
  if (!text || createHash('sha256').update(text).digest('hex') !== manifest.projection.sha256) {
    throw broken(
      manifest.name,
      `its projection is missing from ${db.path} or differs from the one the manifest names`,
    );
  }
  return projectionFromJson(text, `the projection of collection "${manifest.name}"`);
}

function firstDifference(a: CollectionManifest, b: CollectionManifest): string {
  for (const key of Object.keys(b) as (keyof CollectionManifest)[]) {
    const x = JSON.stringify(a[key]);
    const y = JSON.stringify(b[key]);
    if (x !== y) return `${key} is ${x} there, ${y} in the database`;
  }
  return 'its text was edited';
}
