import type { ImagePlanes } from '../collection/planes.ts';
import { type Match, matchImages } from './match.ts';

/**
 * Correlation of lightness from which the second look calls one image an edit of the other. Edited copies
 * of Caltech101 (mirror, crop to 70 %, JPEG quality 15, resize to 25 %, grayscale) score 0.96 or more,
 * copies lightened by 30 % down to 0.92 (clipped highlights); distinct photos that the embedding finds
 * alike score 0.84 at the 99th percentile. It holds for every model: it looks at pixels.
 */
export const PIXEL_MATCH = 0.93;
/**
 * Colour difference (Lab ΔE, see colourDifference) up to which two colour images can be one picture.
 * Edited copies (lighter, darker, faded, warmer or cooler, re-saved) stay under 8, lightened ones under 22
 * (98 % under 15); the same product shot in another paint differs by 20 to 100, or has colours of another
 * pattern altogether (infinite).
 */
export const COLOUR_LIMIT = 15;

/**
 * Correlation of fine detail (see Match.detail) from which the pixels are the same pixels: edited copies
 * score 0.84 or more but for a few crops of fine textures (starfish: 0.45); two studio photos of one
 * motorbike model in one pose agree in lightness at 0.93 to 0.98 but in detail 0.72 at the median.
 */
export const DETAIL_MATCH = 0.75;

/** Whether the second look sees one image as an edit of the other. */
export function isCopy(match: Match): boolean {
  return match.lightness >= PIXEL_MATCH && match.detail >= DETAIL_MATCH && match.colour <= COLOUR_LIMIT;
}

/** The second look's verdict on two images: isCopy of their match, measuring no more than it needs. */
export function judgeCopy(a: ImagePlanes, b: ImagePlanes): boolean {
  return isCopy(matchImages(a, b, { detailFrom: PIXEL_MATCH }));
}

/**
 * Where the second look's pixel comparisons run: on this thread (`localMatcher`), or spread over worker
 * threads (src/node/match-threads.ts). Every matcher gives the same answers, in the order asked.
 */
export interface PairMatcher {
  /**
   * For each i, 1 when judgeCopy(planes(first[i]), planes(second[i])), else 0. Images are named
   * by numbers that keep their meaning within one `session` (any object: a search's rows), so a matcher
   * on other threads sends each image's planes there once.
   */
  copies(
    session: object,
    first: Uint32Array,
    second: Uint32Array,
    planes: (image: number) => ImagePlanes,
  ): Promise<Uint8Array>;
  /** Forgets what was kept for a session (the planes sent to other threads). */
  release(session: object): void;
}

/** Comparisons on this thread, letting the event loop run every 20 ms (a server answers meanwhile). */
export const localMatcher: PairMatcher = {
  async copies(_session, first, second, planes) {
    const out = new Uint8Array(first.length);
    let lastPause = performance.now();
    for (let i = 0; i < first.length; i++) {
      if (performance.now() - lastPause > 20) {
        await new Promise((resolve) => setImmediate(resolve));
        lastPause = performance.now();
      }
      out[i] = judgeCopy(planes(first[i]!), planes(second[i]!)) ? 1 : 0;
    }
    return out;
  },
  release() {},
};
