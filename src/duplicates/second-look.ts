import type { ImageCollection } from '../collection/store.ts';
import type { ImageRecord } from '../collection/types.ts';
import { RisError } from '../errors.ts';
import { type Match, matchImages } from './match.ts';
import type { PlaneCache } from './plane-cache.ts';
import { type ImagePlanes, imagePlanes } from './planes.ts';

/**
 * Correlation of lightness from which the second look calls one image an edit of the other. Edited copies
 * of Caltech101 (mirror, crop to 70 %, JPEG quality 15, resize to 25 %, grayscale) score 0.96 or more,
 * copies lightened by 30 % down to 0.92 (clipped highlights); distinct photos that the embedding finds
 * alike score 0.84 at the 99th percentile. It holds for every model: it looks at pixels.
 */
export const PIXEL_MATCH = 0.93;
/**
 * Colour difference (Lab ΔE, see matchImages) up to which two colour images can be one picture. Edited
 * copies stay under 8 (lightened ones under 22, 98 % under 15); the same product shot in another paint
 * differs by 20 to 100.
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

/**
 * The images of a collection as the second look needs them, by row of its stored vectors: records read
 * once, and pixels decoded once (or found in the cache of an earlier run), several at a time in the
 * background (`prefetch`) while pairs are compared.
 */
export class SecondLook {
  /** Images that could not be read or decoded (moved, deleted, damaged): their pairs are not compared. */
  unreadable = 0;
  private readonly records = new Map<number, Promise<ImageRecord | undefined>>();
  private readonly planes = new Map<number, Promise<ImagePlanes | undefined>>();
  private readonly queue: number[] = [];
  private next = 0;
  private reading = 0;

  constructor(
    private readonly collection: ImageCollection,
    private readonly ids: Uint32Array,
    private readonly concurrency: number,
    private readonly cache: PlaneCache,
  ) {}

  record(row: number): Promise<ImageRecord | undefined> {
    let found = this.records.get(row);
    if (!found) {
      found = this.collection.get(this.ids[row]!);
      this.records.set(row, found);
    }
    return found;
  }

  /** Rows whose pixels will be wanted, in the order they will be. */
  prefetch(rows: Iterable<number>): void {
    for (const row of rows) this.queue.push(row);
    this.pump();
  }

  /**
   * Whether two images are one picture: the same bytes, or one an edit of the other in the eyes of the
   * pixel comparison. Undefined when either cannot be read.
   */
  async same(a: number, b: number): Promise<boolean | undefined> {
    const [ra, rb] = await Promise.all([this.record(a), this.record(b)]);
    if (!ra || !rb) return undefined;
    if (ra.sha256 === rb.sha256) return true;
    const [pa, pb] = await Promise.all([this.planesOf(a), this.planesOf(b)]);
    if (!pa || !pb) return undefined;
    return isCopy(matchImages(pa, pb));
  }

  private planesOf(row: number): Promise<ImagePlanes | undefined> {
    if (!this.planes.has(row)) this.start(row);
    return this.planes.get(row)!;
  }

  private pump(): void {
    while (this.reading < this.concurrency && this.next < this.queue.length) {
      const row = this.queue[this.next++]!;
      if (!this.planes.has(row)) this.start(row);
    }
    if (this.next === this.queue.length) {
      this.queue.length = 0;
      this.next = 0;
    }
  }

  private start(row: number): void {
    this.reading++;
    this.planes.set(
      row,
      this.read(row).finally(() => {
        this.reading--;
        this.pump();
      }),
    );
  }

  private async read(row: number): Promise<ImagePlanes | undefined> {
    const record = await this.record(row);
    if (!record) return undefined; // removed meanwhile
    const cached = this.cache.get(record.sha256);
    if (cached) return { ...cached, width: record.width, height: record.height };
    try {
      const planes = await imagePlanes(await this.collection.readImage(record), record.width, record.height);
      this.cache.set(record.sha256, planes);
      return planes;
    } catch (error) {
      // Gone (IMAGE_NOT_FOUND) or not decodable any more: the pair cannot be judged.
      if (error instanceof RisError || error instanceof Error) {
        this.unreadable++;
        return undefined;
      }
      throw error;
    }
  }
}
