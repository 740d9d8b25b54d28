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
/** Best coarse correlation below which a pair is judged distinct without refining (see matchImages). */
const GRID_FLOOR = 0.85;
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
  const candidates: Layout[] = [];
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
      const grid = gridSearch(big.lightness8, 16, probe, 8, ratio, smallest);
      if (grid.length > 0) candidates.push({ big, small, transform, ratio, minSide: smallest, grid });
    }
  }
  candidates.sort((x, y) => y.grid[0]!.score - x.grid[0]!.score);
  // Edited copies score 0.9 or more on the coarse grid (crops of 70 % between its steps, lightened copies
  // with clipped highlights: 0.905 at the lowest); nine in ten pairs of distinct photos score under 0.85.
  const gridBest = candidates[0]?.grid[0]?.score ?? 0;
  if (gridBest < GRID_FLOOR) return NO_MATCH;
  // Refining is the costly part: only the two most promising ways of laying one image over the other.
  let best: { layout: Layout; rectangle: Scored } | undefined;
  for (const layout of candidates.slice(0, 2)) {
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
    );
    if (!best || rectangle.score > best.rectangle.score) best = { layout, rectangle };
  }
  if (!best) return NO_MATCH;
  const { big, small, transform, ratio } = best.layout;
  const probe = probeOf(small, 'lightness32', 32, transform)!;
  const rectangle = refine(
    big.lightness32,
    64,
    probe,
    32,
    ratio,
    best.layout.minSide,
    [best.rectangle],
    0.0125,
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
  grid: Scored[];
}

type Plane = Uint8Array | Int8Array | Float32Array;

const columnIndex = new Int32Array(32);
const columnWeight = new Float32Array(32);

/** Samples `plane` (side × side) over `r` at n × n points, bilinearly, into `out`. */
function sampleRect(plane: Plane, side: number, r: Rectangle, n: number, out: Float32Array): void {
  for (let x = 0; x < n; x++) {
    const fx = (r.x0 + ((x + 0.5) / n) * r.w) * side - 0.5;
    const ix = fx <= 0 ? 0 : fx >= side - 2 ? side - 2 : Math.floor(fx);
    columnIndex[x] = ix;
    columnWeight[x] = fx <= ix ? 0 : fx >= ix + 1 ? 1 : fx - ix;
  }
  for (let y = 0; y < n; y++) {
    const fy = (r.y0 + ((y + 0.5) / n) * r.h) * side - 0.5;
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
  sampleRect(plane, side, { x0: 0, y0: 0, w: 1, h: 1 }, n, plain);
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

/** Correlation of a normalised probe with the plane sampled over `r`. */
function correlate(plane: Plane, side: number, probe: Float32Array, n: number, r: Rectangle): number {
  sampleRect(plane, side, r, n, scratch);
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

/** The rectangle w wide at (x0, y0), its height tied by `ratio`; undefined outside the limits. */
function rectangleAt(
  w: number,
  x0: number,
  y0: number,
  ratio: number,
  minSide: number,
): Rectangle | undefined {
  const h = w * ratio;
  // A little over 1 in height is rounding in the two images' sizes.
  if (w > 1.0001 || w < minSide || h > 1.03 || h < minSide) return undefined;
  const hh = Math.min(1, h);
  return { x0: Math.max(0, Math.min(1 - w, x0)), y0: Math.max(0, Math.min(1 - hh, y0)), w, h: hh };
}

/**
 * The best three rectangles of a plane on a grid: widths from minSide to 1 in steps of 0.05, heights tied
 * to widths by the two images' proportions (a crop, then any uniform resize, keeps aspect × fx / fy),
 * positions every 0.05 of a side.
 */
function gridSearch(
  plane: Plane,
  side: number,
  probe: Float32Array,
  n: number,
  ratio: number,
  minSide: number,
): Scored[] {
  const top: Scored[] = [];
  for (let w = 1; w >= minSide - 1e-9; w -= GRID_STEP) {
    const h = Math.min(1, w * ratio);
    const stepsX = Math.round((1 - w) / GRID_STEP);
    const stepsY = Math.round((1 - h) / GRID_STEP);
    for (let iy = 0; iy <= stepsY; iy++)
      for (let ix = 0; ix <= stepsX; ix++) {
        const x0 = stepsX === 0 ? 0 : ((1 - w) * ix) / stepsX;
        const y0 = stepsY === 0 ? 0 : ((1 - h) * iy) / stepsY;
        const r = rectangleAt(w, x0, y0, ratio, minSide);
        if (!r) continue;
        const score = correlate(plane, side, probe, n, r);
        if (top.length < 3 || score > top[top.length - 1]!.score) {
          top.push({ ...r, score });
          top.sort((p, q) => q.score - p.score);
          if (top.length > 3) top.pop();
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
): Scored {
  let best: Scored | undefined;
  for (const start of starts) {
    let r: Scored = { ...start, score: correlate(plane, side, probe, n, start) };
    for (let step = firstStep; step >= 0.003; step /= 2) {
      for (let moved = true; moved; ) {
        moved = false;
        for (const [dw, dx, dy] of [
          [step, 0, 0],
          [-step, 0, 0],
          [0, step, 0],
          [0, -step, 0],
          [0, 0, step],
          [0, 0, -step],
        ] as const) {
          // Growing or shrinking keeps the centre where it is.
          const next = rectangleAt(
            r.w + dw,
            r.x0 + dx - dw / 2,
            r.y0 + dy - (dw * ratio) / 2,
            ratio,
            minSide,
          );
          if (!next) continue;
          const score = correlate(plane, side, probe, n, next);
          if (score > r.score + 1e-6) {
            r = { ...next, score };
            moved = true;
          }
        }
      }
    }
    if (!best || r.score > best.score) best = r;
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
  sampleRect(big.a16, 32, r, n, qa);
  sampleRect(big.b16, 32, r, n, qb);
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
