import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ArgumentError, describe } from '../errors.ts';

/** Where collections live: $RIS_HOME, else $XDG_DATA_HOME/ris, else ~/.local/share/ris. */
export function risHome(): string {
  return process.env.RIS_HOME || join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'ris');
}

/** The files of a collection's folder. */
export const MANIFEST = 'manifest.json';
export const DATABASE = 'metadata.db';
export const INDEX = 'index.ris';

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

/** Whether `name` can name a collection (it becomes a folder name, a URL segment and a database key). */
export function isCollectionName(name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name);
}

/** `name`, checked: INVALID_ARGUMENT with the rule when it cannot name a collection. */
export function checkCollectionName(name: unknown): string {
  if (!isCollectionName(name)) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected a collection name of letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit) but received ${describe(name)}`,
    );
  }
  return name;
}

/** The folder of collection `name` in `home`, after checking the name. */
export function collectionDirectory(name: string, home = risHome()): string {
  return join(home, 'collections', checkCollectionName(name));
}

/** Whether `home` holds collection `name` (a broken one too: a folder with a manifest or a database). */
export function collectionExists(name: string, home = risHome()): boolean {
  const dir = collectionDirectory(name, home);
  return existsSync(join(dir, MANIFEST)) || existsSync(join(dir, DATABASE));
}

/** Names of the collections in `home`, broken ones included, sorted. */
export async function collectionNames(home = risHome()): Promise<string[]> {
  const dir = join(home, 'collections');
  if (!existsSync(dir)) return [];
  const names = await readdir(dir);
  return names
    .filter((n) => NAME.test(n) && (existsSync(join(dir, n, MANIFEST)) || existsSync(join(dir, n, DATABASE))))
    .sort();
}
