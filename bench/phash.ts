import sharp from 'sharp';

/** Side of the grayscale thumbnail a perceptual hash is computed from. */
const SIDE = 32;
/** The lowest frequencies kept: an 8 × 8 block, 64 bits. */
const KEEP = 8;

/** cos((2x + 1) u π / 2N) for u < KEEP, x < SIDE: the only DCT-II terms the hash needs. */
const COSINES = (() => {
  const table = new Float64Array(KEEP * SIDE);
  for (let u = 0; u < KEEP; u++)
    for (let x = 0; x < SIDE; x++) table[u * SIDE + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * SIDE));
  return table;
})();

/**
 * The 64-bit perceptual hash (pHash) of an image, and of its mirror image, as the low and high 32 bits
 * each: the image as displayed, in grayscale, squeezed to 32 × 32; its 8 × 8 lowest DCT frequencies; a bit
 * per frequency, set where the coefficient is at least the median of the 63 besides the constant one
 * (as imagededup computes it). Mirroring negates the coefficients of odd horizontal frequency, so the
 * mirror's hash costs nothing more.
 */
export async function perceptualHash(
  input: Buffer | string,
): Promise<{ hash: Uint32Array; mirrored: Uint32Array }> {
  const pixels = await sharp(input)
    .rotate()
    .grayscale()
    .resize(SIDE, SIDE, { fit: 'fill', kernel: 'lanczos3' })
    .raw()
    .toBuffer();
  return hashFromPixels(pixels);
}

/** The hashes of 32 × 32 grayscale pixels (row-major). */
export function hashFromPixels(pixels: Uint8Array): { hash: Uint32Array; mirrored: Uint32Array } {
  // Rows first: for each image row y and horizontal frequency u, Σx p(x,y) cos(…u…).
  const rows = new Float64Array(SIDE * KEEP);
  for (let y = 0; y < SIDE; y++)
    for (let u = 0; u < KEEP; u++) {
      let sum = 0;
      for (let x = 0; x < SIDE; x++) sum += pixels[y * SIDE + x]! * COSINES[u * SIDE + x]!;
      rows[y * KEEP + u] = sum;
    }
  // Then columns: coefficient (v, u) for vertical frequency v.
  const coefficients = new Float64Array(KEEP * KEEP);
  for (let v = 0; v < KEEP; v++)
    for (let u = 0; u < KEEP; u++) {
      let sum = 0;
      for (let y = 0; y < SIDE; y++) sum += rows[y * KEEP + u]! * COSINES[v * SIDE + y]!;
      coefficients[v * KEEP + u] = sum;
    }
  const mirroredCoefficients = coefficients.map((c, i) => ((i % KEEP) % 2 === 1 ? -c : c));
  return { hash: bits(coefficients), mirrored: bits(mirroredCoefficients) };
}

function bits(coefficients: Float64Array): Uint32Array {
  const median = medianOf(coefficients.subarray(1));
  const out = new Uint32Array(2);
  for (let i = 0; i < coefficients.length; i++) if (coefficients[i]! >= median) out[i >> 5]! |= 1 << (i & 31);
  return out;
}

function medianOf(values: Float64Array): number {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Bits that differ between two 64-bit hashes (0 to 64). */
export function hammingDistance(a: Uint32Array, b: Uint32Array, aOffset = 0, bOffset = 0): number {
  return popcount(a[aOffset]! ^ b[bOffset]!) + popcount(a[aOffset + 1]! ^ b[bOffset + 1]!);
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}
