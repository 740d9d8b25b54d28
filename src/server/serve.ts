import { serve } from '@hono/node-server';
import { Collection, type CollectionOptions } from '../collection/collection.ts';
import { CollectionError } from '../errors.ts';
import { createApp, type ServerOptions } from './app.ts';

export interface ListenOptions extends Omit<ServerOptions, 'collections'> {
  port?: number;
  host?: string;
  /** Collections to serve. Default: all of them. */
  collections?: string[];
  collectionOptions?: CollectionOptions;
}

/** Opens the collections and serves the API; resolves once listening, with a function that stops it. */
export async function listen(
  options: ListenOptions = {},
): Promise<{ url: string; close: () => Promise<void> }> {
  const names = options.collections?.length
    ? options.collections
    : await Collection.list(options.collectionOptions?.home);
  if (names.length === 0) {
    throw new CollectionError(
      'COLLECTION_NOT_FOUND',
      'There is no collection to serve; create one with ris index <folder> --collection NAME',
    );
  }
  const collections = await Promise.all(
    names.map((name) => Collection.open(name, options.collectionOptions)),
  );
  // Load the models now, so the first search does not wait for them.
  await Promise.all(collections.map((c) => c.embedder()));
  const app = createApp({ ...options, collections });
  const host = options.host ?? '127.0.0.1';
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: options.port ?? 7860, hostname: host }, (info) => {
      resolve({
        url: `http://${host.includes(':') ? `[${host}]` : host}:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
          }).then(() => Promise.all(collections.map((c) => c.close())).then(() => undefined)),
      });
    });
  });
}
