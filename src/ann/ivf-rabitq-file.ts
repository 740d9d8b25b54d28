import { type DecodedIndexFile, damaged, type encodeIndex, type Section } from './format.ts';
import type { DistanceType } from './metric.ts';
import { makeRotation, paddedDimension, type RabitqBits, type Rotation } from './rabitq.ts';
import type { ListContents } from './rabitq-lists.ts';
import { REFINE_STORAGES } from './refine-store.ts';
import type { RowStorage } from './row-store.ts';

/**
 * The file of an IvfRabitqIndex (see src/ann/format.ts for the frame): PARM (rotation rounds and P),
 * SIGN (its sign flips), CENT (rotated centroids, L × D f32), SIZE, IDS, CODE (each list's fast-scan
 * blocks), EXCO (extended codes, with bits 5), FACT (the factors), then VECS, the full vectors in list
 * order, which `loadIndex` leaves on disk and the re-rank reads a row at a time.
 */

/** The sections an IvfRabitqIndex leaves on disk. */
export const ON_DEMAND: ReadonlySet<string> = new Set(['VECS']);

/** What an index writes: its parameters, quantizer and lists (rows: the VECS section's source). */
export interface RabitqFileParts {
  dimension: number;
  distanceType: DistanceType;
  bits: RabitqBits;
  rerankStorage: RowStorage;
  seed: number;
  nextId: number;
  rotation: Rotation;
  centroids: Float32Array;
  lists: ListContents;
  rows: Section;
}

export function rabitqFileSections(parts: RabitqFileParts): {
  header: Parameters<typeof encodeIndex>[1];
  sections: Map<string, Section>;
} {
  const { rotation, lists } = parts;
  const sections = new Map<string, Section>([
    ['PARM', Uint32Array.of(rotation.rounds, rotation.P)],
    ['SIGN', rotation.flips],
    ['CENT', parts.centroids],
    ['SIZE', lists.sizes],
    ['IDS ', lists.ids],
    ['CODE', lists.codes],
  ]);
  if (parts.bits > 1) sections.set('EXCO', lists.exCodes);
  sections.set('FACT', lists.factors);
  sections.set('VECS', parts.rows);
  return {
    header: {
      dimension: parts.dimension,
      innerDimension: rotation.D,
      distanceType: parts.distanceType,
      numPartitions: lists.sizes.length,
      numBits: parts.bits,
      refineStorage: REFINE_STORAGES.indexOf(parts.rerankStorage),
      count: lists.ids.length,
      nextId: parts.nextId,
      seed: parts.seed,
    },
    sections,
  };
}

/** The re-rank storage a file names, or DAMAGED_FILE. */
export function rerankStorageOf(file: DecodedIndexFile): RowStorage {
  const storage = REFINE_STORAGES[file.fields.refineStorage];
  if (storage !== 'float32' && storage !== 'float16') {
    throw damaged(file.name, `its re-rank storage code (${file.fields.refineStorage})`);
  }
  return storage;
}

/**
 * The in-memory sections of a file, checked against its header and one another (the kernels follow
 * list sizes and code lengths without checks): the rotation, the centroids (copies) and the lists'
 * contents (views of the file's bytes, copied into the kernel by `RabitqLists.load`).
 * `exBytes` and `factorCount` are the lists' shape for the file's bits.
 */
export function readRabitqSections(
  file: DecodedIndexFile,
  shape: { exBytes: number; factorCount: number },
): { rotation: Rotation; centroids: Float32Array; lists: ListContents } {
  const f = file.fields;
  const D = paddedDimension(f.dimension);
  const L = f.numPartitions;
  const n = f.count;
  const [rounds, P] = file.section('PARM', Uint32Array, 2);
  const rotation = makeRotation(f.dimension, f.seed);
  if (f.innerDimension !== D || rounds !== rotation.rounds || P !== rotation.P) {
    throw damaged(file.name, 'its parameters');
  }
  const flips = file.section('SIGN', Uint8Array, rounds * 2 * D);
  if (flips.some((flip) => flip > 1)) throw damaged(file.name, 'its rotation');
  const sizes = file.section('SIZE', Uint32Array, L);
  let total = 0;
  let blocks = 0;
  for (const size of sizes) {
    total += size;
    blocks += Math.ceil(size / 32);
  }
  if (total !== n) throw damaged(file.name, 'its partition sizes');
  return {
    rotation: { ...rotation, flips: flips.slice() },
    centroids: file.section('CENT', Float32Array, L * D).slice(),
    lists: {
      sizes,
      ids: file.section('IDS ', Uint32Array, n),
      codes: file.section('CODE', Uint8Array, blocks * 32 * (D / 8)),
      exCodes: shape.exBytes > 0 ? file.section('EXCO', Uint8Array, n * shape.exBytes) : new Uint8Array(0),
      factors: file.section('FACT', Float32Array, shape.factorCount * n),
    },
  };
}
