import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hono } from 'hono';
import { z } from 'zod';
import type { ImageCollection } from '../collection/store.ts';
import { ArgumentError, RequestError } from '../errors.ts';
import { newReportDir } from '../experiment/paths.ts';
import type { ExperimentResults } from '../experiment/types.ts';
import { withoutServerPaths } from './public-text.ts';
import { jsonBody } from './request-body.ts';

export interface ExperimentsRouterOptions {
  /** The served collection of a name, or the error that says why there is none (a registry's `require`). */
  collection: (name: string) => ImageCollection;
  /** Where the collections live (RIS_HOME of the runs started here). Default: two folders above each collection. */
  home?: string;
  /** Largest collection a run may be started for from the page. Default 20,000 images. */
  maxImages?: number;
  /** Starts `ris experiment` (tests replace it). Default: the ris binary in a child process. */
  spawnRun?: (args: string[], env: NodeJS.ProcessEnv) => ChildProcess;
}

/** What the page needs to list one report. */
export interface ReportSummary {
  id: string;
  status: ExperimentResults['status'];
  preset: ExperimentResults['preset'];
  command: string;
  startedAt: string;
  finishedAt: string | null;
  seconds: number | null;
  rows: number;
  machine: string;
  /** True while a run this server started is still writing it. */
  startedHere: boolean;
  resultsUrl: string;
  reportUrl: string;
  plots: { file: string; title: string; url: string }[];
}

const BIN = fileURLToPath(new URL('../../bin/ris.js', import.meta.url));
const REPORT_ID = /^[0-9A-Za-z][0-9A-Za-z._-]{0,80}$/;
const FILE = /^[0-9A-Za-z][0-9A-Za-z._-]{0,120}\.(json|md|svg)$/;
const TYPES: Record<string, string> = {
  json: 'application/json; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  svg: 'image/svg+xml',
};
const startBody = z.object({ preset: z.enum(['seed', 'sweep', 'models', 'runtime']).default('seed') });

/**
 * The Experiments API of the served collections: their reports newest first, each report's files, and
 * starting a cheap seed run (the seed preset on a collection under `maxImages` images) in a child
 * process; anything costlier answers 409 with the command to run instead. Reports live in
 * `<collection dir>/experiments/<time>/`. Errors are thrown as ris errors, for the app's one mapping
 * of codes to HTTP statuses.
 */
export function experimentsRouter(options: ExperimentsRouterOptions): Hono {
  const maxImages = options.maxImages ?? 20_000;
  const running = new Map<string, { id: string; child: ChildProcess }>();
  const spawnRun =
    options.spawnRun ??
    ((args: string[], env: NodeJS.ProcessEnv) =>
      spawn(process.execPath, [BIN, ...args], { env, stdio: 'ignore', detached: false }));
  const app = new Hono();
  const base = (name: string) => `/api/collections/${encodeURIComponent(name)}/experiments`;
  const reportsDir = (col: ImageCollection) => join(col.dir, 'experiments');

  const summaries = async (col: ImageCollection): Promise<ReportSummary[]> => {
    const dir = reportsDir(col);
    if (!existsSync(dir)) return [];
    const ids = (await readdir(dir))
      .filter((id) => REPORT_ID.test(id))
      .sort()
      .reverse();
    const out: ReportSummary[] = [];
    for (const id of ids) {
      let results: ExperimentResults;
      try {
        results = JSON.parse(await readFile(join(dir, id, 'results.json'), 'utf8')) as ExperimentResults;
      } catch {
        continue; // not a report (yet): a run that has not written its first results
      }
      const url = `${base(col.name)}/${encodeURIComponent(id)}`;
      out.push({
        id,
        status: results.status,
        preset: results.preset,
        command: withoutServerPaths(results.command),
        startedAt: results.startedAt,
        finishedAt: results.finishedAt,
        seconds: results.seconds,
        rows: results.rows.length,
        machine: `${results.machine.cpuModel}, ${results.machine.cores} cores, Node ${results.machine.node}`,
        startedHere: running.get(col.name)?.id === id,
        resultsUrl: `${url}/results.json`,
        reportUrl: `${url}/report.md`,
        plots: (results.plots ?? []).map((p) => ({ ...p, url: `${url}/${p.file}` })),
      });
    }
    return out;
  };

  const startable = async (col: ImageCollection) => {
    const images = await col.count();
    const allowed = images < maxImages;
    return {
      images,
      allowed,
      command: `ris experiment ${col.name}`,
      reason: allowed
        ? null
        : `${col.name} has ${images.toLocaleString('en')} images; runs from the page are for collections under ${maxImages.toLocaleString('en')}`,
    };
  };

  app.get('/api/collections/:name/experiments', async (c) => {
    const col = options.collection(c.req.param('name'));
    return c.json({
      collection: col.name,
      start: await startable(col),
      running: running.get(col.name)?.id ?? null,
      reports: await summaries(col),
    });
  });

  app.get('/api/collections/:name/experiments/:id/:file', async (c) => {
    const col = options.collection(c.req.param('name'));
    const id = c.req.param('id');
    const file = c.req.param('file');
    // Names only, never paths: nothing outside the report folder can be asked for.
    const match = FILE.exec(file);
    if (!REPORT_ID.test(id) || !match || id.includes('..') || file.includes('..'))
      throw new RequestError('NOT_FOUND', `No report file ${id}/${file}`);
    const bytes = await readFile(join(reportsDir(col), id, file)).catch(() => undefined);
    if (!bytes) throw new RequestError('NOT_FOUND', `No report file ${id}/${file} in ${col.name}`);
    c.header('Content-Type', TYPES[match[1]!]!);
    c.header('Cache-Control', 'no-cache');
    // Reports written before commands were recorded without the server's folders may name them.
    if (match[1] === 'json' || match[1] === 'md') return c.body(withoutServerPaths(bytes.toString('utf8')));
    // Opened on its own, an SVG may not run anything (vega writes none; this keeps it so).
    if (match[1] === 'svg')
      c.header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
    return c.body(new Uint8Array(bytes));
  });

  app.post('/api/collections/:name/experiments', async (c) => {
    const col = options.collection(c.req.param('name'));
    const raw = await jsonBody(c);
    const parsed = startBody.safeParse(raw ?? {});
    if (!parsed.success)
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Invalid preset: ${parsed.error.issues[0]!.message}; use seed`,
      );
    const { preset } = parsed.data;
    const start = await startable(col);
    const command = preset === 'seed' ? start.command : `${start.command} --preset ${preset}`;
    if (preset !== 'seed')
      throw new RequestError(
        'RUN_FROM_CLI',
        `The ${preset} preset takes too long to start from the page; run ${command} in a terminal`,
        { details: { command } },
      );
    if (!start.allowed)
      throw new RequestError('RUN_FROM_CLI', `${start.reason}; run ${command} in a terminal`, {
        details: { command },
      });
    const busy = running.get(col.name);
    if (busy)
      throw new RequestError(
        'EXPERIMENT_RUNNING',
        `An experiment on ${col.name} is already running (${busy.id}); wait for it to finish`,
        { details: { id: busy.id } },
      );
    const dir = newReportDir(reportsDir(col));
    const id = basename(dir);
    const home = options.home ?? dirname(dirname(col.dir));
    const child = spawnRun(['experiment', col.name, '--out', dir], { ...process.env, RIS_HOME: home });
    running.set(col.name, { id, child });
    const done = () => {
      if (running.get(col.name)?.child === child) running.delete(col.name);
    };
    child.once('exit', done);
    child.once('error', done);
    return c.json(
      { id, status: 'running', command, url: `${base(col.name)}/${encodeURIComponent(id)}/results.json` },
      202,
    );
  });

  return app;
}
