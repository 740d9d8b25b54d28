// The checks of the second look over the rectangle its search found: the colours and the fine detail.
import type { ImagePlanes } from '../collection/planes.ts';
import { climb, fullFrame, normalise, type Rectangle, sampleRect, type Transform } from './sampling.ts';

/**
 * How far the colours of `small` are from those of `big` over the rectangle, in Lab ΔE: per cell of a
 * 16 × 16 grid, the distance of (a, b) after fitting one image's colours to the other's by a scale (a
 * lighter, darker or faded copy has stronger or weaker colours of the same hues) and a shift (a warmer or
 * cooler white balance), the 90th percentile over the cells, so a motorbike painted another colour on the
 * same white background counts; measured both ways and the larger kept. Infinite where the two images'
 * colour patterns do not go together (correlation under 0.7 while either varies by ΔE 8 or more): a
 * red motorbike's colours fitted to a black one's faint ones leave little (ΔE 11 on Caltech's studio
 * shots), but they do not correlate (−0.06), where a copy faded to a fifth and saved at JPEG quality 15
 * still does (0.92 or more), and a warmer copy 0.96. 0 where either image is grayscale.
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
  if (!patternsAgree(pa, pb, qa, qb)) return Number.POSITIVE_INFINITY;
  return Math.max(scaledDifference(qa, qb, pa, pb), scaledDifference(pa, pb, qa, qb));
}

/** Correlation of colour patterns (about their means) from which two images can be one picture. */
const PATTERN_AGREEMENT = 0.7;
/** Spread of colour (ΔE, root mean square about the mean) below which an image has no pattern to compare. */
const PATTERN_SPREAD = 8;

function patternsAgree(pa: Float32Array, pb: Float32Array, qa: Float32Array, qb: Float32Array): boolean {
  const cells = pa.length;
  const mean = (v: Float32Array) => v.reduce((sum, x) => sum + x, 0) / cells;
  const [mpa, mpb, mqa, mqb] = [mean(pa), mean(pb), mean(qa), mean(qb)];
  let pq = 0;
  let pp = 0;
  let qq = 0;
  for (let i = 0; i < cells; i++) {
    const [xa, xb, ya, yb] = [pa[i]! - mpa, pb[i]! - mpb, qa[i]! - mqa, qb[i]! - mqb];
    pq += xa * ya + xb * yb;
    pp += xa * xa + xb * xb;
    qq += ya * ya + yb * yb;
  }
  if (Math.sqrt(Math.max(pp, qq) / cells) < PATTERN_SPREAD) return true;
  return pp > 0 && qq > 0 && pq / Math.sqrt(pp * qq) >= PATTERN_AGREEMENT;
}

/**
 * The 90th percentile over cells of |(a, b) − (s·(fromA, fromB) + t)|: s scales the colours about their
 * mean, fitted within ¼–4 (a copy faded to a quarter of its colour still fits; a lighter or darker one
 * changes by less than 2), and t shifts them all, up to ΔE 20 (a warmer or cooler white balance).
 */
function scaledDifference(
  a: Float32Array,
  b: Float32Array,
  fromA: Float32Array,
  fromB: Float32Array,
): number {
  const cells = a.length;
  const mean = (v: Float32Array) => v.reduce((sum, x) => sum + x, 0) / cells;
  const [ma, mb, mfa, mfb] = [mean(a), mean(b), mean(fromA), mean(fromB)];
  let dot = 0;
  let norm = 0;
  for (let i = 0; i < cells; i++) {
    const [fa, fb] = [fromA[i]! - mfa, fromB[i]! - mfb];
    dot += fa * (a[i]! - ma) + fb * (b[i]! - mb);
    norm += fa * fa + fb * fb;
  }
  const scale = Math.max(0.25, Math.min(4, norm > 0 ? dot / norm : 1));
  let ta = ma - scale * mfa;
  let tb = mb - scale * mfb;
  const shift = Math.hypot(ta, tb);
  if (shift > MAX_SHIFT) [ta, tb] = [(ta * MAX_SHIFT) / shift, (tb * MAX_SHIFT) / shift];
  const differences = new Float32Array(cells);
  for (let i = 0; i < cells; i++)
    differences[i] = Math.hypot(a[i]! - scale * fromA[i]! - ta, b[i]! - scale * fromB[i]! - tb);
  return differences.sort()[Math.floor(cells * 0.9)]!;
}

/** The largest shift of every colour a copy may have (Lab a, b): a white balance, not a repaint. */
const MAX_SHIFT = 20;

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
