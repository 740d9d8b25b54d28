import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Agent, type Dispatcher, fetch, type Response } from 'undici';
import { ModelError } from '../errors.ts';

export interface DownloadProgress {
  type: 'download';
  file: string;
  receivedBytes: number;
  totalBytes: number;
}

export interface DownloadOptions {
  onProgress?: (event: DownloadProgress) => void;
  /** Times a cut connection is resumed (HTTP Range) before the source is given up. Default 5. */
  retries?: number;
  /** Stops the download (the partial file stays, so a later call resumes it). */
  signal?: AbortSignal;
  /**
   * The undici dispatcher requests go through: a `ProxyAgent` for a company proxy, say. Default: one that
   * gives up on a host that does not accept a connection within 10 s or sends nothing for 30 s.
   */
  dispatcher?: Dispatcher;
  /**
   * Hosts found unreachable (host → why), shared by the downloads of one model: a host that cannot be
   * resolved or reached is tried once, not once per file and retry, so being offline shows in seconds.
   */
  unreachable?: Map<string, string>;
}

/** Connections a source must accept, and the silence it may keep, before it counts as unreachable. */
const CONNECT_TIMEOUT_MS = 10_000;
const STALL_TIMEOUT_MS = 30_000;
let defaultAgent: Agent | undefined;
const agent = () =>
  (defaultAgent ??= new Agent({
    connect: { timeout: CONNECT_TIMEOUT_MS },
    headersTimeout: STALL_TIMEOUT_MS,
    bodyTimeout: STALL_TIMEOUT_MS,
  }));

/**
 * Downloads `target` from the first of `urls` that delivers it whole with the expected size and sha256.
 * Resumes cut connections with HTTP Range into `target.part`; renames it into place only once verified,
 * and removes it when every source fails, so the cache never holds a partial or wrong file.
 */
export async function downloadVerified(
  urls: readonly string[],
  target: string,
  expected: { bytes?: number; sha256?: string },
  options: DownloadOptions = {},
): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const part = `${target}.part`;
  const failures: string[] = [];
  let checksumFailed = false;
  for (const url of urls) {
    const unreachable = options.unreachable?.get(hostOf(url));
    if (unreachable !== undefined) {
      failures.push(`${url}: ${unreachable}`);
      continue;
    }
    try {
      await fetchResuming(url, part, expected.bytes, target, options);
      const { size } = await stat(part);
      if (expected.bytes !== undefined && size !== expected.bytes) {
        await rm(part, { force: true });
        throw new Error(`received ${size} bytes, expected ${expected.bytes}`);
      }
      const sha256 = expected.sha256 === undefined ? undefined : await fileSha256(part);
      if (sha256 !== expected.sha256) {
        await rm(part, { force: true });
        throw new ModelError(
          'CHECKSUM_MISMATCH',
          `sha256 ${sha256} differs from the expected ${expected.sha256}`,
        );
      }
      await rename(part, target);
      return;
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (error instanceof ModelError && error.code === 'CHECKSUM_MISMATCH') checksumFailed = true;
      failures.push(`${url}: ${(error as Error).message}`);
    }
  }
  await rm(part, { force: true });
  const message = `Could not download ${target.split('/').pop()} (${failures.join('; ')}); check the network, or place a verified copy at ${target}`;
  if (checksumFailed) throw new ModelError('CHECKSUM_MISMATCH', message);
  throw new ModelError('DOWNLOAD_FAILED', message);
}

async function fetchResuming(
  url: string,
  part: string,
  expectedTotal: number | undefined,
  target: string,
  options: DownloadOptions,
): Promise<void> {
  let total = expectedTotal ?? Number.POSITIVE_INFINITY;
  const retries = options.retries ?? 5;
  let attempt = 0;
  for (;;) {
    const offset = await stat(part).then(
      (s) => s.size,
      () => 0,
    );
    if (offset === expectedTotal) return;
    let response: Response;
    try {
      response = await fetch(url, {
        headers: offset > 0 ? { Range: `bytes=${offset}-` } : {},
        redirect: 'follow',
        signal: options.signal,
        dispatcher: options.dispatcher ?? agent(),
      });
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      // No retry for a host that cannot be resolved or reached: it will not answer in the next second.
      const unreachable = unreachableReason(error, url);
      if (unreachable !== undefined) {
        options.unreachable?.set(hostOf(url), unreachable);
        throw new Error(unreachable);
      }
      if (++attempt > retries) throw new Error(`request failed: ${causeOf(error)}`);
      continue;
    }
    if (response.status === 416 && offset > 0) {
      // The server says our partial file is already complete or beyond its size: start over.
      await rm(part, { force: true });
      continue;
    }
    if (response.status !== 200 && response.status !== 206) throw new Error(`HTTP ${response.status}`);
    const append = response.status === 206 && offset > 0;
    if (expectedTotal === undefined) {
      // Size not published: learn it from the response (Content-Range total, or the length of a full body).
      const range = /\/(\d+)$/.exec(response.headers.get('content-range') ?? '');
      const length = Number(response.headers.get('content-length') ?? Number.NaN);
      total = range ? Number(range[1]) : append ? offset + length : length;
      if (!Number.isFinite(total)) total = Number.POSITIVE_INFINITY;
    }
    const file = await open(part, append ? 'a' : 'w');
    let received = append ? offset : 0;
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        await file.write(chunk);
        received += chunk.length;
        if (received > total) throw new TooLong(`server sent more than the expected ${total} bytes`);
        options.onProgress?.({
          type: 'download',
          file: target,
          receivedBytes: received,
          totalBytes: Number.isFinite(total) ? total : 0,
        });
      }
      if (received < total && Number.isFinite(total))
        throw new Error(`connection closed after ${received} of ${total} bytes`);
      return;
    } catch (error) {
      if (error instanceof TooLong) throw error;
      if (options.signal?.aborted) throw options.signal.reason;
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new Error(`the disk is full (${part}); free some space and run it again: the download resumes`);
      }
      // A cut connection: resume from what arrived.
      if (++attempt > retries) throw new Error(`connection kept failing: ${(error as Error).message}`);
    } finally {
      await file.close();
    }
  }
}

/** A body longer than announced: no resume can mend that. */
class TooLong extends Error {}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** The innermost message of a failed fetch (undici wraps the system's error as `cause`), on one line. */
function causeOf(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  const message = cause instanceof Error ? cause.message : (error as Error).message;
  return message.split('\n')[0]!.trim();
}

/** Why the host of `url` cannot be reached, for the failures that say so; undefined for others. */
function unreachableReason(error: unknown, url: string): string | undefined {
  const cause = (error as { cause?: { code?: string } }).cause;
  const host = new URL(url).hostname;
  switch (cause?.code) {
    case 'ENOTFOUND':
      return `${host} cannot be resolved (is this machine offline?)`;
    case 'EAI_AGAIN':
      return `${host} cannot be resolved: no answer from the name server (is this machine offline?)`;
    case 'ECONNREFUSED':
      return `${host} refused the connection`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENETDOWN':
      return `${host} cannot be reached (is this machine offline?)`;
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `${host} did not accept a connection within ${CONNECT_TIMEOUT_MS / 1000} s (is this machine offline?)`;
    case 'UND_ERR_HEADERS_TIMEOUT':
      return `${host} accepted the connection but sent no answer`;
  }
  // fetch never connects to ports of other protocols (the Fetch standard's "bad ports": 9, 25, …).
  if (causeOf(error) === 'bad port') {
    return `${new URL(url).host} uses a port that fetch refuses (one kept for another protocol); serve it on another port`;
  }
  // A failed TLS handshake or certificate (a proxy that intercepts, a captive portal) fails again at once.
  if (/^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_)/.test(cause?.code ?? '')) {
    return `the secure connection to ${host} failed (${causeOf(error)}); a proxy or a network that intercepts HTTPS?`;
  }
  return undefined;
}

export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
