// The 1,000,000-vector row of bench:duplicates: the index stage of grouping at scale.
import type { HnswBuilder } from '../src/ann/hnsw-parallel.ts';
export async function millionRow(_builder: HnswBuilder): Promise<void> {
  console.log('\n1,000,000 synthetic vectors: not measured yet');
}
