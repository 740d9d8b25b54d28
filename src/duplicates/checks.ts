// The checks of the second look over the rectangle its search found: the colours and the fine detail.
import type { ImagePlanes } from '../collection/planes.ts';
import { climb, fullFrame, normalise, type Rectangle, sampleRect, type Transform } from './sampling.ts';

/**
 * How far the colours of `small` are from those of `big` over the rectangle: per cell of a 16 × 16 grid,
 * the Lab distance of (a, b) after scaling small's colours by one factor (a lighter or darker copy has
 * stronger or weaker colours), and the 90th percentile over the cells, so a motorbike painted another
 * colour on the same white background counts. 0 where either image is grayscale.
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
  let pq = 0;
  let pp = 0;
  for (let i = 0; i < n * n; i++) {
    pq += pa[i]! * qa[i]! + pb[i]! * qb[i]!;
    pp += pa[i]! * pa[i]! + pb[i]! * pb[i]!;
  }
  const scale = Math.max(0.6, Math.min(1.6, pp > 0 ? pq / pp : 1));
  const differences = new Float32Array(n * n);
  for (let i = 0; i < n * n; i++)
    differences[i] = Math.hypot(qa[i]! - scale * pa[i]!, qb[i]! - scale * pb[i]!);
  return differences.sort()[Math.floor(n * n * 0.9)]!;
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
