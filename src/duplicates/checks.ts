// The checks of the second look over the rectangle its search found: the colours and the fine detail.
import type { ImagePlanes } from '../collection/planes.ts';
import { climb, fullFrame, normalise, type Rectangle, sampleRect, type Transform } from './sampling.ts';

/**
 * How far the colours of `small` are from those of `big` over the rectangle: per cell of a 16 × 16 grid,
 * the Lab distance of (a, b) after scaling one image's colours by one factor (a lighter, darker or faded
 * copy has stronger or weaker colours of the same hues), and the 90th percentile over the cells, so a
 * motorbike painted another colour on the same white background counts. Measured both ways, each image's
 * colours scaled to the other's, and the larger kept: a red motorbike's colours scaled down come near a
 * black one's faint colours, but those faint colours, of other hues, cannot be scaled up into red (on
 * Caltech's studio shots ΔE 16, where one way alone gave 12.6 and called them one picture). 0 where
 * either image is grayscale.
 */
export function colourDifference(
  big: ImagePlanes,
  small: ImagePlanes,
  transform: Transform,
  r: Rectangle,
): number {
  if (big.chroma < 6 || small.chroma < 6) return 0;
  const n = 16;
  const pa = fullFrame(small.a16, 32, n, transform);
  const pb = fullFrame(small.b16, 32, n, transform);
  const qa = new Float32Array(n * n);
  const qb = new Float32Array(n * n);
  sampleRect(big.a16, 32, r.x0, r.y0, r.w, r.h, n, qa);
  sampleRect(big.b16, 32, r.x0, r.y0, r.w, r.h, n, qb);
  return Math.max(scaledDifference(qa, qb, pa, pb), scaledDifference(pa, pb, qa, qb));
}

/**
 * The 90th percentile over cells of |(a, b) − s·(fromA, fromB)|, s the best fit within ¼–4 (a copy faded to
 * a quarter of its colour still fits; a lighter or darker one changes by less than 2).
 */
function scaledDifference(
  a: Float32Array,
  b: Float32Array,
  fromA: Float32Array,
  fromB: Float32Array,
): number {
  const cells = a.length;
  let dot = 0;
  let norm = 0;
  for (let i = 0; i < cells; i++) {
    dot += fromA[i]! * a[i]! + fromB[i]! * b[i]!;
    norm += fromA[i]! * fromA[i]! + fromB[i]! * fromB[i]!;
  }
  const scale = Math.max(0.25, Math.min(4, norm > 0 ? dot / norm : 1));
  const differences = new Float32Array(cells);
  for (let i = 0; i < cells; i++)
    differences[i] = Math.hypot(a[i]! - scale * fromA[i]!, b[i]! - scale * fromB[i]!);
  return differences.sort()[Math.floor(cells * 0.9)]!;
}

/** Each sample less the mean of its 3 × 3 neighbourhood (fewer at the edges). */
function highPass(v: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * n);
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++) {
      let sum = 0;
      let count = 0;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy < 0 || yy >= n || xx < 0 || xx >= n) continue;
          sum += v[yy * n + xx]!;
          count++;
        }
      out[y * n + x] = v[y * n + x]! - sum / count;
    }
  return out;
}

/** The detail correlation over the rectangle, refined around it by halving steps (see Match.detail). */
export function refineDetail(
  big: ImagePlanes,
  small: ImagePlanes,
  transform: Transform,
  ratio: number,
  minSide: number,
  start: Rectangle,
): number {
  const n = 32;
  const probe = normalise(highPass(fullFrame(small.lightness32, 64, n, transform), n));
  if (!probe) return 0;
  const q = new Float32Array(n * n);
  const score = (x0: number, y0: number, w: number, h: number) => {
    sampleRect(big.lightness32, 64, x0, y0, w, h, n, q);
    const a = highPass(q, n);
    let ab = 0;
    let aa = 0;
    for (let i = 0; i < n * n; i++) {
      ab += a[i]! * probe[i]!;
      aa += a[i]! * a[i]!;
    }
    return aa > 0 ? ab / Math.sqrt(aa) : 0;
  };
  return climb(start, ratio, minSide, 1 / 128, 1 / 512, score).score;
}
