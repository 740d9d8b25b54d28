import sharp, { type Sharp } from 'sharp';
import type { Random } from '../ann/random.ts';

/**
 * The edits a copy of a photo goes through in the wild, as the benchmark and self-calibration make them:
 * mirrored, cropped to 70–90 % of each side, re-saved as a JPEG of quality 15–30, resized to 25–40 % of
 * each side, 30 % brighter or darker, turned to grayscale, or turned by 90°.
 */
export const EDITS = ['mirror', 'crop', 'jpeg', 'resize', 'brightness', 'grayscale', 'rotate'] as const;
export type EditKind = (typeof EDITS)[number];

/** Quality edited copies are saved with (all but the `jpeg` edit, whose quality is the edit). */
const SAVE_QUALITY = 90;

/** Uniform in [low, high). */
const between = (random: Random, low: number, high: number) => low + (high - low) * random.next();

/**
 * An edited copy of an image, as JPEG bytes, with what was done in words ("crop 81 % × 74 % at 12,30").
 * The random source picks the edit's amount, so a seed gives the same copies on every machine.
 */
export async function editImage(
  input: Buffer | string,
  kind: EditKind,
  random: Random,
): Promise<{ bytes: Buffer; description: string }> {
  // Decoded once, upright: every edit starts from the pixels as displayed.
  const { data, info } = await sharp(input).rotate().raw().toBuffer({ resolveWithObject: true });
  const { width, height } = info;
  const image = sharp(data, { raw: { width, height, channels: info.channels } });
  const save = (pipeline: Sharp, quality = SAVE_QUALITY) => pipeline.jpeg({ quality }).toBuffer();
  switch (kind) {
    case 'mirror':
      return { bytes: await save(image.flop()), description: 'mirror' };
    case 'crop': {
      const fx = between(random, 0.7, 0.9);
      const fy = between(random, 0.7, 0.9);
      const w = Math.max(1, Math.round(width * fx));
      const h = Math.max(1, Math.round(height * fy));
      const left = random.int(width - w + 1);
      const top = random.int(height - h + 1);
      return {
        bytes: await save(image.extract({ left, top, width: w, height: h })),
        description: `crop ${Math.round(fx * 100)} % × ${Math.round(fy * 100)} % at ${left},${top}`,
      };
    }
    case 'jpeg': {
      const quality = 15 + random.int(16);
      return { bytes: await save(image, quality), description: `JPEG quality ${quality}` };
    }
    case 'resize': {
      const f = between(random, 0.25, 0.4);
      const w = Math.max(1, Math.round(width * f));
      const h = Math.max(1, Math.round(height * f));
      return {
        bytes: await save(image.resize(w, h, { fit: 'fill' })),
        description: `resize to ${Math.round(f * 100)} % (${w} × ${h})`,
      };
    }
    case 'brightness': {
      const factor = random.next() < 0.5 ? 0.7 : 1.3;
      return {
        bytes: await save(image.modulate({ brightness: factor })),
        description: `brightness ${factor < 1 ? '−' : '+'}30 %`,
      };
    }
    case 'grayscale':
      return { bytes: await save(image.grayscale()), description: 'grayscale' };
    case 'rotate':
      return { bytes: await save(image.rotate(90)), description: 'rotate 90°' };
  }
}
