import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** A folder name that sorts by time: 2025-01-31T12-00-05Z. */
export function timestampName(date = new Date()): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
}

/** A new report folder under `parent`, named by the time (with -2, -3, … when that name is taken). */
export function newReportDir(parent: string): string {
  const name = timestampName();
  let dir = join(parent, name);
  for (let i = 2; existsSync(dir); i++) dir = join(parent, `${name}-${i}`);
  return dir;
}
