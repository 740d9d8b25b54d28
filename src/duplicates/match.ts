import type { ImagePlanes } from '../collection/planes.ts';
import { colourDifference, refineDetail } from './checks.ts';
import {
  climb,
  fullFrame,
  normalise,
  type Plane,
  type Rectangle,
  sampleRect,
  type Transform,
} from './sampling.ts';

export type { Rectangle, Transform };

/**
 * The second look at two images the embedding found alike: is one of them the other one cropped,
 * mirrored, turned by a quarter, resized, re-encoded, lightened or darkened, or made grayscale? One image
 * is looked for as a rectangle of the other (a crop keeps its content, so it lines up with part of its
 * source after scaling), in lightness first at 8, then 16, then 32 points per side; then the fine detail
 * and the colours of the two are compared over that rectangle (colours unless one of them is grayscale).
 * Unlike the embedding, which finds two photos of one motorbike model alike, this asks whether the pixels
 * are the same pixels.
 */

/**
 * The first look: the other image slid over the larger one's 8 × 8 samples at every size from the whole
 * down to minSide. Edited copies of Caltech101 score 0.70 or more here (crops the lowest); six in ten
 * pairs of distinct photos that the embedding finds alike score less than 0.65 and are judged on it alone.
 */
const SPARSE_FLOOR = 0.65;
/**
 * The same at 16 × 16 samples, for the two best ways of laying one image over the other: copies score
 * 0.846 or more; below 0.8 a pair is distinct without refining.
 */
const GRID_FLOOR = 0.8;
/** Layouts and starting rectangles refined: those within this of the best on the grid. */
const REFINE_MARGIN = 0.02;
/** A refined correlation past which the other starting rectangles are not tried. */
const SURE = 0.985;
/** Correlation at 16 points per side below which the finest look is not taken (copies: 0.925 and more). */
const REFINED_FLOOR = 0.9;
const TRANSFORMS: Transform[] = ['identity', 'mirror', 'rotate90', 'rotate270'];

export interface Match {
  /** Correlation of lightness at 32 points per side over the best rectangle: 1 for the same pixels. */
  lightness: number;
  /**
   * Correlation of the fine detail there (each of 32 × 32 samples less the mean of its neighbours), after
   * aligning on it: photos of two motorbikes of one model in one studio pose agree in lightness, not in
   * detail.
   */
  detail: number;
  /**
   * Colour difference over the rectangle (see colourDifference: 90th percentile of Lab ΔE over 16 × 16
   * cells after fitting a scale and a white-balance shift; infinite where the colour patterns do not go
   * together); 0 where either image is grayscale.
   */
  colour: number;
  transform: Transform;
  /** The part of the larger image that the other one shows (1 × 1: all of it). */
  rectangle: Rectangle;
}

export interface MatchOptions {
  /** The smallest crop looked for, as a fraction of each side. Default 0.6. */
  minSide?: number;
  /**
   * The lightness correlation from which the fine detail is measured (about 1 ms a pair, a third of the
   * whole look); below it `detail` is 0, as for pairs turned down earlier. The second look's verdict
   * passes PIXEL_MATCH, under which no detail makes a pair a copy. Default 0: always measured.
   */
  detailFrom?: number;
}

const NO_MATCH: Match = {
  lightness: 0,
  detail: 0,
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
      const turned = transform === 'rotate90' || transform === 'rotate270';
      const aspect = turned ? small.height / small.width : small.width / small.height;
      const ratio = big.width / big.height / aspect;
      // A copy turned by a quarter is looked for whole (turned and cropped copies are rare).
      const smallest = turned ? 0.97 : minSide;
      const layout: Layout = { big, small, transform, ratio, minSide: smallest, sparse: -1, grid: [] };
      const sparse = templateSearch(layout, 8, 1);
      if (sparse.length === 0) continue;
      layout.sparse = sparse[0]!.score;
      layout.grid = sparse;
      layouts.push(layout);
    }
  }
  layouts.sort((x, y) => y.sparse - x.sparse);
  if (layouts.length === 0 || layouts[0]!.sparse < SPARSE_FLOOR) return NO_MATCH;
  // The full grid for the two most promising ways of laying one image over the other.
  const promising = layouts.slice(0, 2);
  for (const layout of promising) {
    const grid = templateSearch(layout, 16, 3);
    if (grid.length > 0) layout.grid = grid;
  }
  promising.sort((x, y) => y.grid[0]!.score - x.grid[0]!.score);
  const gridBest = promising[0]!.grid[0]!.score;
  if (gridBest < GRID_FLOOR) return NO_MATCH;
  let best: { layout: Layout; rectangle: Scored } | undefined;
  for (const layout of promising) {
    if (layout.grid[0]!.score < gridBest - REFINE_MARGIN) continue;
    const probe = probeOf(layout.small, 'lightness16', 16, layout.transform)!;
    const starts = layout.grid.filter((r) => r.score >= gridBest - REFINE_MARGIN).slice(0, 2);
    const rectangle = refine(
      layout.big.lightness16,
      32,
      probe,
      16,
      layout.ratio,
      layout.minSide,
      starts,
      1 / 32,
      1 / 128,
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
    1 / 128,
    1 / 256,
  );
  return {
    lightness: rectangle.score,
    detail:
      rectangle.score < (options.detailFrom ?? 0)
        ? 0
        : refineDetail(big, small, transform, ratio, best!.layout.minSide, rectangle),
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
  /** The best correlation on the sparse grid, and the best rectangles of the last grid searched. */
  sparse: number;
  grid: Scored[];
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

/** The two levels of the search: 8 samples per side for a first look, 16 for the full one. */
type Level = 8 | 16;
const LEVEL_PLANE = { 8: 'lightness8', 16: 'lightness16' } as const;

interface GridImage {
  pixels: Float32Array;
  /** Integral images of the pixels and their squares, (n + 1)², for the mean and spread of any window. */
  sum: Float64Array;
  squares: Float64Array;
}

const gridImages = new WeakMap<ImagePlanes, Map<Level, GridImage>>();

/** An image's whole frame at n × n points, with its integral images (made once per image and level). */
function gridImageOf(image: ImagePlanes, n: Level): GridImage {
  const levels = gridImages.get(image) ?? new Map<Level, GridImage>();
  gridImages.set(image, levels);
  const found = levels.get(n);
  if (found) return found;
  const pixels = new Float32Array(n * n);
  sampleRect(image[LEVEL_PLANE[n]], 2 * n, 0, 0, 1, 1, n, pixels);
  const sum = new Float64Array((n + 1) * (n + 1));
  const squares = new Float64Array((n + 1) * (n + 1));
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++) {
      const v = pixels[y * n + x]!;
      const at = (y + 1) * (n + 1) + x + 1;
      sum[at] = v + sum[at - 1]! + sum[at - n - 1]! - sum[at - n - 2]!;
      squares[at] = v * v + squares[at - 1]! + squares[at - n - 1]! - squares[at - n - 2]!;
    }
  const made = { pixels, sum, squares };
  levels.set(n, made);
  return made;
}

const templateScratch = new Float32Array(16 * 16);

/**
 * The other image turned as the layout says, sampled at tw × th points from its plane of the level
 * (zero mean, unit norm, in a scratch array valid until the next call).
 */
function template(
  small: ImagePlanes,
  transform: Transform,
  n: Level,
  tw: number,
  th: number,
): Float32Array | undefined {
  const out = templateScratch.subarray(0, tw * th);
  const plane = small[LEVEL_PLANE[n]];
  const side = 2 * n;
  for (let v = 0; v < th; v++)
    for (let u = 0; u < tw; u++) {
      const fx = (u + 0.5) / tw;
      const fy = (v + 0.5) / th;
      // Where this point of the laid-over image lies in the image as stored.
      const sx =
        transform === 'identity'
          ? fx
          : transform === 'mirror'
            ? 1 - fx
            : transform === 'rotate90'
              ? fy
              : 1 - fy;
      const sy =
        transform === 'identity' || transform === 'mirror' ? fy : transform === 'rotate90' ? 1 - fx : fx;
      const px = Math.max(0, Math.min(side - 1.001, sx * side - 0.5));
      const py = Math.max(0, Math.min(side - 1.001, sy * side - 0.5));
      const ix = Math.min(side - 2, Math.floor(px));
      const iy = Math.min(side - 2, Math.floor(py));
      const tx = px - ix;
      const ty = py - iy;
      const o = iy * side + ix;
      const top = plane[o]! + (plane[o + 1]! - plane[o]!) * tx;
      const bottom = plane[o + side]! + (plane[o + side + 1]! - plane[o + side]!) * tx;
      out[v * tw + u] = top + (bottom - top) * ty;
    }
  return normalise(out);
}

/**
 * Template matching on the n × n samples of the larger image: for each width from the whole side down
 * to minSide (in steps of 1/n, the height tied by the proportions: a crop, then any uniform resize, keeps
 * aspect × fx / fy), the other image squeezed to that rectangle and slid over every position, the
 * correlation from running sums. The best `keep` rectangles.
 */
function templateSearch(layout: Layout, n: Level, keep: number): Scored[] {
  const image = gridImageOf(layout.big, n);
  const top: Scored[] = [];
  for (let tw = n; tw >= Math.ceil(n * layout.minSide - 1e-9); tw--) {
    const w = tw / n;
    const h = w * layout.ratio;
    if (h > 1.03 || h < layout.minSide) continue;
    const th = Math.min(n, Math.max(1, Math.round(h * n)));
    const probe = template(layout.small, layout.transform, n, tw, th);
    if (!probe) continue;
    const count = tw * th;
    for (let oy = 0; oy + th <= n; oy++)
      for (let ox = 0; ox + tw <= n; ox++) {
        const a = oy * (n + 1) + ox;
        const b = a + tw;
        const c = a + th * (n + 1);
        const d = c + tw;
        const total = image.sum[d]! - image.sum[b]! - image.sum[c]! + image.sum[a]!;
        const spread =
          image.squares[d]! -
          image.squares[b]! -
          image.squares[c]! +
          image.squares[a]! -
          (total * total) / count;
        if (spread < 1e-6) continue;
        let dot = 0;
        for (let v = 0; v < th; v++) {
          const row = (oy + v) * n + ox;
          const trow = v * tw;
          for (let u = 0; u < tw; u++) dot += probe[trow + u]! * image.pixels[row + u]!;
        }
        const score = dot / Math.sqrt(spread);
        if (top.length < keep || score > top[top.length - 1]!.score) {
          top.push({ x0: ox / n, y0: oy / n, w, h: th / n, score });
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
    const ended = climb(start, ratio, minSide, firstStep, lastStep, (x0, y0, w, h) =>
      correlate(plane, side, probe, n, x0, y0, w, h),
    );
    if (!best || ended.score > best.score) best = ended;
    if (ended.score >= SURE) break; // the other starts cannot matter
  }
  return best!;
}
