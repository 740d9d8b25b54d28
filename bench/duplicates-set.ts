// The benchmark set of bench:duplicates: Caltech101 originals with edited copies, among distractors.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Random } from '../src/ann/random.ts';
import { EDITS, type EditKind, editImage } from '../src/duplicates/edits.ts';
import { readFvecs } from '../src/node/fvecs.ts';
import { hammingDistance, perceptualHash } from './phash.ts';

/** One image of the set: a family is an original and its edited copies; distractors are family −1. */
export interface SetImage {
  /** Relative to the set's folder (the collection's root). */
  path: string;
  family: number;
  kind: EditKind | 'original' | 'distractor';
}

export interface SetOptions {
  /** Caltech101's folder (one sub-folder per class). */
  caltech: string;
  /** Its MobileNetV2 vectors (.fvecs with a .paths.txt beside), to leave out Caltech's own copies. */
  vectors?: string;
  out: string;
  seed: number;
  originalsPerClass: number;
  distractorsPerClass: number;
}

/**
 * Classes left out: BACKGROUND_Google (not a class) and Faces_easy (the Faces photos again, cropped
 * closer: a copy of every Faces image).
 */
const SKIPPED_CLASSES = new Set(['BACKGROUND_Google', 'Faces_easy']);
/** Caltech101 holds copies of its own (Leopards mirrored, garfield twice, …): a source image this close to one already chosen is left out. */
const SOURCE_HAMMING = 12;
const SOURCE_COSINE = 0.95;

/**
 * Per class, originals and distractors drawn in a seeded order, each original with one copy per edit.
 * Source images that look like copies of one already drawn (pHash within 12 bits, of it or its mirror
 * image, or cosine ≥ 0.95 in the shared MobileNetV2 vectors) are left out, so that the only copies in the
 * set are the ones made here.
 */
export async function buildSet(
  options: SetOptions,
): Promise<{ images: SetImage[]; classes: number; leftOut: number }> {
  const random = new Random(options.seed);
  const vectors =
    options.vectors && existsSync(options.vectors) ? await unitVectors(options.vectors) : undefined;
  const classes = (await readdir(options.caltech)).filter((c) => !SKIPPED_CLASSES.has(c)).sort();
  const images: SetImage[] = [];
  let family = 0;
  let leftOut = 0;
  for (const name of classes) {
    const files = (await readdir(join(options.caltech, name))).filter((f) => /\.jpe?g$/i.test(f)).sort();
    const wanted = options.originalsPerClass + options.distractorsPerClass;
    const chosen: { hash: Awaited<ReturnType<typeof perceptualHash>>; vector: Float32Array | undefined }[] =
      [];
    const picked: string[] = [];
    for (const index of random.sample(files.length, files.length)) {
      if (picked.length === wanted) break;
      const file = files[index]!;
      const hash = await perceptualHash(join(options.caltech, name, file));
      const vector = vectors?.get(`${name}/${file}`);
      const copy = chosen.some(
        (other) =>
          hammingDistance(other.hash.hash, hash.hash) <= SOURCE_HAMMING ||
          hammingDistance(other.hash.mirrored, hash.hash) <= SOURCE_HAMMING ||
          (vector !== undefined &&
            other.vector !== undefined &&
            cosine(vector, other.vector) >= SOURCE_COSINE),
      );
      if (copy) {
        leftOut++;
        continue;
      }
      chosen.push({ hash, vector });
      picked.push(file);
    }
    await mkdir(join(options.out, name), { recursive: true });
    for (const [i, file] of picked.entries()) {
      const source = join(options.caltech, name, file);
      const base = file.replace(/\.[^.]+$/, '');
      await copyFile(source, join(options.out, name, file));
      if (i >= options.originalsPerClass) {
        images.push({ path: `${name}/${file}`, family: -1, kind: 'distractor' });
        continue;
      }
      images.push({ path: `${name}/${file}`, family, kind: 'original' });
      const bytes = await readFile(source);
      for (const edit of EDITS) {
        const path = `${name}/${base}-${edit}.jpg`;
        await writeFile(join(options.out, path), (await editImage(bytes, edit, random)).bytes);
        images.push({ path, family, kind: edit });
      }
      family++;
    }
  }
  return { images, classes: classes.length, leftOut };
}

async function unitVectors(file: string): Promise<Map<string, Float32Array>> {
  const { vectors, dimension, count } = await readFvecs(file);
  const paths = (await readFile(file.replace(/\.fvecs$/, '.paths.txt'), 'utf8')).split('\n');
  const out = new Map<string, Float32Array>();
  for (let i = 0; i < count; i++) {
    const v = vectors.subarray(i * dimension, (i + 1) * dimension);
    const norm = Math.hypot(...v);
    out.set(
      paths[i]!,
      v.map((x) => x / norm),
    );
  }
  return out;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

/** Writes the set's truth beside it (for a look at what a method missed). */
export async function writeTruth(out: string, images: SetImage[]): Promise<void> {
  await writeFile(join(out, 'truth.json'), JSON.stringify(images));
}
