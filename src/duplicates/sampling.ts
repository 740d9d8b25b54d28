// Sampling the planes of one image over a rectangle of another, turned or mirrored: what the second look's
// search (match.ts) and its checks (checks.ts) read the planes with.

/** How one image is laid over the other. */
export type Transform = 'identity' | 'mirror' | 'rotate90' | 'rotate270';

/** A rectangle of an image, in fractions of its sides. */
export interface Rectangle {
  x0: number;
  y0: number;
  w: number;
  h: number;
}

export type Plane = Uint8Array | Int8Array | Float32Array;

const columnIndex = new Int32Array(32);
const columnWeight = new Float32Array(32);

/** Samples `plane` (side × side) over `r` at n × n points, bilinearly, into `out`. */
export function sampleRect(
  plane: Plane,
  side: number,
  x0: number,
  y0: number,
  w: number,
  h: number,
  n: number,
  out: Float32Array,
): void {
  for (let x = 0; x < n; x++) {
    const fx = (x0 + ((x + 0.5) / n) * w) * side - 0.5;
    const ix = fx <= 0 ? 0 : fx >= side - 2 ? side - 2 : Math.floor(fx);
    columnIndex[x] = ix;
    columnWeight[x] = fx <= ix ? 0 : fx >= ix + 1 ? 1 : fx - ix;
  }
  for (let y = 0; y < n; y++) {
    const fy = (y0 + ((y + 0.5) / n) * h) * side - 0.5;
    const iy = fy <= 0 ? 0 : fy >= side - 2 ? side - 2 : Math.floor(fy);
    const ty = fy <= iy ? 0 : fy >= iy + 1 ? 1 : fy - iy;
    const row = iy * side;
    for (let x = 0; x < n; x++) {
      const o = row + columnIndex[x]!;
      const tx = columnWeight[x]!;
      const top = plane[o]! + (plane[o + 1]! - plane[o]!) * tx;
      const bottom = plane[o + side]! + (plane[o + side + 1]! - plane[o + side]!) * tx;
      out[y * n + x] = top + (bottom - top) * ty;
    }
  }
}

/** An n × n sampling of a whole plane, turned or flipped back as `transform` says. */
export function fullFrame(plane: Plane, side: number, n: number, transform: Transform): Float32Array {
  const plain = new Float32Array(n * n);
  sampleRect(plane, side, 0, 0, 1, 1, n, plain);
  const out = new Float32Array(n * n);
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++) {
      let sx = x;
      let sy = y;
      if (transform === 'mirror') sx = n - 1 - x;
      else if (transform === 'rotate90') {
        sx = y;
        sy = n - 1 - x;
      } else if (transform === 'rotate270') {
        sx = n - 1 - y;
        sy = x;
      }
      out[y * n + x] = plain[sy * n + sx]!;
    }
  return out;
}

/** Zero mean and unit norm; undefined for a plane too flat to match (a standard deviation under 0.3 units of lightness). */
export function normalise(v: Float32Array): Float32Array | undefined {
  let mean = 0;
  for (const x of v) mean += x;
  mean /= v.length;
  let norm = 0;
  for (let i = 0; i < v.length; i++) {
    v[i]! -= mean;
    norm += v[i]! * v[i]!;
  }
  if (norm < 0.5 * v.length) return undefined;
  const scale = 1 / Math.sqrt(norm);
  for (let i = 0; i < v.length; i++) v[i]! *= scale;
  return v;
}

/**
 * Moves a rectangle of the given aspect `ratio` (height / width, of the probed image's frame) by halving
 * steps, from `firstStep` to `lastStep` of the frame, growing, shrinking (about its centre) or shifting it
 * while `score` grows; never smaller than `minSide`. Returns where it ended with its score.
 */
export function climb(
  start: Rectangle,
  ratio: number,
  minSide: number,
  firstStep: number,
  lastStep: number,
  score: (x0: number, y0: number, w: number, h: number) => number,
): Rectangle & { score: number } {
  let { x0, y0, w, h } = start;
  let best = score(x0, y0, w, h);
  for (let step = firstStep; step >= lastStep; step /= 2) {
    for (let moved = true; moved; ) {
      moved = false;
      for (let move = 0; move < 6; move++) {
        // Growing or shrinking keeps the centre where it is.
        const dw = move === 0 ? step : move === 1 ? -step : 0;
        const dx = move === 2 ? step : move === 3 ? -step : 0;
        const dy = move === 4 ? step : move === 5 ? -step : 0;
        const nw = w + dw;
        const nh = nw * ratio;
        if (nw > 1.0001 || nw < minSide || nh > 1.03 || nh < minSide) continue;
        const hh = Math.min(1, nh);
        const nx = Math.max(0, Math.min(1 - nw, x0 + dx - dw / 2));
        const ny = Math.max(0, Math.min(1 - hh, y0 + dy - (dw * ratio) / 2));
        const next = score(nx, ny, nw, hh);
        if (next > best + 1e-6) {
          [x0, y0, w, h, best] = [nx, ny, nw, hh, next];
          moved = true;
        }
      }
    }
  }
  return { x0, y0, w, h, score: best };
}
