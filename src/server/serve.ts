import type { Server } from 'node:http';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { serve } from '@hono/node-server';
import { type BuildProgress, indexCollection } from '../collection/build.ts';
import type { DatasetName } from '../collection/datasets.ts';
import type { FolderWatchOptions } from '../collection/folder-watch.ts';
import { localStore } from '../collection/local-store.ts';
import type { CollectionStore } from '../collection/store.ts';
import type { CollectionOptions } from '../collection/types.ts';
import { ArgumentError, CollectionError, RisError, StateError } from '../errors.ts';
import { createNodeHnswBuilder } from '../node/hnsw-builder.ts';
import { createParallelAssigner } from '../node/parallel-assigner.ts';
import { createApp, type ServerOptions } from './app.ts';
import { allowedHosts, type HostRule } from './auth.ts';
import { EventHub } from './events.ts';
import { ServedFolderWatches } from './folder-watches.ts';
import { type CollectionEntry, CollectionRegistry, type Preparation } from './registry.ts';

export interface ListenOptions extends Omit<ServerOptions, 'collections' | 'registry' | 'hosts' | 'store'> {
  port?: number;
  host?: string;
  /** Collections to serve. Default: all of them (broken ones are listed as broken, not fatal). */
  collections?: string[];
  collectionOptions?: CollectionOptions;
  /** Where the collections are. Default: the folder collectionOptions.home (risHome()). */
  store?: CollectionStore;
  /** Datasets to download and index in the background once serving; they join when ready. */
  prepare?: { dataset: DatasetName; model?: string }[];
  /**
   * Host names to answer to besides this machine's own addresses (`name` for any port, `name:port`):
   * the name of a reverse proxy, or of this machine on a network.
   */
  allowedHosts?: string[];
  /** Connection limits in milliseconds; default CONNECTION_LIMITS. */
  connectionLimits?: Partial<Record<keyof typeof CONNECTION_LIMITS, number>>;
  /**
   * Follow the folders of the served collections (`ris serve --watch`): each collection that follows a
   * folder of the user's is rescanned where it changes (see watchFolder), and the pages hear of it.
   * `true` for the defaults (a full sweep every 10 minutes), or the watch's options. Default: off.
   */
  watch?: boolean | Omit<FolderWatchOptions, 'onProgress'>;
}

/**
 * Connection limits: a client gets 10 s to send its headers and 60 s for a whole request (a 20 MB
 * upload over a slow link), an idle keep-alive connection is closed after 5 s, and the limits are
 * checked every second. So idle, slow and stalled connections cannot pile up (slowloris).
 */
/** How often a server serving all collections looks for new and deleted ones (when asked for the list). */
const DISCOVER_EVERY_MS = 2_000;
const DISCOVER_UNKNOWN_EVERY_MS = 250;

export const CONNECTION_LIMITS = {
  headersTimeout: 10_000,
  requestTimeout: 60_000,
  keepAliveTimeout: 5_000,
  connectionsCheckingInterval: 1_000,
} as const;

export interface RunningServer {
  url: string;
  /** The collections served now. */
  collections: string[];
  /** Collections that could not be opened, with the reason. */
  broken: [string, string][];
  registry: CollectionRegistry;
  /** Resolves when every background preparation has ended (ready or failed). */
  prepared: Promise<void>;
  /** What a user should know about how the server is reachable (listening on every interface, …). */
  warnings: string[];
  /** With `watch`: the collections whose folders are watched, and the first full rescan of each. */
  watches: ServedFolderWatches | undefined;
  close: () => Promise<void>;
}

/**
 * Opens the collections and serves the page and the API; resolves once listening. A collection that
 * cannot be opened is served as broken (its requests answer 503 with the reason); the others serve.
 */
export async function listen(options: ListenOptions = {}): Promise<RunningServer> {
  const collectionOptions: CollectionOptions = { ...options.collectionOptions, persistIndex: 'builds' };
  const store = options.store ?? localStore(collectionOptions.home);
  const host = options.host ?? '127.0.0.1';
  await checkHost(host); // before opening collections and loading models
  const explicit = Boolean(options.collections?.length);
  const names = explicit ? options.collections! : await store.list();
  if (names.length === 0 && !options.prepare?.length) {
    throw new CollectionError(
      'COLLECTION_NOT_FOUND',
      'There is no collection to serve; create one with ris index <folder> --collection NAME',
    );
  }
  const openEntry = async (name: string): Promise<CollectionEntry> => {
    try {
      const collection = await store.open(name, collectionOptions);
      // Load the model now, so the first search does not wait for it.
      await collection.embedder().catch(async (error) => {
        await collection.close();
        throw error;
      });
      return { name, state: 'ready', collection };
    } catch (error) {
      // A collection asked for by name that does not exist is a typo: refuse to start.
      if (!(error instanceof RisError) || (explicit && error.code === 'COLLECTION_NOT_FOUND')) throw error;
      return { name, state: 'broken', reason: error.message };
    }
  };
  const entries: CollectionEntry[] = [];
  try {
    for (const name of names) entries.push(await openEntry(name));
  } catch (error) {
    await Promise.all(entries.flatMap((e) => (e.state === 'ready' ? [e.collection.close()] : [])));
    throw error;
  }
  for (const { dataset } of options.prepare ?? [])
    if (!names.includes(dataset))
      entries.push({ name: dataset, state: 'preparing', preparation: { phase: 'waiting', percent: 0 } });
  const registry = new CollectionRegistry(entries);
  const log = options.log ?? ((line: string) => console.error(line));
  // Serving every collection of the store: ones made (by another process, on another machine) after
  // the start join, deleted ones leave. The store is listed at most every DISCOVER_EVERY_MS; a request
  // naming a collection not known yet waits for a listing at most DISCOVER_UNKNOWN_EVERY_MS after the
  // last one (requests arriving meanwhile share it, so a flood of unknown names costs one listing per
  // interval), then for that collection to open.
  let listed = 0;
  let listing: Promise<void> | undefined;
  const opening = new Map<string, Promise<void>>();
  const listStore = async () => {
    listed = Date.now();
    const now = await store.list();
    for (const found of now) {
      if (registry.list().some((e) => e.name === found)) continue;
      registry.set({ name: found, state: 'preparing', preparation: { phase: 'opening', percent: 0 } });
      const opened = openEntry(found).then(
        (entry) => registry.set(entry),
        (error: Error) => registry.set({ name: found, state: 'broken', reason: error.message }),
      );
      opening.set(found, opened);
      void opened.finally(() => opening.delete(found));
    }
    for (const entry of registry.list()) {
      if (now.includes(entry.name) || entry.state === 'preparing') continue;
      registry.delete(entry.name);
      if (entry.state === 'ready') await entry.collection.close();
    }
  };
  const startListing = (after: number) =>
    (listing ??= delay(Math.max(0, after))
      .then(listStore)
      .finally(() => {
        listing = undefined;
      }));
  const discover = async (name?: string) => {
    const known = () => name === undefined || registry.list().some((e) => e.name === name);
    const asked = Date.now();
    if (!known()) {
      // A listing begun before this request may have missed the collection: wait for one begun after.
      if (listing) await listing;
      if (!known() && listed <= asked) await startListing(listed + DISCOVER_UNKNOWN_EVERY_MS - Date.now());
    } else if (asked - listed >= DISCOVER_EVERY_MS) await startListing(0);
    if (name !== undefined) await opening.get(name);
  };
  const {
    collections: _names,
    store: _store,
    allowedHosts: extraHosts,
    watch: watchOptions,
    ...serverOptions
  } = options;
  // Filled once the port is known (port 0 picks one): the app reads the array on every request.
  const hosts: HostRule[] = [];
  const hub = new EventHub(registry, explicit ? undefined : discover);
  const app = createApp({
    hub,
    ...serverOptions,
    registry,
    log,
    discover: explicit ? undefined : discover,
    hosts,
    store,
    collectionOptions,
  });
  const stopping = new AbortController();
  const limits = { ...CONNECTION_LIMITS, ...options.connectionLimits };
  const server = await new Promise<Server>((resolve, reject) => {
    const started = serve(
      { fetch: app.fetch, port: options.port ?? 7860, hostname: host, serverOptions: limits },
      () => resolve(started as Server),
    ) as Server;
    started.keepAliveTimeout = limits.keepAliveTimeout;
    started.once('error', (error: NodeJS.ErrnoException) => {
      void registry.closeAll();
      reject(
        error.code === 'EADDRINUSE'
          ? new StateError(
              'PORT_IN_USE',
              `Port ${options.port ?? 7860} is in use on ${host}; stop what uses it or choose another with --port`,
            )
          : hostError(host, error),
      );
    });
  });
  const prepared = prepareInBackground(
    options.prepare ?? [],
    registry,
    store,
    collectionOptions,
    log,
    stopping.signal,
  );
  const watches = watchOptions
    ? new ServedFolderWatches(registry, hub, { ...(watchOptions === true ? {} : watchOptions), log })
    : undefined;
  watches?.start();
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 7860);
  hosts.push(...allowedHosts(host, port, extraHosts));
  const warnings: string[] = [];
  if (host === '0.0.0.0' || host === '::')
    warnings.push(
      `listening on every interface (${host}): anyone who can reach this machine on port ${port} can search ${options.access?.readToken ? 'with the read token' : 'every collection served and see its images'}` +
        `${options.access?.writeToken ? ', and change the library with the write token' : ''}; it answers to ${hosts
          .filter((h) => h.port !== undefined)
          .map((h) => h.name)
          .join(', ')}${extraHosts?.length ? ` and ${extraHosts.join(', ')}` : ''}`,
    );
  return {
    url: `http://${urlHost(host)}:${port}`,
    collections: registry.ready().map((c) => c.name),
    broken: entries.flatMap((e) => (e.state === 'broken' ? [[e.name, e.reason] as [string, string]] : [])),
    registry,
    prepared,
    warnings,
    watches,
    close: async () => {
      stopping.abort(new Error('the server is stopping'));
      await watches?.close();
      hub.close(); // ends the pages' event streams, which would keep the server open
      await new Promise<void>((done) => {
        server.close(() => done());
        server.closeIdleConnections();
      });
      await prepared.catch(() => undefined);
      await registry.closeAll();
    },
  };
}

/**
 * Downloads and indexes datasets one after the other while the server answers; each shows as preparing
 * (phase and percent) and is served once ready. A failure (no network, a full disk) marks it failed with
 * the reason; the server goes on.
 */
async function prepareInBackground(
  jobs: { dataset: DatasetName; model?: string }[],
  registry: CollectionRegistry,
  store: CollectionStore,
  collectionOptions: CollectionOptions,
  log: (line: string) => void,
  signal: AbortSignal,
): Promise<void> {
  for (const { dataset, model } of jobs) {
    if (signal.aborted) return;
    if (registry.list().find((e) => e.name === dataset)?.state !== 'preparing') continue;
    const show = (preparation: Preparation) =>
      registry.set({ name: dataset, state: 'preparing', preparation });
    const assigner = createParallelAssigner();
    const hnswBuilder = await createNodeHnswBuilder();
    log(`preparing ${dataset} in the background (download, embed, index)`);
    try {
      const { collection } = await indexCollection(dataset, dataset, {
        ...collectionOptions,
        store,
        persistIndex: 'always',
        assigner,
        hnswBuilder,
        model,
        signal,
        onProgress: (event) => show(preparationOf(event)),
      });
      registry.set({ name: dataset, state: 'ready', collection });
      log(`${dataset} is ready: ${await collection.count()} images`);
    } catch (error) {
      if (signal.aborted) return; // stopped with the server: the next start resumes it
      const reason = error instanceof Error ? error.message : String(error);
      registry.set({ name: dataset, state: 'failed', reason });
      log(`preparing ${dataset} failed: ${reason}`);
    } finally {
      await Promise.all([assigner.close(), hnswBuilder.close()]);
    }
  }
}

let lastPercent = 0;
/** Download 0–40 %, extraction 40–45 %, embedding 45–98 %, the index the rest. */
function preparationOf(event: BuildProgress): Preparation {
  const at = (phase: Preparation['phase'], from: number, to: number, fraction: number): Preparation => {
    lastPercent = Math.round(from + (to - from) * Math.min(1, Math.max(0, fraction)));
    return { phase, percent: lastPercent };
  };
  switch (event.type) {
    case 'download':
      return at('downloading', 0, 40, event.totalBytes ? event.receivedBytes / event.totalBytes : 0);
    case 'extract':
      return at('extracting', 40, 45, 0);
    case 'scan':
      return at('embedding', 45, 98, 0);
    case 'embed':
      return at('embedding', 45, 98, event.total ? event.done / event.total : 0);
    default:
      return at('indexing', 98, 100, 0);
  }
}

/** Refuses a host this machine cannot listen on (no such name, not one of its addresses). */
function checkHost(host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => reject(hostError(host, error)));
    probe.listen(0, host, () => probe.close(() => resolve()));
  });
}

function hostError(host: string, error: NodeJS.ErrnoException): Error {
  const why =
    error.code === 'ENOTFOUND'
      ? 'no such address or host name'
      : error.code === 'EAI_AGAIN'
        ? 'its name cannot be resolved now'
        : error.code === 'EADDRNOTAVAIL'
          ? 'not an address of this machine'
          : undefined;
  if (!why) return error;
  return new ArgumentError(
    'INVALID_ARGUMENT',
    `Cannot serve on ${host}: ${why} (${error.code}); give --host an address of this machine, such as 127.0.0.1 or 0.0.0.0 for every interface`,
    { cause: error },
  );
}

/** The host part of the printed URL: a wildcard address is opened as localhost. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}
