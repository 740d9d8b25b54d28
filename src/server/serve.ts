import { serve } from '@hono/node-server';
import { Collection, type CollectionOptions } from '../collection/collection.ts';
import { CollectionError, StateError } from '../errors.ts';
import { createApp, type ServerOptions } from './app.ts';

export interface ListenOptions extends Omit<ServerOptions, 'collections'> {
  port?: number;
  host?: string;
  /** Collections to serve. Default: all of them. */
  collections?: string[];
  collectionOptions?: CollectionOptions;
}

/**
 * Opens the collections and serves the page and the API; resolves once listening, with the served
 * collections' names and a function that stops the server and closes the collections.
 */
export async function listen(
  options: ListenOptions = {},
): Promise<{ url: string; collections: string[]; close: () => Promise<void> }> {
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
  const closeCollections = () => Promise.all(collections.map((c) => c.close())).then(() => undefined);
  try {
    // Load the models now, so the first search does not wait for them.
    await Promise.all(collections.map((c) => c.embedder()));
  } catch (error) {
    await closeCollections();
    throw error;
  }
  const app = createApp({ ...options, collections });
  const host = options.host ?? '127.0.0.1';
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port: options.port ?? 7860, hostname: host }, (info) => {
      resolve({
        url: `http://${urlHost(host)}:${info.port}`,
        collections: names,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
          }).then(closeCollections),
      });
    });
    server.once('error', (error: NodeJS.ErrnoException) => {
      void closeCollections();
      reject(
        error.code === 'EADDRINUSE'
          ? new StateError(
              'PORT_IN_USE',
              `Port ${options.port ?? 7860} is in use on ${host}; stop what uses it or choose another with --port`,
            )
          : error,
      );
    });
  });
}

/** The host part of the printed URL: a wildcard address is opened as localhost. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}
