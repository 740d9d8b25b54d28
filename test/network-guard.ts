import { isIP, Socket } from 'node:net';

/** A TCP connection something in this process tried to open. */
export interface ConnectionAttempt {
  host: string;
  port: number;
  /** False when the guard stopped it before a packet was sent. */
  allowed: boolean;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/**
 * Records every TCP connection this process opens, and stops any that is not to a loopback address
 * literal before it is made: a test of URL fetching can then prove where the fetcher connected, and even a
 * broken build cannot send a packet to another machine (a host name reaching `connect` is stopped too,
 * since the system resolver could turn it into any address).
 */
export function guardConnections(): { attempts: ConnectionAttempt[]; reset(): void; restore(): void } {
  const attempts: ConnectionAttempt[] = [];
  const original = Socket.prototype.connect;
  Socket.prototype.connect = function guardedConnect(this: Socket, ...args: unknown[]) {
    // net.connect hands over [options, callback] as one normalised array; direct calls pass options first.
    const first = (Array.isArray(args[0]) ? args[0][0] : args[0]) as
      | { host?: string; port?: number; path?: string }
      | undefined;
    if (first && typeof first === 'object' && first.path === undefined) {
      const host = String(first.host ?? 'localhost');
      const allowed = isIP(host) !== 0 && LOOPBACK.test(host);
      attempts.push({ host, port: Number(first.port), allowed });
      if (!allowed) {
        process.nextTick(() =>
          this.destroy(Object.assign(new Error(`test guard: no connection to ${host}`), { code: 'EGUARD' })),
        );
        return this;
      }
    }
    return (original as (...a: unknown[]) => Socket).apply(this, args);
  } as typeof Socket.prototype.connect;
  return {
    attempts,
    reset: () => {
      attempts.length = 0;
    },
    restore: () => {
      Socket.prototype.connect = original;
    },
  };
}
