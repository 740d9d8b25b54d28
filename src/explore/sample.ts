import { Random } from '../ann/random.ts';

/**
 * `count` of the positions 0 … n − 1, chosen at random by `seed` (the same seed, the same choice), in
 * ascending order; all of them when n ≤ count.
 */
export function sampleIndices(n: number, count: number, seed: number): Uint32Array {
  if (n <= count) return Uint32Array.from({ length: n }, (_, i) => i);
  return new Random(seed).sample(n, count).sort();
}

/**
 * At most `cap` of the positions 0 … n − 1: every one `keep` says to keep (while they fit), then a seeded
 * random choice of the rest; ascending. Used to keep the results in a capped set of candidates.
 */
export function sampleKeeping(
  n: number,
  cap: number,
  keep: (i: number) => boolean,
  seed: number,
): Uint32Array {
  if (n <= cap) return Uint32Array.from({ length: n }, (_, i) => i);
  const kept: number[] = [];
  const others: number[] = [];
  for (let i = 0; i < n; i++) (keep(i) && kept.length < cap ? kept : others).push(i);
  const chosen = new Random(seed).sample(others.length, cap - kept.length);
  const out = new Uint32Array(cap);
  out.set(kept);
  for (let j = 0; j < chosen.length; j++) out[kept.length + j] = others[chosen[j]!]!;
  return out.sort();
}

/** A seeded permutation of 0 … n − 1 (a partition's gallery order: the same on every page). */
export function permutation(n: number, seed: number): Uint32Array {
  return new Random(seed).sample(n, n);
}
