import { writeSync } from 'node:fs';

/**
 * A test-only hook: with RIS_TEST_PAUSE_AT=step (or step@n for its n-th time), the process prints
 * "ris-paused-at step" on stderr and stops right there (SIGSTOP: timers, I/O and threads all frozen), so a
 * test can kill it at that exact point (SIGKILL), or change the world around it (restart the database) and
 * let it go on (SIGCONT). Without the variable it costs one comparison.
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
  process.kill(process.pid, 'SIGSTOP');
}
