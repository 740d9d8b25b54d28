import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Agent, buildConnector, fetch, type Response } from 'undici';
import { RequestError } from '../errors.ts';

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
}

export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_REDIRECTS = 3;

/**
 * Addresses a public-URL search must never reach: private networks, cloud metadata, and every range of
 * IANA's special-purpose registries that is not globally reachable (documentation, benchmarking, …).
 */
const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['169.254.0.0', 16], // link-local, including the 169.254.169.254 metadata service
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24], // documentation (TEST-NET-1)
  ['192.88.99.0', 24], // 6to4 relays
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24], // documentation (TEST-NET-2)
  ['203.0.113.0', 24], // documentation (TEST-NET-3)
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4: any IPv4 address, private ones too, behind a relay
  ['fc00::', 7], // unique local, including AWS's fd00:ec2::254
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}
/** NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits: that address is the one checked. */
const nat64 = new BlockList();
nat64.addSubnet('64:ff9b::', 96, 'ipv6');

/** The IPv4 address in the last 32 bits of an IPv6 address (written either way: ::a00:1 or ::10.0.0.1). */
function lastIpv4Of(ipv6: string): string {
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(ipv6);
  if (dotted) return dotted[1]!;
  const [head = '', tail] = ipv6.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const high = Number.parseInt(groups[6] ?? '0', 16);
  const low = Number.parseInt(groups[7] ?? '0', 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/** The addresses of this machine's own interfaces, read again at most every few seconds. */
let ownAddresses = { at: 0, addresses: new Set<string>() };
function isOwnAddress(ip: string): boolean {
  if (Date.now() - ownAddresses.at > 5_000) {
    const addresses = new Set<string>();
    for (const list of Object.values(networkInterfaces()))
      for (const entry of list ?? []) addresses.add(entry.address.replace(/%.*$/, '').toLowerCase());
    ownAddresses = { at: Date.now(), addresses };
  }
  return ownAddresses.addresses.has(ip.toLowerCase());
}
const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/** Why an address may not be fetched, or undefined when it may. */
export function refusedAddress(address: string, allowLoopback = false): string | undefined {
  let ip = address;
  let family: 'ipv4' | 'ipv6' = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) {
    ip = mapped[1]!;
    family = 'ipv4';
  }
  if (family === 'ipv6' && nat64.check(ip, 'ipv6')) return refusedAddress(lastIpv4Of(ip), allowLoopback);
  if (loopback.check(ip, family)) return allowLoopback ? undefined : 'a loopback address (this machine)';
  if (isOwnAddress(ip)) return 'an address of this machine';
  if (blocked.check(ip, family)) return 'a private, link-local or reserved address';
  return undefined;
}

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
