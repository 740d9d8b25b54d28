import { Embedder } from '../embed/embedder.ts';
import { CollectionError, ModelError } from '../errors.ts';
import type { CollectionOptions } from './types.ts';

/**
 * A collection's model, loaded on first use and checked to be the very model its vectors came from (a
 * different file under the same name would give vectors from another space). A failed load is forgotten,
 * so a later call tries again: the file may be back by then.
 */
export class CollectionModel {
  private embedderPromise: Promise<Embedder> | undefined;

  constructor(
    private readonly collection: { name: string; model: string; modelId: string },
    private readonly options: CollectionOptions['embedder'],
  ) {}

  /** Uses an embedder already made for this model (by whoever created the collection). */
  adopt(embedder: Embedder): void {
    this.embedderPromise = Promise.resolve(embedder);
  }

  embedder(): Promise<Embedder> {
    const { name, model, modelId } = this.collection;
    this.embedderPromise ??= Embedder.create({ model, ...this.options }).then(
      (embedder) => {
        if (embedder.modelId !== modelId) {
          void embedder.close();
          throw new CollectionError(
            'MODEL_MISMATCH',
            `Collection "${name}" was built with ${modelId} but the model on this machine is ${embedder.modelId}; ` +
              'put that very model file back, or build a new collection',
          );
        }
        return embedder;
      },
      (error: unknown) => {
        if (error instanceof ModelError && error.code === 'MODEL_NOT_FOUND') {
          throw new ModelError(
            'MODEL_NOT_FOUND',
            `Collection "${name}" was built with the model file ${model}, which is missing on this machine; put it there (its vectors need that very model)`,
            { cause: error },
          );
        }
        throw error;
      },
    );
    this.embedderPromise.catch(() => {
      this.embedderPromise = undefined;
    });
    return this.embedderPromise;
  }

  /** Closes the embedder if one was made. */
  async close(): Promise<void> {
    const embedder = await this.embedderPromise?.catch(() => undefined);
    this.embedderPromise = undefined;
    await embedder?.close();
  }
}
