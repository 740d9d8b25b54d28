import { CollectionError } from '../../errors.ts';
import { isOutage } from './connection.ts';

/** The database went away (waiting for it, up to `patienceSeconds`), or came back. */
export type OutageEvent =
  | { type: 'database-unreachable'; reason: string; patienceSeconds: number }
  | { type: 'database-back'; afterSeconds: number };

export interface OutageOptions {
  /** How long to wait for a database that went away before giving up (DATABASE_UNREACHABLE). */
  outageSeconds?: number;
  signal?: AbortSignal;
  onProgress?: (event: OutageEvent) => void;
}

/**
 * Runs steps through database outages: a step that fails with DATABASE_UNREACHABLE is run again after
 * 0.25 s, 0.5 s, … (at most 5 s apart) until it gets through, for at most `outageSeconds` from the first
 * failure. Only steps that are safe to run twice go through it. Stopping (the signal) ends the wait.
 */
export class OutageWatch {
  private since: number | undefined;
  private readonly patienceMs: number;

  constructor(
    private readonly options: OutageOptions,
    defaultSeconds: number,
  ) {
    this.patienceMs = (options.outageSeconds ?? defaultSeconds) * 1000;
  }

  /** Whether the last step came back from an outage (cleared by reading it). */
  recovered = false;

  async through<T>(step: () => Promise<T>): Promise<T> {
    let delay = 250;
    while (true) {
      try {
        const result = await step();
        if (this.since !== undefined) {
          const afterSeconds = Math.round((Date.now() - this.since) / 100) / 10;
          this.since = undefined;
          this.recovered = true;
          this.options.onProgress?.({ type: 'database-back', afterSeconds });
        }
        return result;
      } catch (error) {
        if (!isOutage(error) || this.options.signal?.aborted) throw error;
        if (this.since === undefined) {
          this.since = Date.now();
          this.options.onProgress?.({
            type: 'database-unreachable',
            reason: error.message,
            patienceSeconds: this.patienceMs / 1000,
          });
        } else if (Date.now() - this.since >= this.patienceMs)
          throw new CollectionError(
            'DATABASE_UNREACHABLE',
            `${error.message} (waited ${Math.round(this.patienceMs / 1000)} s for it to come back)`,
            { cause: error },
          );
        await sleep(delay, this.options.signal);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }
}

/** Resolves after `ms`, or at once when the signal stops the wait. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
