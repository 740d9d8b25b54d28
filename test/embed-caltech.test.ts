import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { Embedder, MODEL_REGISTRY } from '../src/index.ts';
import { noSharedData, sharedData } from './helpers.ts';

// The last 20 classes of Caltech101 in sorted order, 20 images each (the first 20 files of each folder).
// The shared reference vectors give P@5 0.899 on this same selection.
const caltech = join(sharedData, 'caltech101');
let embedder: Embedder;
let cacheDir: string;
const files: string[] = [];
const labels: string[] = [];
let vectors: Float32Array;

describe('mobilenetv2-int8 on Caltech101', { skip: noSharedData }, () => {
  before(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'ris-models-'));
    const entry = MODEL_REGISTRY['mobilenetv2-int8']!;
    await copyFile(join(sharedData, 'models', entry.fileName), join(cacheDir, entry.fileName));
    embedder = await Embedder.create({ model: 'mobilenetv2-int8', cacheDir });
    const classes = (await readdir(caltech))
      .filter((c) => c !== 'BACKGROUND_Google')
      .sort()
      .slice(-20);
    for (const c of classes) {
      for (const f of (await readdir(join(caltech, c))).sort().slice(0, 20)) {
        files.push(join(caltech, c, f));
        labels.push(c);
      }
    }
    vectors = new Float32Array(files.length * embedder.dimension);
    for await (const batch of embedder.embedMany(files)) {
      assert.equal(batch.failures.length, 0);
      for (const [r, index] of batch.indices.entries()) {
        vectors.set(
          batch.vectors.subarray(r * embedder.dimension, (r + 1) * embedder.dimension),
          index * embedder.dimension,
        );
      }
    }
  });
  after(async () => {
    await embedder?.close();
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  /** Indices of the k most cosine-similar images (vectors are unit length). */
  const nearest = (query: Float32Array, k: number, exclude = -1) => {
    const d = embedder.dimension;
    const scores: [number, number][] = [];
    for (let j = 0; j < files.length; j++) {
      if (j === exclude) continue;
      let s = 0;
      for (let t = 0; t < d; t++) s += query[t]! * vectors[j * d + t]!;
      scores.push([s, j]);
    }
    return scores
      .sort((a, b) => b[0] - a[0])
      .slice(0, k)
      .map(([, j]) => j);
  };

  it('leave-one-out same-label precision at 5 is at least 0.90', () => {
    const d = embedder.dimension;
    let hits = 0;
    for (let i = 0; i < files.length; i++) {
      for (const j of nearest(vectors.subarray(i * d, (i + 1) * d), 5, i))
        if (labels[j] === labels[i]) hits++;
    }
    const precision = hits / (files.length * 5);
    assert.ok(precision >= 0.9, `P@5 ${precision.toFixed(3)}`);
  });

  it('finds the original first from a JPEG at quality 40, a mirror image, or a half-size copy', async () => {
    for (const i of [0, 57, 133, 250, 399]) {
      const original = sharp(files[i]!);
      const { width } = await original.metadata();
      const variants = {
        quality40: await sharp(files[i]!).jpeg({ quality: 40 }).toBuffer(),
        mirrored: await sharp(files[i]!).flop().jpeg({ quality: 95 }).toBuffer(),
        half: await sharp(files[i]!)
          .resize(Math.round(width! / 2))
          .jpeg({ quality: 95 })
          .toBuffer(),
      };
      for (const [name, bytes] of Object.entries(variants)) {
        assert.equal(nearest(await embedder.embed(bytes), 1)[0], i, `${name} of ${files[i]}`);
      }
    }
  });
});
