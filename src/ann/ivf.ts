import { ArgumentError } from '../errors.ts';
import { refuseRetrain } from './vector-index.ts';

/** What IVF-Flat and IVF-PQ share beyond the coarse quantizer: the training checks and residuals. */

/**
 * Checks that an IVF index may be trained on n vectors and returns its number of partitions: the one
 * asked for, or about √n. `minimum` is what the rest of the index needs (256 for 8-bit PQ codes).
 */
export function partitionsForTraining(
  index: { size: number; trained: boolean },
  n: number,
  numPartitions: number | undefined,
  minimum: number,
  what: string,
): number {
  refuseRetrain(index);
  const partitions = numPartitions ?? Math.max(1, Math.round(Math.sqrt(n)));
  const needed = Math.max(partitions, minimum);
  if (n < needed) {
    throw new ArgumentError(
      'TOO_FEW_TRAINING_VECTORS',
      `Training ${what} with ${partitions} partitions needs at least ${needed} vectors but received ${n}; ` +
        'pass more training vectors (ideally 40 or more per partition) or lower numPartitions',
    );
  }
  return partitions;
}

/** Each row minus the centroid of its partition. */
export function residuals(
  data: Float32Array,
  n: number,
  d: number,
  centroids: Float32Array,
  labels: Int32Array,
): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = labels[i]! * d;
    for (let j = 0; j < d; j++) out[i * d + j] = data[i * d + j]! - centroids[c + j]!;
  }
  return out;
}

/** What `explainSearch` of an IVF index (IVF-Flat, IVF-PQ) returns. */
export interface IvfExplanation {
  /** The coarse step: which partitions the query visits. */
  coarse: {
    /** The distance from the query to every partition's centroid (numPartitions values, by partition). */
    distances: Float32Array;
    /** The partitions probed, in probe order (nearest centroid first): nprobes of them. */
    probed: Uint32Array;
  };
  /** The fine step: every vector of the probed partitions, as scanned. */
  fine: {
    /** Struct of arrays, partition after partition in probe order, each partition in its stored order. */
    ids: Uint32Array;
    partitions: Uint32Array;
    /** The distance the scan ranked by: exact for IVF-Flat, the product-quantized estimate for IVF-PQ. */
    distances: Float32Array;
    /** The k results, exactly what `search` returns (for IVF-PQ with refineFactor, re-ranked exactly). */
    results: { ids: Uint32Array; distances: Float32Array };
  };
}

/** Options of `explainSearch`, as for search: nprobes, and for IVF-PQ refineFactor. */
export interface ExplainOptions {
  nprobes?: number;
  refineFactor?: number;
}

/**
 * Collects what one query's IVF search did: the probes, then each scanned partition's ids and
 * distances (internal, turned public at the end).
 */
export class ScanRecorder {
  probed = new Uint32Array(0);
  private readonly chunks: { partition: number; ids: Uint32Array; distances: Float32Array }[] = [];

  probes(partitions: Uint32Array, count: number): void {
    this.probed = partitions.slice(0, count);
  }

  scanned(partition: number, ids: Uint32Array, distances: Float32Array, size: number): void {
    this.chunks.push({ partition, ids: ids.slice(0, size), distances: distances.slice(0, size) });
  }

  fine(toPublic: (internal: number) => number): Omit<IvfExplanation['fine'], 'results'> {
    const total = this.chunks.reduce((s, c) => s + c.ids.length, 0);
    const out = {
      ids: new Uint32Array(total),
      partitions: new Uint32Array(total),
      distances: new Float32Array(total),
    };
    let at = 0;
    for (const chunk of this.chunks) {
      out.ids.set(chunk.ids, at);
      out.partitions.fill(chunk.partition, at, at + chunk.ids.length);
      for (let i = 0; i < chunk.ids.length; i++) out.distances[at + i] = toPublic(chunk.distances[i]!);
      at += chunk.ids.length;
    }
    return out;
  }
}

/** Every partition's distance to one query (internal: ‖q − c‖², or −⟨q, c⟩ for dot), from its products. */
export function centroidDistances(
  products: Float32Array,
  queryNorm: number,
  centroidNorms: Float32Array,
  dot: boolean,
): Float32Array {
  return products.map((ip, l) => (dot ? -ip : queryNorm + centroidNorms[l]! - 2 * ip));
}
