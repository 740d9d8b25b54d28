import { readFile, writeFile } from 'node:fs/promises';
import { FileFormatError } from '../errors.ts';

/** Reads a .fvecs file (per vector: int32 dimension, then that many float32) into one row-major matrix. */
export async function readFvecs(
  path: string,
): Promise<{ vectors: Float32Array; dimension: number; count: number }> {
  const bytes = await readFile(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4)
    throw new FileFormatError('TRUNCATED_FILE', `${path} is too short to be a .fvecs file`);
  const dimension = view.getInt32(0, true);
  const rowBytes = 4 + 4 * dimension;
  if (dimension <= 0 || bytes.length % rowBytes !== 0) {
    throw new FileFormatError(
      'CORRUPT_FILE',
      `${path} is not a .fvecs file of ${dimension}-dimensional vectors`,
    );
  }
  const count = bytes.length / rowBytes;
  const vectors = new Float32Array(count * dimension);
  for (let i = 0; i < count; i++) {
    if (view.getInt32(i * rowBytes, true) !== dimension) {
      throw new FileFormatError('CORRUPT_FILE', `${path}: vector ${i} has another dimension than the first`);
    }
    for (let j = 0; j < dimension; j++)
      vectors[i * dimension + j] = view.getFloat32(i * rowBytes + 4 + 4 * j, true);
  }
  return { vectors, dimension, count };
}

export async function writeFvecs(path: string, vectors: Float32Array, dimension: number): Promise<void> {
  const count = vectors.length / dimension;
  const bytes = Buffer.alloc(count * (4 + 4 * dimension));
  for (let i = 0; i < count; i++) {
    const o = i * (4 + 4 * dimension);
    bytes.writeInt32LE(dimension, o);
    for (let j = 0; j < dimension; j++) bytes.writeFloatLE(vectors[i * dimension + j]!, o + 4 + 4 * j);
  }
  await writeFile(path, bytes);
}
