import { resolve } from 'node:path';
import { risHome } from './home.ts';
import { localStore } from './local-store.ts';
import type { CollectionStore } from './store.ts';

/**
 * The store a location names: a postgres:// URL (PostgreSQL with pgvector), a folder (collections on this
 * machine), or nothing: $RIS_DATABASE_URL when set, else the folder risHome().
 */
export async function openStore(
  location = process.env.RIS_DATABASE_URL,
  home?: string,
): Promise<CollectionStore> {
  if (!location) return localStore(home ?? risHome());
  if (/^postgres(ql)?:\/\//i.test(location)) {
    const { postgresStore } = await import('./postgres/store.ts');
    return postgresStore(location);
  }
  return localStore(resolve(location));
}
