import { ArgumentError } from '../errors.ts';
import { float16Table, toFloat16Bits } from './float16.ts';
import type { GraphKernel, GraphStorage } from './kernels/types.ts';

/** The largest magnitude float16 holds; larger values would become Infinity. */
const FLOAT16_MAX = 65504;

/** The typed array of the values of `storage`. */
export function rowArrayType(
  storage: GraphStorage,
): Float32ArrayConstructor | Uint16ArrayConstructor | Uint8ArrayConstructor {
  return storage === 'float32' ? Float32Array : storage === 'float16' ? Uint16Array : Uint8Array;
}

/** The graph's blocks viewed as the values of `storage`, and the block stride in values. */
function rowView(
  graph: GraphKernel,
  storage: GraphStorage,
): { values: Float32Array | Uint16Array | Uint8Array; stride: number } {
  const bytes = graph.blocks();
  const type = rowArrayType(storage);
  return {
    values: new type(
      bytes.buffer as ArrayBuffer,
      bytes.byteOffset,
      bytes.byteLength / type.BYTES_PER_ELEMENT,
    ),
    stride: graph.blockBytes / type.BYTES_PER_ELEMENT,
  };
}

/**
 * Writes rows [first, first + n) of an HNSW graph from n × d float32 values (already normalized for
 * cosine). int8 rows are scalar-quantized per dimension, x̂_j = lo_j + scale_j · c_j with c_j in 0…255:
 * the first rows set each dimension's range; a later value outside it widens the range (by a tenth of
 * it again, so a stream of slightly larger values does not re-encode every time) and re-encodes the
 * `count` rows already stored in that dimension. float16 refuses values it cannot hold.
 */
export function writeRows(
  graph: GraphKernel,
  storage: GraphStorage,
  first: number,
  count: number,
  data: Float32Array,
  n: number,
  d: number,
): void {
  if (storage === 'float16') {
    for (let i = 0; i < n * d; i++) {
      const v = data[i]!;
      if (v > FLOAT16_MAX || v < -FLOAT16_MAX) {
        throw new ArgumentError(
          'OUT_OF_RANGE',
          `Expected vectors to fit float16 storage (|value| ≤ ${FLOAT16_MAX}) but value ${i % d} of row ${Math.floor(i / d)} is ${v}; ` +
            "use storage: 'float32', or scale the vectors down",
        );
      }
    }
  }
  if (storage === 'int8') {
    widenRanges(graph, count, data, n, d);
    encodeRows(graph, first, data, n, d);
    return;
  }
  const { values, stride } = rowView(graph, storage);
  if (storage === 'float32') {
    for (let i = 0; i < n; i++) values.set(data.subarray(i * d, (i + 1) * d), (first + i) * stride);
    return;
  }
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) values[(first + i) * stride + j] = toFloat16Bits(data[i * d + j]!);
}

/** Nearer a tie than this, x · (1/s) may round otherwise than x / s (it is within 10⁻¹³ of it). */
const NEAR_TIE = 0.5 - 1e-9;

/** int8 codes c_j = round((x_j − lo_j) / scale_j), clamped to 0…255, and terms of rows [first, first + n). */
function encodeRows(graph: GraphKernel, first: number, data: Float32Array, n: number, d: number): void {
  const codes = graph.blocks();
  const stride = graph.blockBytes;
  const quant = graph.quantizer();
  const terms = graph.terms();
  // Codes as Math.round(x / s) gives them, three times as fast: x · (1/s) instead of a division, and
  // floor(v + 0.5) instead of Math.round's branch (taken at random here); only near a tie, where they
  // could differ, the division and Math.round.
  const inverse = new Float64Array(d);
  for (let j = 0; j < d; j++) inverse[j] = quant[d + j]! > 0 ? 1 / quant[d + j]! : 0;
  for (let i = 0; i < n; i++) {
    let term = 0;
    const at = (first + i) * stride;
    const row = i * d;
    for (let j = 0; j < d; j++) {
      const scale = quant[d + j]!;
      const offset = data[row + j]! - quant[j]!;
      const v = offset * inverse[j]!;
      let c = Math.floor(v + 0.5);
      if (Math.abs(v - c) > NEAR_TIE) c = Math.round(offset / scale);
      c = Math.min(255, Math.max(0, c));
      codes[at + j] = c;
      term += (scale * c) ** 2;
    }
    terms[first + i] = term;
  }
}

/** Makes every int8 range hold the new rows, re-encoding the `count` rows stored where a range grows. */
function widenRanges(graph: GraphKernel, count: number, data: Float32Array, n: number, d: number): void {
  if (n === 0) return;
  const quant = graph.quantizer();
  const low = new Float64Array(d).fill(Number.POSITIVE_INFINITY);
  const high = new Float64Array(d).fill(Number.NEGATIVE_INFINITY);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < d; j++) {
      const v = data[i * d + j]!;
      if (v < low[j]!) low[j] = v;
      if (v > high[j]!) high[j] = v;
    }
  const grown: number[] = [];
  const oldLo = quant.slice(0, d);
  const oldScale = quant.slice(d);
  for (let j = 0; j < d; j++) {
    if (count === 0) {
      quant[j] = low[j]!;
      quant[d + j] = (high[j]! - low[j]!) / 255;
      continue;
    }
    const lo = oldLo[j]!;
    const hi = lo + 255 * oldScale[j]!;
    if (low[j]! >= lo && high[j]! <= hi) continue;
    let newLo = Math.min(lo, low[j]!);
    let newHi = Math.max(hi, high[j]!);
    const margin = 0.1 * (newHi - newLo);
    if (low[j]! < lo) newLo -= margin;
    if (high[j]! > hi) newHi += margin;
    quant[j] = newLo;
    quant[d + j] = (newHi - newLo) / 255;
    grown.push(j);
  }
  if (grown.length === 0) return;
  // Re-encode the stored rows in the dimensions that grew, from their decoded values.
  const codes = graph.blocks();
  const stride = graph.blockBytes;
  const terms = graph.terms();
  for (let i = 0; i < count; i++) {
    const at = i * stride;
    for (const j of grown) {
      const value = oldLo[j]! + oldScale[j]! * codes[at + j]!;
      const scale = quant[d + j]!;
      codes[at + j] = scale > 0 ? Math.min(255, Math.max(0, Math.round((value - quant[j]!) / scale))) : 0;
    }
    let term = 0;
    for (let j = 0; j < d; j++) term += (quant[d + j]! * codes[at + j]!) ** 2;
    terms[i] = term;
  }
}

/** Nodes [0, n)'s rows as stored (float32 values, float16 bits or int8 codes), end to end: the file's layout. */
export function gatherRows(
  graph: GraphKernel,
  storage: GraphStorage,
  n: number,
  d: number,
): Float32Array | Uint16Array | Uint8Array {
  const { values, stride } = rowView(graph, storage);
  const out = new (rowArrayType(storage))(n * d);
  for (let i = 0; i < n; i++) out.set(values.subarray(i * stride, i * stride + d), i * d);
  return out;
}

/** The inverse of gatherRows: rows laid end to end into nodes [0, n)'s blocks. */
export function scatterRows(
  graph: GraphKernel,
  storage: GraphStorage,
  rows: Float32Array | Uint16Array | Uint8Array,
  n: number,
  d: number,
): void {
  const { values, stride } = rowView(graph, storage);
  for (let i = 0; i < n; i++) values.set(rows.subarray(i * d, (i + 1) * d), i * stride);
}

/** Node `node`'s row decoded to float32 (for int8, the dequantized values). */
export function readRow(graph: GraphKernel, storage: GraphStorage, node: number, d: number): Float32Array {
  const { values, stride } = rowView(graph, storage);
  const row = values.subarray(node * stride, node * stride + d);
  if (storage === 'float32') return Float32Array.from(row);
  if (storage === 'float16') return Float32Array.from(row, (bits) => float16Table[bits]!);
  const quant = graph.quantizer();
  return Float32Array.from(row, (c, j) => quant[j]! + quant[d + j]! * c);
}

/** int8 terms Σ (scale_j c_j)² of nodes [0, n), recomputed (a file keeps only the codes). */
export function computeTerms(graph: GraphKernel, n: number, d: number): void {
  const codes = graph.blocks();
  const stride = graph.blockBytes;
  const quant = graph.quantizer();
  const terms = graph.terms();
  for (let i = 0; i < n; i++) {
    let term = 0;
    for (let j = 0; j < d; j++) term += (quant[d + j]! * codes[i * stride + j]!) ** 2;
    terms[i] = term;
  }
}
