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
  const n = DECODE_SIDE * DECODE_SIDE;
  const channels = data.length / n;
  const L = new Float32Array(n);
  const A = new Float32Array(n);
  const B = new Float32Array(n);
  const chromas = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = data[i * channels]!;
    const g = channels >= 3 ? data[i * channels + 1]! : r;
    const b = channels >= 3 ? data[i * channels + 2]! : r;
    lab(r, g, b, L, A, B, i);
    chromas[i] = Math.hypot(A[i]!, B[i]!);
  }
  chromas.sort();
  return {
    width,
    height,
    lightness8: quantise(shrink(L, DECODE_SIDE, 4), 2.55, Uint8Array),
    lightness16: quantise(shrink(L, DECODE_SIDE, 2), 2.55, Uint8Array),
    lightness32: quantise(blur(L, DECODE_SIDE), 2.55, Uint8Array),
    a16: quantise(shrink(A, DECODE_SIDE, 2), 1, Int8Array),
    b16: quantise(shrink(B, DECODE_SIDE, 2), 1, Int8Array),
    chroma: chromas[Math.floor(n * 0.95)]!,
  };
}

const LINEAR = new Float32Array(256).map((_, v) => {
  const c = v / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
});
const labF = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);

/** sRGB (0–255) to CIE Lab (D65), written at index i. */
function lab(r: number, g: number, b: number, L: Float32Array, A: Float32Array, B: Float32Array, i: number) {
  const R = LINEAR[r]!;
  const G = LINEAR[g]!;
  const Bl = LINEAR[b]!;
  const x = labF((0.4124 * R + 0.3576 * G + 0.1805 * Bl) / 0.95047);
  const y = labF(0.2126 * R + 0.7152 * G + 0.0722 * Bl);
  const z = labF((0.0193 * R + 0.1192 * G + 0.9505 * Bl) / 1.08883);
  L[i] = 116 * y - 16;
  A[i] = 500 * (x - y);
  B[i] = 200 * (y - z);
}

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
