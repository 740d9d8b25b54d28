/** Disjoint sets over 0…n−1 with path halving and union by size: the groups grown from matched pairs. */
export class UnionFind {
  private readonly parent: Uint32Array;
  private readonly size: Uint32Array;

  constructor(n: number) {
    this.parent = new Uint32Array(n);
    this.size = new Uint32Array(n).fill(1);
    for (let i = 0; i < n; i++) this.parent[i] = i;
  }

  find(x: number): number {
    const parent = this.parent;
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  }

  /** Joins the sets of a and b; false when they were one already. */
  union(a: number, b: number): boolean {
    let ra = this.find(a);
    let rb = this.find(b);
    if (ra === rb) return false;
    if (this.size[ra]! < this.size[rb]!) [ra, rb] = [rb, ra];
    this.parent[rb] = ra;
    this.size[ra]! += this.size[rb]!;
    return true;
  }

  /** The sets of two or more members, each as its members ascending; sets in order of their smallest member. */
  groups(): Uint32Array[] {
    const members = new Map<number, number[]>();
    for (let i = 0; i < this.parent.length; i++) {
      const root = this.find(i);
      if (this.size[root]! < 2) continue;
      const list = members.get(root);
      if (list) list.push(i);
      else members.set(root, [i]);
    }
    return [...members.values()].map((list) => Uint32Array.from(list));
  }
}

/** What the keeper rule looks at. */
export interface KeeperFacts {
  id: number;
  width: number;
  height: number;
  bytes: number;
  /** When the image joined the collection (ISO 8601). */
  addedAt: string;
}

/**
 * Orders a group's images best first: the one to keep has the most pixels, then the largest file (the
 * least compressed of equal sizes), then the earliest added (the original, not the copy made later),
 * then the smallest id.
 */
export function keeperOrder(a: KeeperFacts, b: KeeperFacts): number {
  return (
    b.width * b.height - a.width * a.height ||
    b.bytes - a.bytes ||
    (a.addedAt < b.addedAt ? -1 : a.addedAt > b.addedAt ? 1 : 0) ||
    a.id - b.id
  );
}
