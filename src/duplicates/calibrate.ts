import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { normalizeRows } from '../ann/metric.ts';
import { Random } from '../ann/random.ts';
import type { ImageCollection } from '../collection/store.ts';
import type { ImageRecord } from '../collection/types.ts';
import { RisError } from '../errors.ts';
import { EDITS, editImage } from './edits.ts';

export type CalibrationProgress = { type: 'calibrate'; done: number; total: number };

/** A threshold measured on a collection's own images, as kept in its folder. */
export interface Calibration {
  /** The model the similarities are of (another model's scale is another scale). */
  modelId: string;
  /** Images in the collection when it was measured. */
  images: number;
  threshold: number;
  /** Edited copies measured, and the share of them at or above the threshold. */
  copies: number;
  copiesReached: number;
  /** Nearest distinct neighbours measured, and the share of them at or above it (pairs the second look compares). */
  neighbours: number;
  neighboursReached: number;
  createdAt: string;
}

const calibrationSchema = z.object({
  modelId: z.string(),
  images: z.number().int().min(0),
  threshold: z.number().min(-1).max(1),
  copies: z.number().int().min(0),
  copiesReached: z.number().min(0).max(1),
  neighbours: z.number().int().min(0),
  neighboursReached: z.number().min(0).max(1),
  createdAt: z.string(),
});

/** Images sampled; each gets one copy per edit but the quarter turn (which the embedding is not meant to see). */
const SAMPLE = 40;
const CALIBRATION_EDITS = EDITS.filter((edit) => edit !== 'rotate');
/** The share of edited copies the threshold keeps: pair recall 0.95 with the groups' transitive joins to spare. */
const COPIES_KEPT = 0.975;
const FILE = 'duplicates-calibration.json';

/**
 * The duplicates threshold of a model that has none recorded, measured on the collection itself: edited
 * copies (mirror, crop, JPEG, resize, lighter or darker, grayscale) of a seeded sample of its images are
 * embedded, and the threshold is the similarity that 97.5 % of them reach to their source. What that costs
 * is the share of the sample's nearest distinct neighbours (another file, not a copy in the eyes of the
 * pixel comparison) that reach it too: each such pair gets a look at its pixels.
 *
 * Kept in the collection's folder and reused while the model is the same and the collection has neither
 * halved nor doubled since.
 */
export async function calibratedThreshold(
  collection: ImageCollection,
  stored: { ids: Uint32Array; unit: Float32Array },
  nearestDistinct: (rows: number[]) => Promise<(number | undefined)[]>,
  options: { onProgress?: (event: CalibrationProgress) => void; signal?: AbortSignal } = {},
): Promise<Calibration> {
  const file = join(collection.dir, FILE);
  const n = stored.ids.length;
  const kept = await readFile(file, 'utf8')
    .then((text) => calibrationSchema.parse(JSON.parse(text)))
    .catch(() => undefined);
  // One that measured no copy (an older ris kept those) is measured again.
  if (
    kept &&
    kept.copies > 0 &&
    kept.modelId === collection.manifest.modelId &&
    kept.images * 2 >= n &&
    kept.images <= n * 2
  )
    return kept;

  const embedder = await collection.embedder();
  const d = stored.unit.length / n;
  const random = new Random(1);
  const rows = [...random.sample(n, Math.min(SAMPLE, n))].sort((a, b) => a - b);
  const copies: number[] = [];
  const total = rows.length;
  for (const [i, row] of rows.entries()) {
    options.signal?.throwIfAborted();
    options.onProgress?.({ type: 'calibrate', done: i, total });
    const record: ImageRecord | undefined = await collection.get(stored.ids[row]!);
    if (!record) continue;
    let bytes: Buffer;
    try {
      bytes = await collection.readImage(record);
    } catch (error) {
      if (error instanceof RisError) continue; // gone or unreadable: the sample is one smaller
      throw error;
    }
    const edited: { input: Buffer }[] = [];
    try {
      for (const edit of CALIBRATION_EDITS)
        edited.push({ input: (await editImage(bytes, edit, random)).bytes });
    } catch {
      continue; // a file the decoder refuses
    }
    for (const vector of await embedder.embedBatch(edited)) {
      if (vector instanceof RisError) continue;
      const unit = normalizeRows(vector, d);
      let sum = 0;
      for (let j = 0; j < d; j++) sum += unit[j]! * stored.unit[row * d + j]!;
      copies.push(sum);
    }
  }
  options.onProgress?.({ type: 'calibrate', done: total, total });
  copies.sort((a, b) => a - b);
  // Two decimals, rounded down: a threshold a person can type and compare.
  const threshold =
    copies.length === 0 ? 1 : Math.floor(copies[Math.floor(copies.length * (1 - COPIES_KEPT))]! * 100) / 100;
  const distinct = (await nearestDistinct(rows)).filter((s): s is number => s !== undefined);
  const calibration: Calibration = {
    modelId: collection.manifest.modelId,
    images: n,
    threshold,
    copies: copies.length,
    copiesReached: share(copies, threshold),
    neighbours: distinct.length,
    neighboursReached: share(distinct, threshold),
    createdAt: new Date().toISOString(),
  };
  // Nothing measured (no image of the sample could be read): nothing worth keeping, try again next time.
  if (copies.length === 0) return calibration;
  const temp = join(collection.dir, `.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(temp, `${JSON.stringify(calibration, null, 2)}\n`);
  await rename(temp, file);
  return calibration;
}

function share(values: number[], threshold: number): number {
  return values.length === 0 ? 0 : values.filter((v) => v >= threshold).length / values.length;
}
