import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededPage } from '../src/collection/shuffle.ts';

const range = (from: number, to: number) => Uint32Array.from({ length: to - from }, (_, i) => from + i);
const allPages = (ids: ArrayLike<number>, seed: number, count: number) => {
  const out: number[] = [];
  for (let page = 0; out.length < ids.length; page++) out.push(...seededPage(ids, seed, page, count));
  return out;
};

describe('the seeded order of a gallery', () => {
  it('pages through every id once, the same for one seed, another for another seed', () => {
    const ids = range(1, 1001);
    const order = allPages(ids, 7, 30);
    assert.equal(order.length, 1000);
    assert.equal(new Set(order).size, 1000);
    assert.deepEqual(allPages(ids, 7, 30), order);
    assert.deepEqual(allPages(ids, 7, 7), order, 'pages of another size cut the same order');
    const other = allPages(ids, 8, 30);
    assert.ok(other.filter((id, i) => order[i] === id).length < 20, 'another seed, another order');
    assert.deepEqual(seededPage(ids, 7, 40, 30), [], 'past the end');
  });

  it('is not the order of the ids: each tenth of them is spread over the first pages', () => {
    const first = seededPage(range(0, 10_000), 3, 0, 200);
    const tenths = new Array<number>(10).fill(0);
    for (const id of first) tenths[Math.floor(id / 1000)]!++;
    for (const n of tenths) assert.ok(n > 5 && n < 40, `${tenths}`);
  });

  it('keeps the others in their order when ids are added or removed', () => {
    const before = allPages(range(1, 501), 11, 20);
    const grown = allPages(range(1, 521), 11, 20);
    assert.deepEqual(
      grown.filter((id) => id <= 500),
      before,
    );
    const removed = new Set([3, 50, 499]);
    const shrunk = allPages(
      range(1, 501).filter((id) => !removed.has(id)),
      11,
      20,
    );
    assert.deepEqual(
      shrunk,
      before.filter((id) => !removed.has(id)),
    );
    // The first page of a gallery keeps most of its pictures after an upload of 20 to 500.
    const kept = seededPage(range(1, 521), 11, 0, 20).filter((id) => id <= 500);
    assert.deepEqual(kept, before.slice(0, kept.length));
  });
});
