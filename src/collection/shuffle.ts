/**
 * A seeded random order of image ids that new ids join without moving the others: each id's place comes
 * from a hash of (seed, id) alone, so a gallery paged with one seed keeps its pictures where they were
 * while images are added or removed (a Fisher–Yates order over positions would reshuffle them all).
 */

/** A 32-bit hash of (seed, id): murmur3's finaliser over both. */
function rank(seed: number, id: number): number {
  let h = (Math.imul(id, 0x9e3779b1) ^ seed) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The ids at positions `page * count` to `(page + 1) * count` of the seeded order of `ids`. Costs
 * O(n log m) for m = (page + 1) * count: a max-heap keeps the m first.
 */
export function seededPage(ids: ArrayLike<number>, seed: number, page: number, count: number): number[] {
  const m = Math.min(ids.length, (page + 1) * count);
  if (m <= page * count) return [];
  const heapRanks = new Float64Array(m);
  const heapIds = new Float64Array(m);
  let size = 0;
  // a comes after b in the order (ties, which hashes make rare, go by id)
  const after = (ra: number, ia: number, rb: number, ib: number) => ra > rb || (ra === rb && ia > ib);
  const siftDown = (at: number) => {
    for (;;) {
      const left = 2 * at + 1;
      if (left >= size) return;
      let top = left;
      if (
        left + 1 < size &&
        after(heapRanks[left + 1]!, heapIds[left + 1]!, heapRanks[left]!, heapIds[left]!)
      )
        top = left + 1;
      if (!after(heapRanks[top]!, heapIds[top]!, heapRanks[at]!, heapIds[at]!)) return;
      [heapRanks[at], heapRanks[top]] = [heapRanks[top]!, heapRanks[at]!];
      [heapIds[at], heapIds[top]] = [heapIds[top]!, heapIds[at]!];
      at = top;
    }
  };
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const r = rank(seed, id);
    if (size < m) {
      let at = size++;
      heapRanks[at] = r;
      heapIds[at] = id;
      while (at > 0) {
        const parent = (at - 1) >> 1;
        if (!after(heapRanks[at]!, heapIds[at]!, heapRanks[parent]!, heapIds[parent]!)) break;
        [heapRanks[at], heapRanks[parent]] = [heapRanks[parent]!, heapRanks[at]!];
        [heapIds[at], heapIds[parent]] = [heapIds[parent]!, heapIds[at]!];
        at = parent;
      }
    } else if (after(heapRanks[0]!, heapIds[0]!, r, id)) {
      heapRanks[0] = r;
      heapIds[0] = id;
      siftDown(0);
    }
  }
  const first = Array.from({ length: size }, (_, i) => i).sort((a, b) =>
    after(heapRanks[a]!, heapIds[a]!, heapRanks[b]!, heapIds[b]!) ? 1 : -1,
  );
  return first.slice(page * count).map((i) => heapIds[i]!);
}
