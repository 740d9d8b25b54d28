import pg from 'pg';
import { CollectionError } from '../../errors.ts';

/** Connections one process opens at most; RIS_PG_POOL_MAX overrides it. */
export const DEFAULT_POOL_MAX = 8;
/** How long a command waits for a connection (to open, or to be free in the pool) before it gives up. */
const CONNECT_TIMEOUT_MS = 10_000;
/** An idle pooled connection is closed after this long. */
const IDLE_TIMEOUT_MS = 30_000;

/**
 * A connection string fit to print: the password (in the user part, or a `password` parameter) replaced
 * by ****. Anything that does not parse is cut to its scheme, so nothing secret leaks from a typo.
 */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '****';
    for (const key of [...parsed.searchParams.keys()])
      if (/pass/i.test(key)) parsed.searchParams.set(key, '****');
    return parsed.toString();
  } catch {
    return url.replace(/^(\w+:\/\/)[\s\S]*$/, '$1…');
  }
}

const INT8 = 20;

/**
 * pg's result parsers, with bigint as number: ids and counts stay far below 2^53 (and ids below 2^32, the
 * width of the index's id arrays).
 */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8 && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

export type Queryable = Pick<pg.PoolClient, 'query'>;

/**
 * The database of a store: a pool of at most RIS_PG_POOL_MAX (default 8) connections, closed when idle,
 * and every failure turned into an error ris can explain, naming the location with its password masked.
 */
export class PgDatabase {
  private readonly pool: pg.Pool;

  constructor(
    url: string,
    /** The masked URL. */
    readonly location: string,
  ) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: Number(process.env.RIS_PG_POOL_MAX) || DEFAULT_POOL_MAX,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: IDLE_TIMEOUT_MS,
      keepAlive: true,
      application_name: 'ris',
      types,
    });
    // An idle connection the server dropped (a restart, a failover) is discarded by the pool and the next
    // query opens another; without a listener that error would end the process.
    this.pool.on('error', () => undefined);
    // The same for a connection in use but between two statements (inside a transaction): the pool
    // listens only to idle ones. The next statement on it then fails, and the caller discards it.
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  /** One statement on any pooled connection. */
  async query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      throw databaseError(error, this.location);
    }
  }

  /** A connection of its own (released by the caller), for what must stay on one session. */
  async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (error) {
      throw databaseError(error, this.location);
    }
  }

  /**
   * Runs `work` in one transaction on one connection: committed when it resolves, rolled back when it
   * throws. `work` must use only the client it is given (on PGlite, where sessions take turns, a query on
   * another connection would wait for this transaction to end).
   */
  async transaction<T>(
    work: (client: pg.PoolClient) => Promise<T>,
    isolation: 'READ COMMITTED' | 'REPEATABLE READ' = 'READ COMMITTED',
  ): Promise<T> {
    const client = await this.connect();
    let broken = false;
    try {
      await client.query(`BEGIN ISOLATION LEVEL ${isolation}`);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true; // the connection itself failed: never hand it out again
      }
      throw databaseError(error, this.location);
    } finally {
      client.release(broken);
    }
  }

  async end(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * Whether `error` is the database gone away (stopped, restarting, failing over, a dropped connection),
 * which a long-running process waits out; anything else is not retried.
 */
export function isOutage(error: unknown): error is CollectionError {
  return error instanceof CollectionError && error.code === 'DATABASE_UNREACHABLE';
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'EPIPE',
]);

/**
 * A failure of the database as the error ris reports: cannot reach it, refused the login, or cannot be
 * used as it is. The location is always the masked one. Other errors (a bug in a query) pass unchanged.
 */
export function databaseError(error: unknown, location: string): unknown {
  if (error instanceof CollectionError) return error;
  const code = (error as { code?: string } | undefined)?.code ?? '';
  const message = (error as Error | undefined)?.message ?? String(error);
  if (
    UNREACHABLE.has(code) ||
    /timeout expired|connection timeout|Connection terminated|terminating connection|not queryable/i.test(
      message,
    ) ||
    // admin shutdown, crash of another backend, starting up or shutting down; class 08: connection lost
    /^(57P0[123]|08...)$/.test(code)
  )
    return new CollectionError(
      'DATABASE_UNREACHABLE',
      `Cannot reach the database at ${location} (${message}); check that PostgreSQL runs there and the address in --store or $RIS_DATABASE_URL`,
      { cause: error },
    );
  if (/timeout exceeded when trying to connect/i.test(message))
    return new CollectionError(
      'DATABASE_UNREACHABLE',
      `No connection to the database at ${location} came free within ${CONNECT_TIMEOUT_MS / 1000} s (every one of this process's ${Number(process.env.RIS_PG_POOL_MAX) || DEFAULT_POOL_MAX} was busy, or the server is slow to accept more); try again, or raise RIS_PG_POOL_MAX`,
      { cause: error },
    );
  if (code === '28P01' || code === '28000')
    return new CollectionError(
      'DATABASE_AUTH_FAILED',
      `The database at ${location} refused the login (${message}); check the user and password in --store or $RIS_DATABASE_URL`,
      { cause: error },
    );
  if (code === '3D000')
    return new CollectionError(
      'DATABASE_UNUSABLE',
      `${message} at ${location}; create it (createdb), or fix the database name in --store or $RIS_DATABASE_URL`,
      { cause: error },
    );
  if (code === '42501')
    return new CollectionError(
      'DATABASE_UNUSABLE',
      `The database at ${location} refused an operation (${message}); grant this user the rights ris needs (see README: collections in PostgreSQL)`,
      { cause: error },
    );
  return error;
}
