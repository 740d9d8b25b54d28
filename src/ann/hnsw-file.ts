import { type DecodedIndexFile, damaged } from './format.ts';
import type { GraphStorage } from './kernels/types.ts';
import { NO_ID } from './types.ts';

/**
 * The graph sections of an HNSW file, checked before any kernel follows them: links stay inside the graph
 * (the kernels follow them without checks), levels and removed flags are in range, the upper-level table
 * and the entry point agree with the parameters. Anything else is a damaged file.
 */
export function checkedGraphSections(
  file: DecodedIndexFile,
  p: { upperUsed: number; tombstones: number; entry: number; maxLevel: number },
  shape: { n: number; d: number; m: number; storage: GraphStorage; maxLevel: number },
) {
  const { n, d, m, storage, maxLevel } = shape;
  const stride = 2 * m + 1;
  const ids = file.section('IDS ', Uint32Array, n);
  const levels = file.section('LEVL', Uint8Array, n);
  const level0 = file.section('LNK0', Uint32Array, n * stride);
  const upper = file.section('LNKU', Uint32Array, p.upperUsed);
  const deleted = file.section('DELS', Uint8Array, n);
  const vectors =
    storage === 'float32'
      ? file.section('VECS', Float32Array, n * d)
      : storage === 'float16'
        ? file.section('VECS', Uint16Array, n * d)
        : file.section('VECS', Uint8Array, n * d);
  let upperWords = 0;
  let tombstones = 0;
  for (let v = 0; v < n; v++) {
    if (levels[v]! > maxLevel) throw damaged(file.name, 'a node level');
    upperWords += levels[v]! * (m + 1);
    if (deleted[v]! > 1) throw damaged(file.name, 'a removed flag');
    tombstones += deleted[v]!;
  }
  if (upperWords !== p.upperUsed || tombstones !== p.tombstones) throw damaged(file.name, 'its link table');
  const checkLinks = (links: Uint32Array, start: number, max: number) => {
    const count = links[start]!;
    if (count > max) throw damaged(file.name, 'a link');
    for (let i = 1; i <= count; i++) if (links[start + i]! >= n) throw damaged(file.name, 'a link');
  };
  const offsets = new Uint32Array(n);
  for (let v = 0, at = 0; v < n; v++) {
    checkLinks(level0, v * stride, 2 * m);
    offsets[v] = at;
    for (let l = 0; l < levels[v]!; l++) checkLinks(upper, at + l * (m + 1), m);
    at += levels[v]! * (m + 1);
  }
  if (n > 0 ? p.entry >= n || p.maxLevel !== levels[p.entry] : p.entry !== NO_ID) {
    throw damaged(file.name, 'its entry point');
  }
  return { ids, levels, level0, upper, deleted, vectors, offsets, tombstones };
}
