import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { MODEL_REGISTRY, parseModelConfig } from '../src/embed/config.ts';
import { fillTensor, prepareImage } from '../src/embed/image.ts';

// Golden values made by Pillow + NumPy (test/golden/make-golden.py), an independent pipeline.
const dir = join(import.meta.dirname, 'golden');
const golden = JSON.parse(readFileSync(join(dir, 'preprocess.json'), 'utf8')) as {
  file: string;
  grid: number[];
}[];
const config = parseModelConfig(MODEL_REGISTRY['resnet50']!.config, 'resnet50');

for (const { file, grid } of golden) {
  it(`ImageNet preprocessing of ${file} matches Pillow's (16 × 16 block means per channel)`, async () => {
    const image = await prepareImage(join(dir, file), config);
    const tensor = new Float32Array(3 * 224 * 224);
    fillTensor(image, config, tensor, 0);
    let sum = 0;
    let worst = 0;
    for (let c = 0; c < 3; c++)
      for (let by = 0; by < 16; by++)
        for (let bx = 0; bx < 16; bx++) {
          let s = 0;
          for (let y = by * 14; y < by * 14 + 14; y++)
            for (let x = bx * 14; x < bx * 14 + 14; x++) s += tensor[c * 224 * 224 + y * 224 + x]!;
          const diff = Math.abs(s / 196 - grid[c * 256 + by * 16 + bx]!);
          sum += diff;
          worst = Math.max(worst, diff);
        }
    // In normalised units; 0.02 is about one grey level in 255 after dividing by the std.
    assert.ok(sum / 768 < 0.02, `mean difference ${sum / 768}`);
    assert.ok(worst < 0.15, `largest difference ${worst}`);
  });
}
