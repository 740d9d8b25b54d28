import type { ExperimentResults, ExperimentRow } from './types.ts';

const num = (v: number | null, digits: number) =>
  v === null || !Number.isFinite(v) ? '—' : v.toFixed(digits);
// MiB, as the notebook reported its file sizes (its 71.44 is 9,144 × 2048 × 4 bytes / 2²⁰).
const mib = (v: number | null) => (v === null ? '—' : (v / 2 ** 20).toFixed(v < 2 ** 20 ? 3 : 2));

function table(header: string[], lines: string[][]): string {
  const cellText = (cell: string) => cell.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...lines.map((cells) => `| ${cells.map(cellText).join(' | ')} |`),
  ].join('\n');
}

const INDEX_HEADER = [
  'row',
  'dim',
  'train s',
  'add s',
  'B/vector',
  'memory MiB',
  'file MiB',
  'QPS',
  'p50 ms',
  'p99 ms',
  'batch QPS',
  'notebook R@5',
  '10-R@10',
  'P@5',
  'note',
];

function indexLine(r: ExperimentRow): string[] {
  const note = r.skipped ? `skipped: ${r.skipped}` : String(r.params.note ?? '');
  return [
    r.label,
    String(r.dimension),
    num(r.trainSeconds, 2),
    num(r.addSeconds, 2),
    num(r.bytesPerVector, 1),
    mib(r.memoryBytes),
    mib(r.fileBytes),
    num(r.qps, 0),
    num(r.p50Ms, 3),
    num(r.p99Ms, 3),
    num(r.batchQps, 0),
    num(r.recallAt5Seed, 3),
    num(r.recall10At10, 3),
    num(r.precisionAt5, 3),
    note,
  ];
}

const MODEL_HEADER = ['model', 'pooling', 'normalisation', 'dim', 'images', 'P@1', 'P@5', 'mAP@10', 'note'];

function modelLine(r: ExperimentRow): string[] {
  const extra = r.params.shrinkage !== undefined ? `shrinkage ${r.params.shrinkage}` : '';
  return [
    r.model ?? '',
    r.pooling ?? '',
    r.normalization ?? '',
    r.skipped ? '—' : String(r.dimension),
    r.skipped ? '—' : String(r.n),
    num(r.precisionAt1, 3),
    num(r.precisionAt5, 3),
    num(r.map10, 3),
    r.skipped ? `skipped: ${r.skipped}` : extra,
  ];
}

const best = (rows: ExperimentRow[], key: (r: ExperimentRow) => number | null) =>
  rows.reduce<ExperimentRow | undefined>((top, r) => {
    const v = key(r);
    return v !== null && (top === undefined || v > (key(top) ?? -Infinity)) ? r : top;
  }, undefined);

/** One sentence per table: what it shows, and the fact in it most worth reading. */
function sentence(group: string, rows: ExperimentRow[]): string {
  const done = rows.filter((r) => !r.skipped);
  const approx = done.filter((r) => r.index !== 'Flat');
  const top = best(approx, (r) => r.recall10At10);
  const topText = top
    ? ` The best approximate recall here is ${num(top.recall10At10, 3)} (${top.label}, ${num(top.qps, 0)} QPS).`
    : '';
  switch (group) {
    case 'reference':
      return (
        "The notebook's table: its index types at its parameters (nlist 100, m 8, nprobes 1), in the original space and after PCA. " +
        '`notebook R@5` is its recall@5 computed its way (database vectors as queries, exact neighbours in the index’s own space), ' +
        'while `10-R@10` compares held-out queries with exact search in the original space, so the PCA rows pay for what PCA discards.' +
        topText
      );
    case 'defaults':
      return (
        'The same index types with the choices ris makes itself (√n partitions, dimension / 16 sub-vectors, nprobes 16), ' +
        'and IVF-PQ as a collection builds it (dimension / 32 sub-vectors, a float16 copy re-ranking 8 × k candidates, nprobes 16).' +
        topText
      );
    case 'nprobes':
      return `Visiting more partitions finds more of the true neighbours and costs time in proportion; IVF-Flat's curve is the ceiling product quantization works under.${topText}`;
    case 'numPartitions':
      return `More partitions make each probe cheaper but split neighbours across more lists, so recall at a fixed nprobes falls.${topText}`;
    case 'numSubVectors':
      return `Each sub-vector is one byte of code per vector: more bytes, finer distances, higher recall and slower scans.${topText}`;
    case 'refineFactor':
      return `Re-ranking k × refineFactor candidates by their float16 copy recovers most of what the codes lose, at 2 bytes per dimension more memory.${topText}`;
    case 'pcaDimension':
      return 'Flat after PCA measures what the projection alone discards (against the original space); IVF-PQ after PCA adds the quantization loss to it.';
    case 'runtime': {
      const sizes = [...new Set(done.map((r) => r.n))].sort((a, b) => a - b);
      const faster = (n: number) => {
        const flat = done.find((r) => r.n === n && r.index === 'Flat');
        const ivf = done.find((r) => r.n === n && r.index === 'IVF-PQ');
        return Boolean(flat && ivf && ivf.p50Ms !== null && flat.p50Ms !== null && ivf.p50Ms < flat.p50Ms);
      };
      // The smallest size from which IVF-PQ stays faster at every larger size measured.
      const pays = sizes.find((_, i) => sizes.slice(i).every(faster));
      const at = pays === undefined ? undefined : done.find((r) => r.n === pays && r.index === 'IVF-PQ');
      return (
        'Exact search costs time in proportion to the database; IVF-PQ (as a collection builds it) costs a training step once and far less per query as the database grows. ' +
        (at
          ? `IVF-PQ answers faster than exact search from n = ${pays!.toLocaleString('en')} on (median ${num(at.p50Ms, 3)} ms, 10-recall@10 ${num(at.recall10At10, 3)}).`
          : 'At no size measured here did IVF-PQ answer faster than exact search.')
      );
    }
    case 'models': {
      const b = best(done, (r) => r.precisionAt5);
      return (
        'Same-label retrieval by exact search for every model, pooling and normalisation (`configured` is the embedding exactly as a collection of that model stores it; avg, max and GeM pool its feature map, unnormalised).' +
        (b ? ` The best P@5 is ${num(b.precisionAt5, 3)}: ${b.model}, ${b.pooling}, ${b.normalization}.` : '')
      );
    }
    case 'projection': {
      const verdicts: string[] = [];
      for (const lda of done.filter((r) => r.normalization === 'lda')) {
        const raw = done.find(
          (r) => r.normalization === 'l2' && r.model === lda.model && r.pooling === lda.pooling,
        );
        if (!raw) continue;
        const beats = (lda.precisionAt5 ?? 0) > (raw.precisionAt5 ?? 0);
        verdicts.push(
          `${lda.model} ${lda.pooling}: LDA ${beats ? 'beats' : 'does not beat'} the raw features (P@5 ${num(lda.precisionAt5, 3)} against ${num(raw.precisionAt5, 3)})`,
        );
      }
      return (
        'A linear projection learned from the labels of one half of the images (LDA, shrinkage chosen on a quarter of that half), measured leave-one-out within the other half against the raw unit-length features on that same half (the same labels, unseen images). ' +
        (verdicts.length ? `${verdicts.join('; ')}.` : '')
      );
    }
    default:
      return '';
  }
}

const GROUP_TITLES: Record<string, string> = {
  reference: "The notebook's index table",
  defaults: "ris's own defaults",
  nprobes: 'nprobes sweep',
  numPartitions: 'numPartitions sweep',
  numSubVectors: 'numSubVectors sweep',
  refineFactor: 'refineFactor sweep',
  pcaDimension: 'PCA dimension sweep',
  runtime: 'Runtime against database size',
  models: 'Models × pooling × normalisation',
  projection: 'Learned projection',
};

/** report.md: every table with its sentence, the notes, the plots, and the command and machine behind them. */
export function reportMarkdown(results: ExperimentResults, plots: { file: string; title: string }[]): string {
  const { machine, input } = results;
  const lines: string[] = [];
  lines.push(`# ris experiment: ${results.preset} preset on ${input.name}`, '');
  if (results.status !== 'done') {
    lines.push(
      results.status === 'running'
        ? `**Running**: ${results.rows.length} rows so far.`
        : results.status === 'interrupted'
          ? `**Interrupted**: the ${results.rows.length} rows finished before the stop are below.`
          : `**Failed**: ${results.error ?? 'unknown error'}. The rows finished before it are below.`,
      '',
    );
  }
  lines.push('Made by:', '', '```sh', results.command, '```', '');
  lines.push(
    `On ${machine.cpuModel} (${machine.cores} cores, ${(machine.memoryBytes / 2 ** 30).toFixed(0)} GiB), Node ${machine.node}, ${machine.platform}; ` +
      `started ${results.startedAt}${results.seconds !== null ? `, took ${results.seconds.toFixed(1)} s` : ''}; seed ${results.seed}.`,
    '',
  );
  const first = results.rows.find((r) => !r.skipped);
  lines.push(
    `Input: ${input.kind} ${input.name}, ${input.total.toLocaleString('en')} vectors of ${input.dimension} dimensions` +
      `${input.labelled ? ', labelled' : ''}` +
      (first && results.preset !== 'models'
        ? `; database ${first.n.toLocaleString('en')}, ${first.queries.toLocaleString('en')} held-out queries.`
        : '.'),
    '',
  );
  const groups = [...new Set(results.rows.map((r) => r.group))];
  for (const group of groups) {
    const rows = results.rows.filter((r) => r.group === group);
    lines.push(`## ${GROUP_TITLES[group] ?? group}`, '', sentence(group, rows), '');
    lines.push(
      rows[0]!.index === null
        ? table(MODEL_HEADER, rows.map(modelLine))
        : table(INDEX_HEADER, rows.map(indexLine)),
      '',
    );
  }
  if (results.projections.length > 0) {
    lines.push('## Projection files', '');
    for (const p of results.projections)
      lines.push(
        `- \`${p.file}\` for ${p.model} (${p.beatsRaw ? 'beats' : 'does not beat'} the raw features on the held-out half): \`ris index … --projection ${p.file}\``,
      );
    lines.push('');
  }
  if (results.notes.length > 0) {
    lines.push('## Notes', '');
    for (const note of results.notes) lines.push(`- ${note}`);
    lines.push('');
  }
  if (plots.length > 0) {
    lines.push('## Plots', '');
    for (const p of plots) lines.push(`![${p.title}](${p.file})`, '');
  }
  lines.push(
    '## Columns',
    '',
    '`B/vector`: bytes the index holds per added vector (codes, ids, copies; the quantizers are in `memory MiB`). ' +
      '`file MiB`: the index file (toBytes), with the PCA matrix when there is one. `QPS`, `p50`, `p99`: single queries, one call each (the PCA of the query included). ' +
      '`batch QPS`: all queries in one call. `notebook R@5`: the reference notebook’s recall@5 exactly as it computed it. ' +
      '`10-R@10`: 10-recall@10 of held-out queries against exact search in the original space. `P@5`: same-label precision of the first 5 results.' +
      // The models table alone has mAP@10.
      (results.rows.some((r) => r.index === null)
        ? ' `mAP@10`: mean over queries of Σ P@k·rel_k / min(10, same-label images).'
        : ''),
    '',
  );
  return lines.join('\n');
}
