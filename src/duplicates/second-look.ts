import type { PlaneCache } from '../collection/plane-cache.ts';
import { type ImagePlanes, imagePlanes } from '../collection/planes.ts';
import type { ImageCollection } from '../collection/store.ts';
import type { ImageRecord } from '../collection/types.ts';
import { RisError } from '../errors.ts';
import { localMatcher, type PairMatcher } from './copies.ts';

/**
 * The images of a collection as the second look needs them, by row of its stored vectors: records read
 * once, and pixels decoded once (or found in the cache of an earlier run), several at a time in the
 * background (`prefetch`) while pairs are compared (by `matcher`: on this thread or on worker threads).
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
    private readonly matcher: PairMatcher = localMatcher,
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
    return (await this.sameMany([a], [b]))[0];
  }

  /**
   * `same` of each pair (first[i], second[i]), in order; the pixel comparisons of all of them go to the
   * matcher at once, so they can run side by side. The answers do not depend on how they were spread.
   */
  async sameMany(first: ArrayLike<number>, second: ArrayLike<number>): Promise<(boolean | undefined)[]> {
    const out: (boolean | undefined)[] = [];
    const compared: number[] = [];
    const records = await Promise.all(
      Array.from(first, (a, i) => Promise.all([this.record(a), this.record(second[i]!)])),
    );
    for (const [i, [ra, rb]] of records.entries()) {
      out.push(!ra || !rb ? undefined : ra.sha256 === rb.sha256);
      if (out[i] === false) compared.push(i);
    }
    const loaded = new Map<number, ImagePlanes>();
    await Promise.all(
      compared.flatMap((i) =>
        [first[i]!, second[i]!].map(async (row) => {
          const planes = await this.planesOf(row);
          if (planes) loaded.set(row, planes);
        }),
      ),
    );
    const pixels = compared.filter((i) => loaded.has(first[i]!) && loaded.has(second[i]!));
    for (const i of compared) if (!loaded.has(first[i]!) || !loaded.has(second[i]!)) out[i] = undefined;
    if (pixels.length === 0) return out;
    const copies = await this.matcher.copies(
      this,
      Uint32Array.from(pixels, (i) => first[i]!),
      Uint32Array.from(pixels, (i) => second[i]!),
      (row) => loaded.get(row)!,
    );
    for (const [j, i] of pixels.entries()) out[i] = copies[j] === 1;
    return out;
  }

  /** Lets the matcher forget this look's images. */
  close(): void {
    this.matcher.release(this);
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
