import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api.ts';
import { withToken } from '../token.ts';

// The Experiments API (src/server/experiments.ts), typed here; these helpers can move into api.ts.

export interface ReportSummary {
  id: string;
  status: 'running' | 'done' | 'interrupted' | 'failed';
  preset: string;
  command: string;
  startedAt: string;
  finishedAt: string | null;
  seconds: number | null;
  rows: number;
  machine: string;
  startedHere: boolean;
  resultsUrl: string;
  reportUrl: string;
  plots: { file: string; title: string; url: string }[];
}

export interface ExperimentList {
  collection: string;
  start: { images: number; allowed: boolean; command: string; reason: string | null };
  running: string | null;
  reports: ReportSummary[];
}

interface Row {
  group: string;
  index: string | null;
  label: string;
  dimension: number;
  trainSeconds: number | null;
  addSeconds: number | null;
  bytesPerVector: number | null;
  fileBytes: number | null;
  qps: number | null;
  p50Ms: number | null;
  recallAt5Seed: number | null;
  recall10At10: number | null;
  precisionAt5: number | null;
  model: string | null;
  pooling: string | null;
  normalization: string | null;
  precisionAt1: number | null;
  map10: number | null;
  skipped: string | null;
}

interface Results {
  status: ReportSummary['status'];
  command: string;
  notes: string[];
  rows: Row[];
  error: string | null;
}

/** The server answers with absolute paths; the page asks relative to itself, as api.ts does. */
const relative = (url: string) => url.replace(/^\//, '');

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(relative(path), withToken(init));
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError('NETWORK', 'The ris server cannot be reached; is `ris serve` still running?');
  }
  const body = (await response.json().catch(() => undefined)) as
    | { error?: { code: string; message: string; command?: string } }
    | undefined;
  if (!response.ok) {
    const error = new ApiError(
      body?.error?.code ?? 'HTTP_ERROR',
      body?.error?.message ?? `The server answered ${response.status} ${response.statusText}`,
      response.status,
    );
    throw Object.assign(error, { command: body?.error?.command });
  }
  return body as T;
}

const listPath = (collection: string) => `api/collections/${encodeURIComponent(collection)}/experiments`;

export const listExperiments = (collection: string, signal?: AbortSignal) =>
  request<ExperimentList>(listPath(collection), { signal });

export const startExperiment = (collection: string) =>
  request<{ id: string; status: string; command: string }>(listPath(collection), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ preset: 'seed' }),
  });

const n = (v: number | null, digits = 3) => (v === null ? '—' : v.toFixed(digits));
const when = (iso: string) => new Date(iso).toLocaleString();
const STATUS: Record<ReportSummary['status'], string> = {
  running: 'running',
  done: 'done',
  interrupted: 'interrupted (finished rows kept)',
  failed: 'failed',
};
const GROUPS: Record<string, string> = {
  reference: "The notebook's index table",
  defaults: "ris's own defaults",
  nprobes: 'nprobes sweep',
  numPartitions: 'numPartitions sweep',
  numSubVectors: 'numSubVectors sweep',
  refineFactor: 'refineFactor sweep',
  pcaDimension: 'PCA dimension sweep',
  runtime: 'Runtime against database size',
  models: 'Models × pooling × normalisation',
  projection: 'Learned projection (held-out half)',
};

function RowsTable({ group, rows }: { group: string; rows: Row[] }) {
  const models = rows[0]?.index === null;
  return (
    // Wide tables scroll sideways: the region takes the focus, so the keyboard can scroll it too (WCAG
    // 2.1.1; axe's scrollable-region-focusable).
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable by keyboard
    <section class="experiment-table" aria-label={GROUPS[group] ?? group} tabIndex={0}>
      <table>
        <caption>{GROUPS[group] ?? group}</caption>
        <thead>
          {models ? (
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Pooling</th>
              <th scope="col">Normalisation</th>
              <th scope="col">P@1</th>
              <th scope="col">P@5</th>
              <th scope="col">mAP@10</th>
            </tr>
          ) : (
            <tr>
              <th scope="col">Index</th>
              <th scope="col">10-recall@10</th>
              <th scope="col">Notebook recall@5</th>
              <th scope="col">P@5</th>
              <th scope="col">QPS</th>
              <th scope="col">p50 ms</th>
              <th scope="col">Bytes / vector</th>
              <th scope="col">File MiB</th>
              <th scope="col">Build s</th>
            </tr>
          )}
        </thead>
        <tbody>
          {rows.map((r, i) =>
            r.skipped ? (
              <tr key={i}>
                <th scope="row">{models ? r.model : r.label}</th>
                <td colSpan={models ? 5 : 8} class="muted">
                  skipped: {r.skipped}
                </td>
              </tr>
            ) : models ? (
              <tr key={i}>
                <th scope="row">{r.model}</th>
                <td>{r.pooling}</td>
                <td>{r.normalization}</td>
                <td>{n(r.precisionAt1)}</td>
                <td>{n(r.precisionAt5)}</td>
                <td>{n(r.map10)}</td>
              </tr>
            ) : (
              <tr key={i}>
                <th scope="row">{r.label}</th>
                <td>{n(r.recall10At10)}</td>
                <td>{n(r.recallAt5Seed)}</td>
                <td>{n(r.precisionAt5)}</td>
                <td>{r.qps === null ? '—' : Math.round(r.qps).toLocaleString()}</td>
                <td>{n(r.p50Ms)}</td>
                <td>{n(r.bytesPerVector, 1)}</td>
                <td>{r.fileBytes === null ? '—' : (r.fileBytes / 2 ** 20).toFixed(2)}</td>
                <td>{n((r.trainSeconds ?? 0) + (r.addSeconds ?? 0), 2)}</td>
              </tr>
            ),
          )}
        </tbody>
      </table>
    </section>
  );
}

function ReportView({ report }: { report: ReportSummary }) {
  const [results, setResults] = useState<Results | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    setError(null);
    request<Results>(report.resultsUrl, { signal: controller.signal })
      .then(setResults)
      .catch((failure: Error) => {
        if (!controller.signal.aborted) setError(`The report could not be loaded: ${failure.message}`);
      });
    return () => controller.abort();
  }, [report.resultsUrl, report.rows, report.status]);
  const groups = results ? [...new Set(results.rows.map((r) => r.group))] : [];
  return (
    <article class="experiment-report" aria-labelledby="experiment-report-heading">
      <h3 id="experiment-report-heading">
        {report.preset} preset, {when(report.startedAt)}
      </h3>
      <p>
        {STATUS[report.status]}, {report.rows} rows
        {report.seconds !== null && `, ${report.seconds.toFixed(1)} s`} · {report.machine}
      </p>
      <p>
        Made by <code>{report.command}</code>
      </p>
      <p>
        <a href={relative(report.reportUrl)} target="_blank" rel="noreferrer">
          report.md
        </a>{' '}
        ·{' '}
        <a href={relative(report.resultsUrl)} target="_blank" rel="noreferrer">
          results.json
        </a>
      </p>
      {error && (
        <p class="error-banner" role="alert">
          {error}
        </p>
      )}
      {results?.error && <p class="muted">The run failed: {results.error}</p>}
      {report.plots.length > 0 && (
        <div class="experiment-plots">
          {report.plots.map((plot) => (
            <figure key={plot.file}>
              <img src={relative(plot.url)} alt={`Plot: ${plot.title}`} loading="lazy" />
              <figcaption>{plot.title}</figcaption>
            </figure>
          ))}
        </div>
      )}
      {groups.map((group) => (
        <RowsTable key={group} group={group} rows={results!.rows.filter((r) => r.group === group)} />
      ))}
      {results && results.notes.length > 0 && (
        <ul class="experiment-notes">
          {results.notes.map((note) => (
            <li key={note}>{note}</li>
          ))}
        </ul>
      )}
    </article>
  );
}

interface ExperimentsProps {
  /** The collection chosen in the page's header. */
  collection: string;
  onError?: (message: string) => void;
}

/**
 * The Experiments tab: the collection's reports newest first (plots, tables, and the command that made
 * each), and a button that starts the seed preset when the server allows it from the page; otherwise
 * the command to run in a terminal.
 */
export function Experiments({ collection, onError }: ExperimentsProps) {
  const [list, setList] = useState<ExperimentList | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [starting, setStarting] = useState(false);
  const [message, setMessage] = useState<{ text: string; command?: string } | null>(null);
  const [refresh, setRefresh] = useState(0);
  const report = list?.reports.find((r) => r.id === selected) ?? list?.reports[0] ?? null;
  const errorRef = useRef(onError);
  errorRef.current = onError;

  useEffect(() => {
    const controller = new AbortController();
    listExperiments(collection, controller.signal)
      .then(setList)
      .catch((failure: Error) => {
        if (!controller.signal.aborted)
          errorRef.current?.(`The experiments could not be listed: ${failure.message}`);
      });
    return () => controller.abort();
  }, [collection, refresh]);

  useEffect(() => {
    setSelected(null);
    setMessage(null);
  }, [collection]);

  // While a run started here is going, look again every 2 s: its rows appear as they finish.
  const active = list?.running ?? null;
  useEffect(() => {
    if (!active) return;
    const timer = setTimeout(() => setRefresh((r) => r + 1), 2000);
    return () => clearTimeout(timer);
  }, [active, list]);

  const start = useCallback(async () => {
    setStarting(true);
    setMessage(null);
    try {
      const started = await startExperiment(collection);
      setSelected(started.id);
      setMessage({ text: 'The seed experiment is running; its rows appear below as they finish.' });
      setRefresh((r) => r + 1);
    } catch (failure) {
      const command = (failure as { command?: string }).command;
      setMessage({ text: (failure as Error).message, command });
    } finally {
      setStarting(false);
    }
  }, [collection]);

  if (!list) return <p class="muted">Loading the experiments…</p>;
  const { start: canStart } = list;
  return (
    <div class="experiments">
      <h2>Experiments on {list.collection}</h2>
      <p class="hint">
        Which index, which parameters, which model for this collection: the reference notebooks' measurements,
        seeded, with plots. Each report says the command that made it.
      </p>
      <div class="experiment-start">
        {canStart.allowed ? (
          <button
            type="button"
            class="primary"
            onClick={start}
            disabled={starting || Boolean(list.running)}
            aria-busy={starting}
          >
            {list.running ? 'Running the seed experiment…' : 'Run the seed experiment'}
          </button>
        ) : (
          <p>
            {canStart.reason}. Run it in a terminal: <code>{canStart.command}</code>
          </p>
        )}
        <p class="muted">
          Other presets run in a terminal: <code>{canStart.command} --preset sweep</code>,{' '}
          <code>--preset models</code>, <code>--preset runtime</code>.
        </p>
        <div aria-live="polite">
          {message && (
            <p>
              {message.text}
              {message.command && (
                <>
                  {' '}
                  Run: <code>{message.command}</code>
                </>
              )}
            </p>
          )}
        </div>
      </div>
      {list.reports.length === 0 ? (
        <p class="muted">No reports for {list.collection} yet.</p>
      ) : (
        <div class="experiment-layout">
          <nav aria-label="Reports, newest first">
            <ul class="experiment-list">
              {list.reports.map((r) => (
                <li key={r.id}>
                  <button
                    type="button"
                    aria-current={r.id === report?.id ? 'true' : undefined}
                    data-report-status={r.status}
                    onClick={() => setSelected(r.id)}
                  >
                    <strong>{r.preset}</strong> · {when(r.startedAt)}
                    <span class="muted">
                      {' '}
                      · {STATUS[r.status]} · {r.rows} rows
                    </span>
                  </button>
                </li>
              ))}
            </ul>
          </nav>
          {report && <ReportView key={report.id} report={report} />}
        </div>
      )}
    </div>
  );
}
