// The real `ris` binary in tests: run to the end, in the background, or killed at a pause point.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const bin = join(import.meta.dirname, '..', 'bin', 'ris.js');

/** Datasets and models come from a local mirror or nowhere: no test reaches the internet. */
export const OFFLINE = { RIS_DATASET_MIRROR: 'http://127.0.0.1:9', RIS_MODEL_MIRROR: 'http://127.0.0.1:9' };

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `ris` binary to the end. */
export function ris(
  home: string,
  args: string[],
  env: Record<string, string> = {},
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<Run> {
  return promisify(execFile)(process.execPath, [bin, ...args], {
    env: { ...process.env, ...OFFLINE, RIS_HOME: home, ...env },
    maxBuffer: 1 << 24,
    cwd: options.cwd,
    // A command that should have ended (a refusal) is killed instead of keeping the test waiting.
    timeout: options.timeoutMs,
    killSignal: 'SIGKILL',
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({
      code: e.code,
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
}

/** Processes started by `start` that have not exited yet. */
const running = new Set<ChildProcess>();

/** Kills what a failed test left running (a paused server would keep the test process waiting). */
export function killLeftovers(): void {
  for (const child of running) child.kill('SIGKILL');
}

/** A `ris` process in the background, killable at will. */
export function start(home: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, ...OFFLINE, RIS_HOME: home, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<Run>((resolve) =>
    child.once('exit', (code) => resolve({ code, stdout, stderr })),
  );
  return {
    child,
    exited,
    stderr: () => stderr,
    stdout: () => stdout,
    /** Resolves true once the process prints `text` on stderr, false if it exits first. */
    async waitFor(text: string, timeoutMs = 60_000): Promise<boolean> {
      const until = Date.now() + timeoutMs;
      while (!stderr.includes(text)) {
        if (child.exitCode !== null || Date.now() > until) return false;
        await new Promise((r) => setTimeout(r, 10));
      }
      return true;
    },
    kill(): Promise<Run> {
      child.kill('SIGKILL');
      return exited;
    },
  };
}

/** Runs `ris` until the test-only pause point `step`, then kills it there with SIGKILL. */
export async function killAt(
  home: string,
  args: string[],
  step: string,
): Promise<{ paused: boolean; run: Run }> {
  const process = start(home, args, { RIS_TEST_PAUSE_AT: step });
  const paused = await process.waitFor(`ris-paused-at ${step.split('@')[0]}`);
  const run = paused ? await process.kill() : await process.exited;
  return { paused, run };
}

/** A `ris serve` process on a port of its own, once it listens, with its address. */
export async function serveProcess(home: string, args: string[], env: Record<string, string> = {}) {
  const server = start(home, ['serve', '--port', '0', ...args], env);
  const until = Date.now() + 60_000;
  const address = () => /API: (http:\S+)\/api\/collections/.exec(server.stdout())?.[1];
  while (!address()) {
    if (server.child.exitCode !== null || Date.now() > until)
      throw new Error(`ris serve did not start: ${server.stderr()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return { ...server, url: address()! };
}
