import type { ImageCollection } from '../collection/store.ts';
import type { CropBox, ImageInput } from '../embed/image.ts';
import { RequestError, type RisError } from '../errors.ts';

interface Pending {
  input: ImageInput;
  crop: CropBox | undefined;
  resolve: (vector: Float32Array) => void;
  reject: (error: RisError) => void;
}

/**
 * Embeds the query images of one collection. Searches that arrive while a batch runs wait and go
 * together in the next forward pass; past `maxQueue` waiting searches, new ones are refused (503).
 */
export class SearchBatcher {
  private readonly queue: Pending[] = [];
  private running = false;

  constructor(
    private readonly collection: ImageCollection,
    private readonly maxQueue: number,
    private readonly maxBatch = 16,
  ) {}

  embed(input: ImageInput, crop?: CropBox): Promise<Float32Array> {
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(
        new RequestError(
          'BUSY',
          `The server is busy (${this.queue.length} searches waiting); try again in a second`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ input, crop, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      const embedder = await this.collection.embedder();
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const results = await embedder.embedBatch(batch.map(({ input, crop }) => ({ input, crop })));
          results.forEach((result, i) => {
            if (result instanceof Float32Array) batch[i]!.resolve(result);
            else batch[i]!.reject(result);
          });
        } catch (error) {
          for (const item of batch) item.reject(error as RisError);
        }
      }
    } catch (error) {
      for (const item of this.queue.splice(0)) item.reject(error as RisError);
    } finally {
      this.running = false;
    }
  }
}
