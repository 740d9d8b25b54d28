import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Agent, buildConnector, fetch, type Response } from 'undici';
import { RequestError } from '../errors.ts';
import { refusedAddress } from './address-check.ts';

export { refusedAddress } from './address-check.ts';

/** Resolves a host name to every address it has, as `dns.lookup(host, { all: true })` does. */
export type HostResolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

export interface FetchImageOptions {
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Time for the whole fetch, redirects and body included, in milliseconds. Default 10,000. */
  timeoutMs?: number;
  /** Redirects followed at most, each one checked again. Default 3. */
  maxRedirects?: number;
  /** Tests only: let loopback addresses through so tests can serve their own images. */
  allowLoopback?: boolean;
  /**
   * Let every address through (loopback and private networks included). For the CLI, whose user is the
   * machine's operator; a server must never set it.
   */
  allowPrivate?: boolean;
  /** How host names become addresses. Default: the system resolver (`dns.lookup`). Tests inject their own. */
  resolve?: HostResolver;
  /** Stops the fetch (the request it is for went away). */
  signal?: AbortSignal;
}

export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_REDIRECTS = 3;

const systemResolver: HostResolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

/** Raised inside the connector, turned into URL_NOT_ALLOWED where the fetch fails. */
class RefusedAddress extends Error {}

/**
 * Fetches an image from a public http(s) URL for a search. The host is resolved here and every address it
 * has is checked before any connection is opened; the connection then goes to one of those very addresses
 * (so DNS rebinding cannot slip past). Redirects are followed by hand and checked again. A refusal by status
 * or content type happens on the response head, without waiting for the body; the body is capped in time
 * and size.
 */
export async function fetchImage(url: string, options: FetchImageOptions): Promise<Buffer> {
  const allowLoopback = options.allowLoopback ?? false;
  const allowPrivate = options.allowPrivate ?? false;
  const resolve = options.resolve ?? systemResolver;
  const timeoutMs = options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const connectTo = buildConnector({ timeout: timeoutMs });
  const agent = new Agent({
    connect(opts, callback) {
      const hostname = opts.hostname.replace(/^\[|\]$/g, '');
      checkedAddresses(hostname, resolve, allowLoopback, allowPrivate).then(
        (addresses) => {
          // Try each checked address in turn (IPv6 then IPv4, say), as happy eyeballs would, but only those.
          const attempt = (i: number, lastError?: Error): void => {
            const address = addresses[i];
            if (address === undefined) {
              callback(lastError ?? new Error(`${hostname} has no address`), null);
              return;
            }
            connectTo(
              {
                ...opts,
                hostname: address,
                // TLS checks the certificate against the name, not the address.
                servername: isIP(hostname) ? undefined : hostname,
              } as Parameters<typeof connectTo>[0],
              (error, socket) => {
                if (error) attempt(i + 1, error);
                else callback(null, socket!);
              },
            );
          };
          attempt(0);
        },
        (error: Error) => callback(error, null),
      );
    },
  });
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TimeoutAbort()), timeoutMs);
  const stop = () => controller.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', stop, { once: true });
  if (options.signal?.aborted) stop();
  let current = url;
  try {
    for (let redirects = 0; ; redirects++) {
      const target = checkUrl(current, allowLoopback, allowPrivate);
      let response: Response;
      try {
        response = await fetch(target, { redirect: 'manual', signal: controller.signal, dispatcher: agent });
      } catch (error) {
        throw fetchFailure(error, controller.signal, timeoutMs);
      }
      if ([301, 302, 303, 307, 308].includes(response.status)) {
        await discard(response);
        const location = response.headers.get('location');
        if (!location) throw new RequestError('URL_FETCH_FAILED', 'The image URL redirects nowhere');
        if (redirects >= maxRedirects)
          throw new RequestError(
            'URL_FETCH_FAILED',
            `The image URL redirects more than ${maxRedirects} times; give the address of the image itself`,
          );
        current = new URL(location, target).href;
        continue;
      }
      if (!response.ok) {
        await discard(response);
        throw new RequestError('URL_FETCH_FAILED', `The image URL answered HTTP ${response.status}`);
      }
      const type = response.headers.get('content-type') ?? '';
      if (!type.toLowerCase().startsWith('image/')) {
        await discard(response);
        throw new RequestError(
          'URL_FETCH_FAILED',
          `The URL is not an image (content type "${type || 'none'}"); give the address of the image itself`,
        );
      }
      try {
        return await readCapped(response, options.maxBytes);
      } catch (error) {
        throw fetchFailure(error, controller.signal, timeoutMs);
      }
    }
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', stop);
    // destroy, not close: close would wait for bodies nobody is going to read.
    await agent.destroy();
  }
}

class TimeoutAbort extends Error {}

/** Resolves `hostname` and refuses it unless every one of its addresses may be fetched. */
async function checkedAddresses(
  hostname: string,
  resolve: HostResolver,
  allowLoopback: boolean,
  allowPrivate: boolean,
): Promise<string[]> {
  const addresses = isIP(hostname)
    ? [{ address: hostname, family: isIP(hostname) }]
    : await resolve(hostname);
  if (addresses.length === 0) throw new Error(`${hostname} has no address`);
  if (!allowPrivate) {
    for (const { address } of addresses) {
      const why = refusedAddress(address, allowLoopback);
      if (why) {
        const named = address === hostname ? address : `${hostname} resolves to ${address}`;
        throw new RefusedAddress(`${named}, ${why}`);
      }
    }
  }
  return addresses.map((a) => a.address);
}

/** The error a failed fetch stands for: a refused address, a timeout, or a network failure. */
function fetchFailure(error: unknown, signal: AbortSignal, timeoutMs: number): RequestError {
  if (error instanceof RequestError) return error;
  let cause: unknown = error;
  while (cause instanceof Error && !(cause instanceof RefusedAddress) && cause.cause) cause = cause.cause;
  if (cause instanceof RefusedAddress)
    return new RequestError(
      'URL_NOT_ALLOWED',
      `That URL is not allowed: ${cause.message}; use a public image URL`,
    );
  if (signal.aborted && signal.reason instanceof TimeoutAbort)
    return new RequestError(
      'URL_TIMEOUT',
      `The image URL did not answer within ${formatSeconds(timeoutMs)}; try again, or use another address`,
    );
  const reason = cause instanceof Error ? cause.message : String(cause);
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return new RequestError(
    'URL_FETCH_FAILED',
    `Cannot fetch the image URL (${code && !reason.includes(code) ? `${code}: ` : ''}${reason}); check the address`,
  );
}

function checkUrl(url: string, allowLoopback: boolean, allowPrivate: boolean): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RequestError('URL_NOT_ALLOWED', `"${url}" is not a URL; give an http or https image address`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new RequestError(
      'URL_NOT_ALLOWED',
      `Only http and https URLs can be searched, not ${parsed.protocol}`,
    );
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const why = isIP(host) && !allowPrivate ? refusedAddress(host, allowLoopback) : undefined;
  if (why)
    throw new RequestError(
      'URL_NOT_ALLOWED',
      `That URL is not allowed: ${host} is ${why}; use a public image URL`,
    );
  return parsed.href;
}

/** Drops a body we are not going to read, without waiting for it to arrive. */
async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}

async function readCapped(response: Response, maxBytes: number): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > maxBytes) {
    await discard(response);
    throw tooLarge(maxBytes);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.length;
    if (size > maxBytes) {
      await discard(response);
      throw tooLarge(maxBytes);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export function tooLarge(maxBytes: number): RequestError {
  return new RequestError(
    'UPLOAD_TOO_LARGE',
    `The image is larger than the limit of ${formatBytes(maxBytes)}; send a smaller one`,
  );
}

/** 20 MB, 500 KB, 1.5 MB, 900 bytes. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e6) return `${Number((bytes / 1e6).toFixed(1))} MB`;
  if (bytes >= 1e3) return `${Number((bytes / 1e3).toFixed(1))} KB`;
  return `${bytes} bytes`;
}

function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number(s.toFixed(s < 1 ? 2 : 1))} second${s === 1 ? '' : 's'}`;
}
