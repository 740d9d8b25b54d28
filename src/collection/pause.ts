import { writeSync } from 'node:fs';

/**
 * A test-only hook: with RIS_TEST_PAUSE_AT=step (or step@n for its n-th time), the process prints
 * "ris-paused-at step" on stderr and stops right there, so a crash test can kill it at that exact point.
 * Without the variable it costs one comparison.
 */
const wanted = process.env.RIS_TEST_PAUSE_AT;
const seen = new Map<string, number>();

export function pausePoint(step: string): void {
  if (!wanted) return;
  const count = (seen.get(step) ?? 0) + 1;
  seen.set(step, count);
  const [name, nth] = wanted.split('@');
  if (name !== step || count !== Number(nth ?? 1)) return;
  writeSync(2, `ris-paused-at ${step}\n`);
  // Blocks this thread (timers, I/O and all) until the test kills the process.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}
