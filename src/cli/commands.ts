import { readFile } from 'node:fs/promises';
import { decodeIndexFile } from '../ann/format.ts';
import { DISTANCE_TYPES } from '../ann/metric.ts';

const KINDS = ['unknown', 'flat', 'ivf-flat', 'ivf-pq'];

/** One line per fact about an index file, after verifying its checksum. */
export async function describeIndexFile(path: string): Promise<string> {
  const bytes = new Uint8Array(await readFile(path));
  const { fields } = decodeIndexFile(bytes, path);
  return [
    `kind          ${KINDS[fields.kind] ?? fields.kind}`,
    `vectors       ${fields.count}`,
    `dimension     ${fields.dimension}${fields.innerDimension !== fields.dimension ? ` (→ ${fields.innerDimension} after transform)` : ''}`,
    `distance      ${DISTANCE_TYPES[fields.distanceType]}`,
    fields.numPartitions ? `partitions    ${fields.numPartitions}` : '',
    fields.numSubVectors ? `sub-vectors   ${fields.numSubVectors} × ${fields.numBits} bits` : '',
    `file size     ${bytes.length} bytes (checksum ok)`,
  ]
    .filter(Boolean)
    .join('\n');
}
