import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import type { Context, MiddlewareHandler } from 'hono';
import { ArgumentError, RequestError } from '../errors.ts';

/** A token shorter than this is accepted, with a warning: it can be guessed by trying. */
const SHORT_TOKEN = 16;
/** Where `ris serve` keeps the tokens it made, in ris's data folder. */
export const TOKEN_FILE = 'server-token';
export const READ_TOKEN_FILE = 'server-read-token';

/** The write token of a server, and where it came from (for what `ris serve` prints). */
export interface WriteToken {
  token: string;
  /** 'file': --token-file; 'env': $RIS_TOKEN; 'stored': made by an earlier start; 'new': made now. */
  source: 'file' | 'env' | 'stored' | 'new';
  /** The file it is kept in ('file', 'stored' and 'new'). */
  path?: string;
  warnings: string[];
}

/**
 * The token every write needs: from `tokenFile`, else `envToken` ($RIS_TOKEN), else the one kept in
 * `home`, made (32 random bytes, base64url) and kept there with mode 0600 on the first start.
 */
export function writeToken(options: {
  tokenFile?: string;
  envToken?: string;
  home: string;
  /** The file in `home` a made token is kept in. Default TOKEN_FILE. */
  file?: string;
}): WriteToken {
  const warnings: string[] = [];
  const checked = (token: string, where: string) => {
    if (token.length === 0)
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `The token in ${where} is empty; put a long random string there`,
      );
    if (token.length < SHORT_TOKEN)
      warnings.push(
        `the token in ${where} is ${token.length} characters long; anyone who may reach the server can guess a short one (use ${SHORT_TOKEN} or more)`,
      );
    return token;
  };
  if (options.tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.tokenFile, 'utf8');
    } catch (error) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Cannot read the token file ${options.tokenFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
    return {
      token: checked(text.trim(), options.tokenFile),
      source: 'file',
      path: options.tokenFile,
      warnings,
    };
  }
  if (options.envToken !== undefined && options.envToken !== '')
    return { token: checked(options.envToken, '$RIS_TOKEN'), source: 'env', warnings };
  const path = join(options.home, options.file ?? TOKEN_FILE);
  try {
    const stored = readFileSync(path, 'utf8').trim();
    if (stored) return { token: stored, source: 'stored', path, warnings };
  } catch {
    // none yet: made below
  }
  const token = randomBytes(32).toString('base64url');
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, `${token}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(temp, path);
  return { token, source: 'new', path, warnings };
}

/** Whether `given` is `expected`, in time that does not depend on where they differ. */
export function tokenMatches(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The bearer token of a request, if it sent one. */
function bearer(c: Context): string | undefined {
  const header = c.req.header('authorization');
  const match = header && /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}

/** The cookie that carries the read token for what the page loads without headers (images, events). */
export const READ_COOKIE = 'ris_read';

function cookie(c: Context, name: string): string | undefined {
  for (const part of (c.req.header('cookie') ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return decodeURIComponent(part.slice(at + 1).trim());
  }
  return undefined;
}

/** Who may do what on a server. */
export interface Access {
  /** The token writes need; undefined: nothing can be written. */
  writeToken?: string;
  /** The token reads need (the write token also reads); undefined: reads are open. */
  readToken?: string;
}

/** What a request may do, by the tokens it carries. */
export function grants(c: Context, access: Access): { read: boolean; write: boolean } {
  const token = bearer(c);
  const write =
    token !== undefined && access.writeToken !== undefined && tokenMatches(token, access.writeToken);
  if (access.readToken === undefined) return { read: true, write };
  // The cookie reads for this server's own page only: a browser sends it with requests from every port
  // of this host (cookies ignore ports), and says when another page made the request.
  const site = c.req.header('sec-fetch-site');
  const fromThisPage = site === undefined || site === 'same-origin' || site === 'none';
  const readWith = token ?? (fromThisPage ? cookie(c, READ_COOKIE) : undefined);
  const read = write || (readWith !== undefined && tokenMatches(readWith, access.readToken));
  return { read, write };
}

function unauthorized(c: Context, message: string): never {
  c.header('WWW-Authenticate', 'Bearer realm="ris"');
  throw new RequestError('UNAUTHORIZED', message);
}

/** Whether a request to the API only reads: GET and HEAD, and the searches (which change nothing). */
export function isRead(method: string, path: string): boolean {
  if (method === 'GET' || method === 'HEAD') return true;
  return method === 'POST' && /^\/api\/collections\/[^/]+\/(search|explore(\/[^/]+)?)$/.test(path);
}

/**
 * Guards the API before anything else reads the request (body, names, whether a collection exists):
 * every request that changes something needs `Authorization: Bearer <write token>` (401 with
 * WWW-Authenticate otherwise) and, when a browser says where it comes from, this very origin; reads need
 * the read token when there is one (as a bearer token or the page's cookie).
 */
export function accessGuard(access: Access): MiddlewareHandler {
  return async (c, next) => {
    const { read, write } = grants(c, access);
    if (isRead(c.req.method, c.req.path)) {
      if (!read)
        unauthorized(
          c,
          'This server needs a token to read: open the address ris serve printed (with ?token=…), or send Authorization: Bearer <token>',
        );
    } else {
      if (!write)
        unauthorized(
          c,
          access.writeToken === undefined
            ? 'This server takes no changes (it was started without a write token)'
            : 'Changing the library needs the write token: open the address ris serve printed (with ?token=…), or send Authorization: Bearer <token>',
        );
      refuseOtherOrigins(c);
    }
    await next();
  };
}

/**
 * A write from a page of another site (or of another app on this machine) is refused even with the token:
 * browsers say where a request comes from.
 */
function refuseOtherOrigins(c: Context): void {
  const origin = c.req.header('origin');
  const site = c.req.header('sec-fetch-site');
  let otherOrigin = false;
  if (origin !== undefined) {
    try {
      otherOrigin = new URL(origin).host !== c.req.header('host')?.toLowerCase();
    } catch {
      otherOrigin = true; // "null" (a sandboxed page, a file) or garbage
    }
  }
  if (otherOrigin || site === 'cross-site' || site === 'same-site')
    throw new RequestError(
      'ORIGIN_NOT_ALLOWED',
      `Changes are taken only from this server's own page, not from ${origin ?? 'another site'}`,
    );
}

/**
 * The Host names a server answers to. On loopback only localhost, 127.0.0.1 and [::1]; on another
 * address, the machine's own addresses (and the loopback names); on every address, every address of the
 * machine. `extra` adds names a user allows (a reverse proxy's, a LAN name): `name` for any port,
 * `name:port` for one. Built-in names must carry the server's port (or none).
 */
export function allowedHosts(listenHost: string, port: number, extra: string[] = []): HostRule[] {
  const loopback = ['localhost', '127.0.0.1', '[::1]'];
  const host = listenHost.toLowerCase();
  const names = new Set(loopback);
  if (!isLoopback(host)) {
    for (const list of Object.values(networkInterfaces()))
      for (const address of list ?? [])
        names.add(address.family === 'IPv6' ? `[${address.address.split('%')[0]}]` : address.address);
    if (host !== '0.0.0.0' && host !== '::') names.add(host.includes(':') ? `[${host}]` : host);
  }
  const rules: HostRule[] = [...names].map((name) => ({ name, port }));
  for (const entry of extra) rules.push(parseHostRule(entry));
  return rules;
}

/** A Host a server answers to: a name, and the port it must carry (undefined: any). */
export interface HostRule {
  name: string;
  port?: number;
}

function parseHostRule(entry: string): HostRule {
  const { name, port } = splitHost(entry.trim().toLowerCase());
  if (!name || (port !== undefined && !(port > 0 && port < 65536)))
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected --allowed-host as a host name or name:port but received "${entry}"`,
    );
  return { name, port };
}

function splitHost(value: string): { name: string; port?: number } {
  const bracket = /^(\[[^\]]*\])(?::(\d+))?$/.exec(value);
  if (bracket) return { name: bracket[1]!, port: bracket[2] === undefined ? undefined : Number(bracket[2]) };
  const colon = value.lastIndexOf(':');
  if (colon > 0 && value.indexOf(':') === colon && /^\d+$/.test(value.slice(colon + 1)))
    return { name: value.slice(0, colon), port: Number(value.slice(colon + 1)) };
  return { name: value };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Refuses requests whose Host the server does not answer to (403 HOST_NOT_ALLOWED): a page of another
 * site whose name an attacker points at this machine (DNS rebinding) names its own host there.
 */
export function hostGuard(rules: HostRule[]): MiddlewareHandler {
  return async (c, next) => {
    // Over HTTP the Host header as it came (none or empty is refused); a request made in-process
    // (app.request) names its URL's host.
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    const header = (incoming ? (incoming.headers.host ?? '') : new URL(c.req.url).host).toLowerCase();
    const { name, port } = splitHost(header);
    const allowed = rules.some(
      (rule) => rule.name === name && (port === undefined || rule.port === undefined || rule.port === port),
    );
    if (!allowed)
      throw new RequestError(
        'HOST_NOT_ALLOWED',
        `This server does not answer to the host name ${JSON.stringify(header.slice(0, 100))}; open it by its address, or start it with --allowed-host NAME`,
      );
    await next();
  };
}
