import type { ImagePlanes } from './planes.ts';

/**
 * The second look at two images the embedding found alike: is one of them the other one cropped,
 * mirrored, turned by a quarter, resized, re-encoded, lightened or darkened, or made grayscale? One image
 * is looked for as a rectangle of the other (a crop keeps its content, so it lines up with part of its
 * source after scaling), in lightness first at 8, then 16, then 32 points per side, and the colours of the
 * two are compared over that rectangle (unless one of them is grayscale). Unlike the embedding, which
 * finds two photos of one motorbike model alike, this asks whether the pixels are the same pixels.
 */

/** How one image is laid over the other. */
export type Transform = 'identity' | 'mirror' | 'rotate90' | 'rotate270';
/** Steps of the coarse search in size and position, in fractions of a side. */
const GRID_STEP = 0.05;
/**
 * The first, sparse look: three sizes, positions every tenth of a side. Edited copies score 0.72 or more
 * here (crops between its sizes the lowest); three in four pairs of distinct photos score less than 0.7
 * and are judged on it alone.
 */
const SPARSE_SIZES = [1, 0.85, 0.7] as const;
const SPARSE_FLOOR = 0.7;
/** Best coarse correlation below which a pair is judged distinct without refining (see matchImages). */
const GRID_FLOOR = 0.85;
/** A refined correlation past which the other starting rectangles are not tried. */
const SURE = 0.985;
/** Correlation at 16 points per side below which the finest look is not taken (copies: 0.925 and more). */
const REFINED_FLOOR = 0.9;
const TRANSFORMS: Transform[] = ['identity', 'mirror', 'rotate90', 'rotate270'];

/** A rectangle of an image, in fractions of its sides. */
export interface Rectangle {
  x0: number;
  y0: number;
  w: number;
  h: number;
}

export interface Match {
  /** Correlation of lightness at 32 points per side over the best rectangle: 1 for the same pixels. */
  lightness: number;
  /** Colour difference over the rectangle (90th percentile of Lab ΔE over 16 × 16 cells, after scaling for a lighter or darker copy); 0 where either image is grayscale. */
  colour: number;
  transform: Transform;
  /** The part of the larger image that the other one shows (1 × 1: all of it). */
  rectangle: Rectangle;
}

export interface MatchOptions {
  /** The smallest crop looked for, as a fraction of each side. Default 0.6. */
  minSide?: number;
}

const NO_MATCH: Match = {
  lightness: 0,
  colour: 0,
  transform: 'identity',
  rectangle: { x0: 0, y0: 0, w: 1, h: 1 },
};

/** How well one image is the other one edited (see the top of this file). */
export function matchImages(a: ImagePlanes, b: ImagePlanes, options: MatchOptions = {}): Match {
  const minSide = options.minSide ?? 0.6;
  const layouts: Layout[] = [];
  for (const [big, small] of [
    [a, b],
    [b, a],
  ] as const) {
    for (const transform of TRANSFORMS) {
      const probe = probeOf(small, 'lightness8', 8, transform);
      if (!probe) continue;
      const turned = transform === 'rotate90' || transform === 'rotate270';
      const aspect = turned ? small.height / small.width : small.width / small.height;
      const ratio = big.width / big.height / aspect;
      // A copy turned by a quarter is looked for whole (turned and cropped copies are rare).
      const smallest = turned ? 0.97 : minSide;
      const sparse = gridSearch(big.lightness8, 16, probe, 8, ratio, smallest, SPARSE_SIZES, 0.1, 1);
      if (sparse.length > 0)
        layouts.push({
          big,
          small,
          transform,
          ratio,
          minSide: smallest,
          probe,
          sparse: sparse[0]!.score,
          grid: sparse,
        });
    }
  }
  layouts.sort((x, y) => y.sparse - x.sparse);
  if (layouts.length === 0 || layouts[0]!.sparse < SPARSE_FLOOR) return NO_MATCH;
  // The full grid for the two most promising ways of laying one image over the other.
  const promising = layouts.slice(0, 2);
  for (const layout of promising) {
    const grid = gridSearch(
      layout.big.lightness8,
      16,
      layout.probe,
      8,
      layout.ratio,
      layout.minSide,
      undefined,
      GRID_STEP,
      3,
    );
    if (grid.length > 0) layout.grid = grid;
  }
  promising.sort((x, y) => y.grid[0]!.score - x.grid[0]!.score);
  // Edited copies score 0.9 or more on the coarse grid (crops of 70 % between its steps, lightened copies
  // with clipped highlights: 0.905 at the lowest); nine in ten pairs of distinct photos score under 0.85.
  const gridBest = promising[0]!.grid[0]!.score;
  if (gridBest < GRID_FLOOR) return NO_MATCH;
  let best: { layout: Layout; rectangle: Scored } | undefined;
  for (const layout of promising) {
    if (layout.grid[0]!.score < gridBest - 0.05) continue;
    const probe = probeOf(layout.small, 'lightness16', 16, layout.transform)!;
    const rectangle = refine(
      layout.big.lightness16,
      32,
      probe,
      16,
      layout.ratio,
      layout.minSide,
      layout.grid,
      0.025,
      0.006,
    );
    if (!best || rectangle.score > best.rectangle.score) best = { layout, rectangle };
  }
  if (best!.rectangle.score < REFINED_FLOOR) return NO_MATCH;
  const { big, small, transform, ratio } = best!.layout;
  const probe = probeOf(small, 'lightness32', 32, transform)!;
  const rectangle = refine(
    big.lightness32,
    64,
    probe,
    32,
    ratio,
    best!.layout.minSide,
    [best!.rectangle],
    0.0125,
    0.003,
  );
  return {
    lightness: rectangle.score,
    colour: colourDifference(big, small, transform, rectangle),
    transform,
    rectangle: { x0: rectangle.x0, y0: rectangle.y0, w: rectangle.w, h: rectangle.h },
  };
}

interface Scored extends Rectangle {
  score: number;
}

interface Layout {
  big: ImagePlanes;
  small: ImagePlanes;
  transform: Transform;
  /** Height of a rectangle of `big` as a multiple of its width (both in fractions of big's sides). */
  ratio: number;
  /** The smallest side of a rectangle looked at. */
  minSide: number;
  probe: Float32Array;
  /** The best correlation on the sparse grid, and the best rectangles of the last grid searched. */
  sparse: number;
  grid: Scored[];
}

type Plane = Uint8Array | Int8Array | Float32Array;

const columnIndex = new Int32Array(32);
const columnWeight = new Float32Array(32);

/** Samples `plane` (side × side) over `r` at n × n points, bilinearly, into `out`. */
function sampleRect(
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
function fullFrame(plane: Plane, side: number, n: number, transform: Transform): Float32Array {
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
function normalise(v: Float32Array): Float32Array | undefined {
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

const probes = new WeakMap<ImagePlanes, Map<string, Float32Array | undefined>>();

/** An image's whole frame at n points per side under `transform`, normalised (made once per image). */
function probeOf(
  image: ImagePlanes,
  plane: 'lightness8' | 'lightness16' | 'lightness32',
  n: number,
  transform: Transform,
): Float32Array | undefined {
  const cache = probes.get(image) ?? new Map<string, Float32Array | undefined>();
  probes.set(image, cache);
  const key = plane + transform;
  if (!cache.has(key)) cache.set(key, normalise(fullFrame(image[plane], 2 * n, n, transform)));
  return cache.get(key);
}

const scratch = new Float32Array(32 * 32);

/** Correlation of a normalised probe with the plane sampled over the rectangle w × h at (x0, y0). */
function correlate(
  plane: Plane,
  side: number,
  probe: Float32Array,
  n: number,
  x0: number,
  y0: number,
  w: number,
  h: number,
): number {
  sampleRect(plane, side, x0, y0, w, h, n, scratch);
  const m = n * n;
  let mean = 0;
  for (let i = 0; i < m; i++) mean += scratch[i]!;
  mean /= m;
  let dot = 0;
  let norm = 0;
  for (let i = 0; i < m; i++) {
    const v = scratch[i]! - mean;
    dot += v * probe[i]!;
    norm += v * v;
  }
  return norm < 1e-6 ? 0 : dot / Math.sqrt(norm);
}

/**
 * The best `keep` rectangles of a plane on a grid: widths from 1 down to minSide in steps of `step` (or the
 * given `sizes`), heights tied to widths by the two images' proportions (a crop, then any uniform resize,
 * keeps aspect × fx / fy), positions every `step` of a side.
 */
function gridSearch(
  plane: Plane,
  side: number,
  probe: Float32Array,
  n: number,
  ratio: number,
  minSide: number,
  sizes: readonly number[] | undefined,
  step: number,
  keep: number,
): Scored[] {
  const top: Scored[] = [];
  const widths =
    sizes ?? Array.from({ length: Math.floor((1 - minSide) / step + 1e-9) + 1 }, (_, i) => 1 - i * step);
  for (const w of widths) {
    const h = Math.min(1, w * ratio);
    if (w < minSide || w * ratio > 1.03 || h < minSide) continue;
    const stepsX = Math.round((1 - w) / step);
    const stepsY = Math.round((1 - h) / step);
    for (let iy = 0; iy <= stepsY; iy++)
      for (let ix = 0; ix <= stepsX; ix++) {
        const x0 = stepsX === 0 ? 0 : ((1 - w) * ix) / stepsX;
        const y0 = stepsY === 0 ? 0 : ((1 - h) * iy) / stepsY;
        const score = correlate(plane, side, probe, n, x0, y0, w, h);
        if (top.length < keep || score > top[top.length - 1]!.score) {
          top.push({ x0, y0, w, h, score });
          top.sort((p, q) => q.score - p.score);
          if (top.length > keep) top.pop();
        }
      }
  }
  return top;
}

/** The best of the starts after moving each by halving steps in size and position while the correlation grows. */
function refine(
  plane: Plane,
  side: number,
  probe: Float32Array,
  n: number,
  ratio: number,
  minSide: number,
  starts: Rectangle[],
  firstStep: number,
  lastStep: number,
): Scored {
  let best: Scored | undefined;
  for (const start of starts) {
    let { x0, y0, w, h } = start;
    let score = correlate(plane, side, probe, n, x0, y0, w, h);
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
          const next = correlate(plane, side, probe, n, nx, ny, nw, hh);
          if (next > score + 1e-6) {
            [x0, y0, w, h, score] = [nx, ny, nw, hh, next];
            moved = true;
          }
        }
      }
    }
    if (!best || score > best.score) best = { x0, y0, w, h, score };
    if (score >= SURE) break; // the other starts cannot matter
  }
  return best!;
}

/**
 * How far the colours of `small` are from those of `big` over the rectangle: per cell of a 16 × 16 grid,
 * the Lab distance of (a, b) after scaling small's colours by one factor (a lighter or darker copy has
 * stronger or weaker colours), and the 90th percentile over the cells, so a motorbike painted another
 * colour on the same white background counts. 0 where either image is grayscale.
 */
function colourDifference(big: ImagePlanes, small: ImagePlanes, transform: Transform, r: Rectangle): number {
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
