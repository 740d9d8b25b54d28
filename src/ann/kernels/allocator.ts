const ALIGN = 64;

/**
 * First-fit allocator over a linear memory (a WebAssembly module's, or the TypeScript kernels' buffer),
 * kept on the JavaScript side because the kernels themselves never allocate. Blocks are 64-byte aligned (cache lines, and v128 loads).
 */
export class LinearAllocator {
  private readonly free: { start: number; size: number }[] = [];
  /** The end of the allocated region; blocks given back at the end lower it again. */
  top: number;

  /** Allocates from `base` up (what lies below is the module's own); `ensure` makes room up to a byte. */
  constructor(
    base: number,
    private readonly ensure: (bytes: number) => void,
  ) {
    this.top = base;
  }

  alloc(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const block = this.free[i]!;
      if (block.size >= size) {
        const start = block.start;
        if (block.size === size) this.free.splice(i, 1);
        else {
          block.start += size;
          block.size -= size;
        }
        return start;
      }
    }
    const start = this.top;
    this.top += size;
    this.ensure(this.top);
    return start;
  }

  release(start: number, bytes: number): void {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    if (start + size === this.top) {
      this.top = start;
      // Merge a free block that now touches the top back into it.
      const last = this.free[this.free.length - 1];
      if (last && last.start + last.size === this.top) {
        this.top = last.start;
        this.free.pop();
      }
      return;
    }
    let i = 0;
    while (i < this.free.length && this.free[i]!.start < start) i++;
    this.free.splice(i, 0, { start, size });
    const next = this.free[i + 1];
    if (next && start + size === next.start) {
      this.free[i]!.size += next.size;
      this.free.splice(i + 1, 1);
    }
    const prev = this.free[i - 1];
    if (prev && prev.start + prev.size === start) {
      prev.size += this.free[i]!.size;
      this.free.splice(i, 1);
    }
  }
}
