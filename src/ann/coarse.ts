import { type Kernels, kernels, type ResidentMatrix, residentOn } from './kernels/index.ts';
import { type Assigner, kmeans, rowNorms } from './kmeans.ts';
import type { DistanceType } from './metric.ts';
import type { TopK } from './topk.ts';

/** k-means iterations of the coarse quantizer unless told otherwise. */
export const COARSE_ITERATIONS = 10;

/** The coarse quantizer of an IVF index: partition centroids, and which partitions a query should visit. */
export class CoarseQuantizer {
  centroids: Float32Array;
  readonly numPartitions: number;
  readonly norms: Float32Array;
  private resident: ResidentMatrix | undefined;

  constructor(
    centroids: Float32Array,
    readonly dimension: number,
  ) {
    this.centroids = centroids;
    this.numPartitions = centroids.length / dimension;
    this.norms = rowNorms(centroids, this.numPartitions, dimension);
  }

  static async train(
    data: Float32Array,
    dimension: number,
    numPartitions: number,
    options: { seed?: number; maxIterations?: number; assigner?: Assigner },
  ): Promise<CoarseQuantizer> {
    // Ten iterations (COARSE_ITERATIONS), as faiss uses for IVF: partitions only need to be roughly
    // balanced and compact.
    const { centroids } = await kmeans(data, dimension, {
      numCentroids: numPartitions,
      ...options,
      maxIterations: options.maxIterations ?? COARSE_ITERATIONS,
    });
    return new CoarseQuantizer(centroids, dimension);
  }

  residentCentroids(K: Kernels = kernels()): ResidentMatrix {
    this.resident = residentOn(K, this.resident, this.centroids);
    return this.resident;
  }

  /**
   * The partition of each of n vectors: the nearest centroid, or for `dot` the one with the largest
   * inner product, so that vectors land where a query with the same metric will look.
   */
  assign(data: Float32Array, n: number, metric: DistanceType): Int32Array {
    const K = kernels();
    const labels = new Int32Array(n);
    const norms = metric === 'dot' ? new Float32Array(this.numPartitions) : this.norms;
    const centroids = { source: this.residentCentroids(K) };
    K.nearest(
      { source: data },
      n,
      centroids,
      this.numPartitions,
      this.dimension,
      norms,
      labels,
      new Float32Array(n),
    );
    return labels;
  }

  /** ⟨q_i, c_l⟩ for the nq queries and every partition: nq × numPartitions. */
  products(queries: Float32Array, nq: number): Float32Array {
    const K = kernels();
    const out = new Float32Array(nq * this.numPartitions);
    K.gemmNT(
      { source: queries },
      nq,
      { source: this.residentCentroids(K) },
      this.numPartitions,
      this.dimension,
      out,
    );
    return out;
  }

  /**
   * The partitions to visit (as many as `heap` holds: nprobes) for query `row` of a batch, nearest first, with the query's internal
   * distance to each centroid (‖q − c‖² for l2 and cosine, −⟨q, c⟩ for dot).
   */
  probe(products: Float32Array, row: number, queryNorm: number, metric: DistanceType, heap: TopK): number {
    heap.reset();
    const L = this.numPartitions;
    const base = row * L;
    for (let l = 0; l < L; l++) {
      const ip = products[base + l]!;
      const d = metric === 'dot' ? -ip : queryNorm + this.norms[l]! - 2 * ip;
      if (d < heap.bound) heap.push(d, l, 0);
    }
    return heap.sort();
  }

  dispose(): void {
    this.resident?.dispose();
    this.resident = undefined;
  }
}
