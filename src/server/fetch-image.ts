import { lookup } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent } from 'undici';
import { RequestError } from '../errors.ts';

export interface FetchImageOptions {
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Default 10 s for the whole fetch, redirects included. */
  timeoutMs?: number;
  /** At most this many redirects, each checked again. Default 3. */
  maxRedirects?: number;
  /** Tests only: let loopback addresses through so tests can serve their own images. */
  allowLoopback?: boolean;
}

/** Addresses a public-URL search must never reach: this machine, private networks, cloud metadata. */
const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['169.254.0.0', 16], // link-local, including the 169.254.169.254 metadata service
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['fc00::', 7], // unique local, including AWS's fd00:ec2::254
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
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
  if (loopback.check(ip, family)) return allowLoopback ? undefined : 'a loopback address (this machine)';
  if (blocked.check(ip, family)) return 'a private, link-local or reserved address';
  return undefined;
}

/**
 * Fetches an image from a public http(s) URL for a search: every address the host resolves to is checked
 * (at connection time, so DNS rebinding cannot slip past), redirects are followed by hand and checked
 * again, and the body is capped in time and size and must be declared an image.
 */
export async function fetchImage(url: string, options: FetchImageOptions): Promise<Buffer> {
  const allowLoopback = options.allowLoopback ?? false;
  const agent = new Agent({
    connect: {
      lookup(hostname, lookupOptions, callback) {
        lookup(hostname, { ...lookupOptions, all: true }, (error, addresses) => {
          if (error) return callback(error, '', 0);
          const list = addresses as unknown as { address: string; family: number }[];
          for (const { address } of list) {
            const why = refusedAddress(address, allowLoopback);
            if (why)
              return callback(
                Object.assign(new Error(`refused: ${hostname} resolves to ${why}`), { code: 'ERIS_REFUSED' }),
                '',
                0,
              );
          }
          callback(null, list[0]!.address, list[0]!.family);
        });
      },
    },
  });
  const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000);
  let current = url;
  try {
    for (let redirects = 0; ; redirects++) {
      const target = checkUrl(current, allowLoopback);
      let response: Response;
      try {
        response = await fetch(target, { redirect: 'manual', signal, dispatcher: agent } as RequestInit);
      } catch (error) {
        const cause = (error as { cause?: { message?: string; code?: string } }).cause;
        if (cause?.code === 'ERIS_REFUSED')
          throw new RequestError(
            'URL_NOT_ALLOWED',
            `That URL is not allowed: ${cause.message}; use a public image URL`,
          );
        if ((error as Error).name === 'TimeoutError')
          throw new RequestError('URL_FETCH_FAILED', 'The image URL did not answer within 10 seconds');
        throw new RequestError(
          'URL_FETCH_FAILED',
          `Cannot fetch the image URL (${cause?.message ?? (error as Error).message})`,
        );
      }
      if ([301, 302, 303, 307, 308].includes(response.status)) {
        const location = response.headers.get('location');
        if (!location) throw new RequestError('URL_FETCH_FAILED', 'The image URL redirects nowhere');
        if (redirects >= (options.maxRedirects ?? 3))
          throw new RequestError('URL_FETCH_FAILED', 'The image URL redirects too many times (at most 3)');
        current = new URL(location, target).href;
        continue;
      }
      if (!response.ok)
        throw new RequestError('URL_FETCH_FAILED', `The image URL answered HTTP ${response.status}`);
      const type = response.headers.get('content-type') ?? '';
      if (!type.toLowerCase().startsWith('image/')) {
        throw new RequestError(
          'URL_FETCH_FAILED',
          `The URL is not an image (content type "${type || 'none'}"); give the address of the image itself`,
        );
      }
      return await readCapped(response, options.maxBytes);
    }
  } finally {
    await agent.close();
  }
}

function checkUrl(url: string, allowLoopback: boolean): string {
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
  if (isIP(host)) {
    const why = refusedAddress(host, allowLoopback);
    if (why)
      throw new RequestError(
        'URL_NOT_ALLOWED',
        `That URL is not allowed: ${host} is ${why}; use a public image URL`,
      );
  }
  return parsed.href;
}

async function readCapped(response: Response, maxBytes: number): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge(maxBytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export function tooLarge(maxBytes: number): RequestError {
  return new RequestError(
    'UPLOAD_TOO_LARGE',
    `The image is larger than ${(maxBytes / 1e6).toFixed(0)} MB; send a smaller one`,
  );
}
