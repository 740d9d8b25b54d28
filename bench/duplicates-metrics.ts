// Pair precision and recall of reported groups against the families of the benchmark set.
import { EDITS, type EditKind } from '../src/duplicates/edits.ts';
import type { SetImage } from './duplicates-set.ts';

export interface PairScore {
  /** Reported pairs, and those of them within one family. */
  reported: number;
  correct: number;
  /** Pairs within families. */
  truth: number;
  precision: number;
  recall: number;
}

export type Row = 'all but rotation' | EditKind;

const pairs = (n: number) => (n * (n - 1)) / 2;

/**
 * Scores groups (lists of set images) by pairs: a pair is any two images in one group; the truth is
 * every pair within a family (an original and its copies). The row of an edit counts the pairs that hold
 * a copy of that edit; every row but rotation leaves quarter-turned copies out, and the rotation row
 * counts the pairs that hold one.
 */
export function scoreGroups(groups: SetImage[][], images: SetImage[]): Map<Row, PairScore> {
  const rows: Row[] = ['all but rotation', ...EDITS];
  const out = new Map<Row, PairScore>();
  for (const row of rows) {
    const { reported, correct } = count(groups, row);
    const truth = count(familiesOf(images), row).correct;
    out.set(row, {
      reported,
      correct,
      truth,
      precision: reported === 0 ? 1 : correct / reported,
      recall: truth === 0 ? 1 : correct / truth,
    });
  }
  return out;
}

function familiesOf(images: SetImage[]): SetImage[][] {
  const families = new Map<number, SetImage[]>();
  for (const image of images) {
    if (image.family < 0) continue;
    families.set(image.family, [...(families.get(image.family) ?? []), image]);
  }
  return [...families.values()];
}

/** Pairs of the groups that the row counts, and how many of them lie within one family. */
function count(groups: SetImage[][], row: Row): { reported: number; correct: number } {
  let reported = 0;
  let correct = 0;
  for (const group of groups) {
    // Quarter-turned copies count in their own row only.
    const members = row === 'rotate' ? group : group.filter((m) => m.kind !== 'rotate');
    // Pairs that hold at least one image of the row's edit: all pairs less those without one.
    const counted = (list: SetImage[]) =>
      row === 'all but rotation'
        ? pairs(list.length)
        : pairs(list.length) - pairs(list.filter((m) => m.kind !== row).length);
    reported += counted(members);
    const byFamily = new Map<number, SetImage[]>();
    for (const m of members) {
      if (m.family < 0) continue;
      byFamily.set(m.family, [...(byFamily.get(m.family) ?? []), m]);
    }
    for (const list of byFamily.values()) correct += counted(list);
  }
  return { reported, correct };
}

/** Connected components of the pairs (i, j) that `linked` accepts, over n items: the groups of a baseline. */
export function components(n: number, edges: Iterable<[number, number]>): number[][] {
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  for (const [a, b] of edges) parent[find(a)] = find(b);
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const root = find(i);
    const list = groups.get(root);
    if (list) list.push(i);
    else groups.set(root, [i]);
  }
  return [...groups.values()].filter((g) => g.length > 1);
}
