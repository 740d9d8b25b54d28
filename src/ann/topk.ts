/**
 * The k smallest distances seen so far, as a binary max-heap over typed arrays: the root is the worst
 * kept candidate, so most candidates are rejected by one comparison. Each entry carries two payload
 * numbers (an inverted list and a position in it, or an id and nothing).
 */
export class TopK {
  readonly distances: Float32Array;
  readonly a: Uint32Array;
  readonly b: Uint32Array;
  size = 0;

  constructor(readonly k: number) {
    this.distances = new Float32Array(k);
    this.a = new Uint32Array(k);
    this.b = new Uint32Array(k);
  }

  reset(): void {
    this.size = 0;
  }

  /** The distance a candidate must beat to enter (Infinity while the heap is not full). */
  get bound(): number {
    return this.size < this.k ? Number.POSITIVE_INFINITY : this.distances[0]!;
  }

  push(distance: number, a: number, b: number): void {
    const dist = this.distances;
    if (this.size < this.k) {
      // Sift up.
      let i = this.size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (dist[parent]! >= distance) break;
        dist[i] = dist[parent]!;
        this.a[i] = this.a[parent]!;
        this.b[i] = this.b[parent]!;
        i = parent;
      }
      dist[i] = distance;
      this.a[i] = a;
      this.b[i] = b;
      return;
    }
    if (distance >= dist[0]!) return;
    this.siftDown(0, this.size, distance, a, b);
  }

  private siftDown(start: number, size: number, distance: number, a: number, b: number): void {
    const dist = this.distances;
    let i = start;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && dist[child + 1]! > dist[child]!) child++;
      if (dist[child]! <= distance) break;
      dist[i] = dist[child]!;
      this.a[i] = this.a[child]!;
      this.b[i] = this.b[child]!;
      i = child;
    }
    dist[i] = distance;
    this.a[i] = a;
    this.b[i] = b;
  }

  /** Sorts the kept entries in place, nearest first (heap sort); returns how many there are. */
  sort(): number {
    const n = this.size;
    for (let end = n - 1; end > 0; end--) {
      const d = this.distances[end]!;
      const a = this.a[end]!;
      const b = this.b[end]!;
      this.distances[end] = this.distances[0]!;
      this.a[end] = this.a[0]!;
      this.b[end] = this.b[0]!;
      this.siftDown(0, end, d, a, b);
    }
    return n;
  }
}
