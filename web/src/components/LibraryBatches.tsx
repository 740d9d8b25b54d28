import { plural } from '../format.ts';
import { megabytes } from '../upload-plan.ts';
import type { BatchView, DropView, FileOutcome } from '../uploads.ts';

interface LibraryBatchesProps {
  drops: DropView[];
  onCancel: (drop: string) => void;
  onClear: () => void;
}

const ACTIVE = new Set<BatchView['phase']>(['waiting', 'sending', 'adding']);

function phaseText(batch: BatchView): string {
  switch (batch.phase) {
    case 'waiting':
      return 'Waiting';
    case 'sending':
      return batch.sendTotal
        ? `Sending: ${megabytes(batch.sent)} of ${megabytes(batch.sendTotal)}`
        : 'Sending';
    case 'adding':
      return `Adding: ${batch.handled} of ${batch.files} files`;
    case 'done':
      return `Done: ${batch.added} added`;
    default:
      return batch.error ?? 'Failed';
  }
}

/** How far a batch is: its body leaving, then the server's work; none while it waits. */
function fraction(batch: BatchView): number | undefined {
  if (batch.phase === 'sending') return batch.sendTotal ? batch.sent / batch.sendTotal : undefined;
  if (batch.phase === 'adding') return batch.files ? batch.handled / batch.files : undefined;
  if (batch.phase === 'waiting') return 0;
  return 1;
}

function Outcomes({ title, list, open }: { title: string; list: FileOutcome[]; open: boolean }) {
  if (list.length === 0) return null;
  return (
    <details class="batch-outcomes" open={open}>
      <summary>
        {title} ({list.length})
      </summary>
      <ul>
        {list.map((item, i) => (
          <li key={`${i}:${item.path}`}>
            <span class="outcome-path">{item.path}</span>: {item.reason}
          </li>
        ))}
      </ul>
    </details>
  );
}

/** Each drop with a progress bar per request, then what was added, skipped and failed, file by file. */
export function LibraryBatches({ drops, onCancel, onClear }: LibraryBatchesProps) {
  if (drops.length === 0) return null;
  return (
    <section class="library-batches" aria-labelledby="batches-heading">
      <div class="section-head">
        <h3 id="batches-heading">Sent to the library</h3>
        <button
          type="button"
          onClick={onClear}
          disabled={drops.every((d) => d.batches.some((b) => ACTIVE.has(b.phase)))}
        >
          Clear finished
        </button>
      </div>
      <ol class="drop-list">
        {drops.map((drop) => {
          const active = drop.batches.some((b) => ACTIVE.has(b.phase));
          const added = drop.batches.reduce((sum, b) => sum + b.added, 0);
          return (
            <li key={drop.id} class="drop" data-state={active ? 'active' : 'over'}>
              <div class="section-head">
                <p class="drop-title">
                  <strong>{drop.title}</strong> <span class="muted">into {drop.collection}</span>
                </p>
                {active && (
                  <button type="button" onClick={() => onCancel(drop.id)}>
                    Cancel
                  </button>
                )}
              </div>
              {drop.batches.map((batch, i) => {
                const id = `batch-${batch.id}`;
                const name =
                  drop.batches.length > 1 ? `Request ${i + 1} of ${drop.batches.length}` : 'Request';
                return (
                  <div key={batch.id} class="batch" data-phase={batch.phase}>
                    <span id={id} class="batch-text">
                      {name}:{' '}
                      {batch.kind === 'files'
                        ? `${plural(batch.files, 'file')}, ${megabytes(batch.bytes)}`
                        : plural(batch.files, 'address')}
                      {batch.label && <> · label {batch.label}</>} · {phaseText(batch)}
                    </span>
                    <progress aria-labelledby={id} max={1} value={fraction(batch)} />
                  </div>
                );
              })}
              <p class="drop-summary" aria-live="polite">
                {active
                  ? ''
                  : `${added} added · ${drop.skipped.length} skipped · ${drop.failed.length} failed or not sent`}
              </p>
              <Outcomes title="Failed or not sent" list={drop.failed} open />
              <Outcomes title="Skipped" list={drop.skipped} open={false} />
            </li>
          );
        })}
      </ol>
    </section>
  );
}
