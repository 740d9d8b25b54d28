import { relative, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { z } from 'zod';
import { risHome } from '../collection/home.ts';
import { ArgumentError } from '../errors.ts';
import {
  type ExperimentEvent,
  type ExperimentResults,
  type ExperimentRow,
  PRESETS,
  runExperiment,
} from '../experiment/index.ts';
import { createParallelAssigner } from '../node/parallel-assigner.ts';

/** The options of `ris experiment` as cac hands them over (strings or numbers), checked here. */
export interface ExperimentCommandOptions {
  preset?: unknown;
  vectors?: unknown;
  queriesFile?: unknown;
  labels?: unknown;
  queryLabels?: unknown;
  images?: unknown;
  queries?: unknown;
  seed?: unknown;
  out?: unknown;
  json?: unknown;
  models?: unknown;
  split?: unknown;
  perLabel?: unknown;
  limit?: unknown;
  distanceType?: unknown;
  pca?: unknown;
  threads?: unknown;
}

const whole = (min: number, max: number) => z.coerce.number().int().min(min).max(max).optional();
const text = z
  .union([z.string(), z.number()])
  .transform((v) => String(v))
  .optional();

const schema = z.object({
  preset: z.enum(PRESETS).optional(),
  vectors: text,
  queriesFile: text,
  labels: text,
  queryLabels: text,
  images: text,
  queries: whole(1, 10_000_000),
  seed: whole(0, 2 ** 31 - 1),
  out: text,
  json: z.boolean().optional(),
  models: text,
  split: z.enum(['leave-one-out', 'held-out']).optional(),
  perLabel: whole(1, 1_000_000),
  limit: whole(1, 100_000_000),
  distanceType: z.enum(['l2', 'cosine', 'dot']).optional(),
  pca: whole(1, 65536),
  threads: whole(1, 1024),
});

const FLAGS: Record<string, string> = {
  queriesFile: '--queries-file',
  queryLabels: '--query-labels',
  perLabel: '--per-label',
  distanceType: '--distance-type',
};

function parse(options: ExperimentCommandOptions): z.output<typeof schema> {
  const result = schema.safeParse(options);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? '');
    const flag = FLAGS[key] ?? `--${key}`;
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Invalid ${flag}: ${issue.message}; see ris experiment --help`,
    );
  }
  return result.data;
}

/**
 * The command line as typed, for the report (quoted where the shell would need it). An --out into ris's
 * own folder (where a run started from the page writes) is left out: the command then reads as the one
 * that writes there by default, and a report served to the page names no folder of the server.
 */
function commandLine(): string {
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const args = process.argv.slice(2);
  const out = args.indexOf('--out');
  const own =
    out >= 0 && args[out + 1] !== undefined && !relative(risHome(), resolve(args[out + 1]!)).startsWith('..');
  if (own) args.splice(out, 2);
  return ['ris', ...args.map(quote)].join(' ');
}

function duration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

const f = (v: number | null, digits = 3) => (v === null ? '—' : v.toFixed(digits));

function rowLine(row: ExperimentRow): string {
  if (row.skipped) return `${row.label}: skipped (${row.skipped})`;
  if (row.index === null)
    return `${row.label}: P@1 ${f(row.precisionAt1)}, P@5 ${f(row.precisionAt5)}, mAP@10 ${f(row.map10)}`;
  return (
    `${row.label}: 10-R@10 ${f(row.recall10At10)}, notebook R@5 ${f(row.recallAt5Seed)}` +
    `${row.precisionAt5 !== null ? `, P@5 ${f(row.precisionAt5)}` : ''}, ${Math.round(row.qps ?? 0).toLocaleString('en')} QPS, ` +
    `${f(row.bytesPerVector, 1)} B/vector, built in ${f((row.trainSeconds ?? 0) + (row.addSeconds ?? 0), 2)} s`
  );
}

/** Draws progress on stderr: a line per finished row (results as they come), a bar while embedding. */
function progress(): { onProgress: (event: ExperimentEvent) => void; stop: () => void } {
  const tty = Boolean(process.stderr.isTTY);
  let bar: cliProgress.SingleBar | undefined;
  let barKey = '';
  let status = false;
  const clearStatus = () => {
    if (status) process.stderr.write('\r\x1b[2K');
    status = false;
  };
  const stop = () => {
    bar?.stop();
    bar = undefined;
    barKey = '';
    clearStatus();
  };
  return {
    stop,
    onProgress(event) {
      switch (event.type) {
        case 'load':
          console.error(event.message);
          break;
        case 'plan':
          console.error(
            event.preset === 'models'
              ? `models preset: ${event.n} labelled images, ${event.rows} rows planned`
              : `${event.preset} preset: ${event.rows} rows on ${event.n.toLocaleString('en')} vectors of ${event.dimension} dimensions, ${event.queries.toLocaleString('en')} held-out queries`,
          );
          break;
        case 'step':
          if (!tty || bar) break;
          clearStatus();
          process.stderr.write(`  ${event.phase} ${event.label}…`);
          status = true;
          break;
        case 'embed': {
          if (!tty) break;
          const key = `${event.model} ${event.pass}`;
          if (key !== barKey) {
            stop();
            barKey = key;
            bar = new cliProgress.SingleBar(
              {
                format: `embedding (${key}) {bar} {value}/{total} | ETA {eta_formatted}`,
                hideCursor: true,
                stream: process.stderr,
              },
              cliProgress.Presets.shades_classic,
            );
            bar.start(event.total, 0);
          }
          bar!.update(event.done);
          break;
        }
        case 'row': {
          stop();
          const eta = event.etaSeconds !== null ? ` (about ${duration(event.etaSeconds)} left)` : '';
          console.error(`[${event.done}/${event.total}] ${rowLine(event.row)}${eta}`);
          break;
        }
        case 'written':
          stop();
          break;
      }
    },
  };
}

/**
 * `ris experiment`: runs a preset, draws progress on stderr, prints a summary (or results.json with
 * --json) on stdout. Ctrl-C stops after the row in progress and keeps every finished row; a second
 * Ctrl-C quits at once.
 */
export async function experimentCommand(
  collection: string | undefined,
  raw: ExperimentCommandOptions,
): Promise<ExperimentResults> {
  const options = parse(raw);
  const controller = new AbortController();
  const bars = progress();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    bars.stop();
    console.error('stopping after the row in progress (finished rows are kept); Ctrl-C again quits now');
    controller.abort(new Error('interrupted'));
  };
  process.on('SIGINT', onSigint);
  const assigner = createParallelAssigner();
  try {
    const { dir, results, files } = await runExperiment({
      preset: options.preset,
      collection: collection === undefined ? undefined : String(collection),
      vectors: options.vectors,
      queriesFile: options.queriesFile,
      labels: options.labels,
      queryLabels: options.queryLabels,
      images: options.images,
      queries: options.queries,
      seed: options.seed,
      out: options.out,
      models: options.models
        ?.split(',')
        .map((m) => m.trim())
        .filter(Boolean),
      split: options.split,
      perLabel: options.perLabel,
      limit: options.limit,
      distanceType: options.distanceType,
      pcaDimension: options.pca,
      threads: options.threads,
      assigner,
      command: commandLine(),
      signal: controller.signal,
      onProgress: bars.onProgress,
    });
    bars.stop();
    if (options.json) console.log(JSON.stringify(results, null, 2));
    else {
      for (const row of results.rows) console.log(rowLine(row));
      const near = relative(process.cwd(), dir);
      const shown = near === '' ? '.' : near.startsWith('..') ? dir : near;
      console.log(
        `${results.status === 'interrupted' ? 'interrupted: ' : ''}${results.rows.length} rows in ${duration(results.seconds ?? 0)}; ` +
          `wrote ${shown}/report.md, results.json and ${files.filter((file) => file.endsWith('.svg')).length} plots`,
      );
      for (const p of results.projections)
        console.log(
          `learned projection for ${p.model}: ${shown}/${p.file} (${p.beatsRaw ? 'beats' : 'does not beat'} the raw features; use it with ris index --projection)`,
        );
    }
    if (results.status === 'interrupted') process.exitCode = 130;
    return results;
  } finally {
    bars.stop();
    process.off('SIGINT', onSigint);
    await assigner.close();
  }
}
