import sharp from 'sharp';

/**
 * An image as the second look compares it: its shape, and small square planes (the image squeezed, its
 * proportions kept apart in width and height) of lightness at three levels of detail and of colour.
 * About 6 KB an image.
 */
export interface ImagePlanes {
  /** The image as displayed, in pixels. */
  width: number;
  height: number;
  /** CIE lightness (0–100, stored ×2.55) blurred for sampling 8, 16 and 32 points per side. */
  lightness8: Uint8Array;
  lightness16: Uint8Array;
  lightness32: Uint8Array;
  /** Lab a and b (−128…127) blurred for sampling 16 points per side. */
  a16: Int8Array;
  b16: Int8Array;
  /** Colourfulness: the 95th percentile of Lab chroma over the pixels, about 0 for a grayscale image. */
  chroma: number;
}

/** Side of each plane: twice the points sampled from it, so bilinear sampling reads blurred pixels. */
export const PLANE_SIDE = { lightness8: 16, lightness16: 32, lightness32: 64, a16: 32, b16: 32 } as const;
const DECODE_SIDE = 64;

/**
 * The planes of an image (a path or its bytes; `width` and `height` as displayed, from the collection's
 * records). The decoder shrinks large JPEGs while decoding, so a 12-megapixel photo costs little more than
 * a small one.
 */
export async function imagePlanes(
  input: Buffer | string,
  width: number,
  height: number,
): Promise<ImagePlanes> {
  const data = await sharp(input, { failOn: 'none', pages: 1 })
    .rotate()
    .resize(DECODE_SIDE, DECODE_SIDE, { fit: 'fill', kernel: 'cubic' })
    .flatten({ background: '#ffffff' })
    .toColourspace('srgb')
    .raw()
    .toBuffer();
  const side = DECODE_SIDE;
  const n = side * side;
  const channels = data.length / n;
  // Lightness at full resolution; colour (a, b) from 2 × 2 blocks, where detail does not matter.
  const L = new Float32Array(n);
  const half = side / 2;
  const A = new Float32Array(half * half);
  const B = new Float32Array(half * half);
  const chromaCounts = new Uint32Array(CHROMA_BINS);
  for (let y = 0; y < half; y++)
    for (let x = 0; x < half; x++) {
      let R = 0;
      let G = 0;
      let Bl = 0;
      for (let dy = 0; dy < 2; dy++)
        for (let dx = 0; dx < 2; dx++) {
          const i = (2 * y + dy) * side + 2 * x + dx;
          const r = LINEAR[data[i * channels]!]!;
          const g = channels >= 3 ? LINEAR[data[i * channels + 1]!]! : r;
          const b = channels >= 3 ? LINEAR[data[i * channels + 2]!]! : r;
          L[i] = 116 * labF(0.2126 * r + 0.7152 * g + 0.0722 * b) - 16;
          R += r;
          G += g;
          Bl += b;
        }
      R /= 4;
      G /= 4;
      Bl /= 4;
      const fx = labF((0.4124 * R + 0.3576 * G + 0.1805 * Bl) / 0.95047);
      const fy = labF(0.2126 * R + 0.7152 * G + 0.0722 * Bl);
      const fz = labF((0.0193 * R + 0.1192 * G + 0.9505 * Bl) / 1.08883);
      const a = 500 * (fx - fy);
      const b = 200 * (fy - fz);
      A[y * half + x] = a;
      B[y * half + x] = b;
      chromaCounts[Math.min(CHROMA_BINS - 1, Math.floor(Math.hypot(a, b)))]!++;
    }
  return {
    width,
    height,
    lightness8: quantise(shrink(L, side, 4), 2.55, Uint8Array),
    lightness16: quantise(shrink(L, side, 2), 2.55, Uint8Array),
    lightness32: quantise(blur(L, side), 2.55, Uint8Array),
    a16: quantise(blur(A, half), 1, Int8Array),
    b16: quantise(blur(B, half), 1, Int8Array),
    chroma: percentile(chromaCounts, 0.95),
  };
}

/** Chroma is counted in bins of 1 up to this (Lab chroma rarely passes 130). */
const CHROMA_BINS = 160;

/** The value below which `share` of the counted values lie (bins of width 1). */
function percentile(counts: Uint32Array, share: number): number {
  let total = 0;
  for (const c of counts) total += c;
  let seen = 0;
  for (let bin = 0; bin < counts.length; bin++) {
    seen += counts[bin]!;
    if (seen >= share * total) return bin + 1;
  }
  return counts.length;
}

const LINEAR = new Float32Array(256).map((_, v) => {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
});
const labF = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);

/** The mean of each factor × factor block, then a blur of 2 of the result. */
function shrink(plane: Float32Array, side: number, factor: number): Float32Array {
  const small = side / factor;
  const out = new Float32Array(small * small);
  for (let y = 0; y < small; y++)
    for (let x = 0; x < small; x++) {
      let sum = 0;
      for (let dy = 0; dy < factor; dy++)
        for (let dx = 0; dx < factor; dx++) sum += plane[(y * factor + dy) * side + x * factor + dx]!;
      out[y * small + x] = sum / (factor * factor);
    }
  return blur(out, small);
}

/** A [½ 1 ½]/2 blur along both axes (edges clamped): sampled every second pixel, it averages what lies between. */
function blur(plane: Float32Array, side: number): Float32Array {
  const pass = (src: Float32Array, dx: number, dy: number) => {
    const out = new Float32Array(src.length);
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++) {
        const before = src[Math.max(0, y - dy) * side + Math.max(0, x - dx)]!;
        const after = src[Math.min(side - 1, y + dy) * side + Math.min(side - 1, x + dx)]!;
        out[y * side + x] = (before + 2 * src[y * side + x]! + after) / 4;
      }
    return out;
  };
  return pass(pass(plane, 1, 0), 0, 1);
}

function quantise<T extends Uint8Array | Int8Array>(
  plane: Float32Array,
  scale: number,
  Type: { new (length: number): T },
): T {
  const out = new Type(plane.length);
  const [low, high] = out instanceof Int8Array ? [-128, 127] : [0, 255];
  for (let i = 0; i < plane.length; i++)
    out[i] = Math.max(low, Math.min(high, Math.round(plane[i]! * scale)));
  return out;
}
