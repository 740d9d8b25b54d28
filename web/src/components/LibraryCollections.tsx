import type { CollectionEntry } from '../api.ts';
import type { Activity } from '../library-events.ts';

interface LibraryCollectionsProps {
  collections: CollectionEntry[];
  current: string;
  activity: Map<string, Activity>;
  onChoose: (name: string) => void;
  /** Offers deletion (with the write token). */
  onDelete?: (name: string) => void;
  /** Offers a rescan of the collections that follow a folder (with the write token). */
  onRescan?: (name: string) => void;
}

const WORK = {
  upload: 'adding',
  rescan: 'rescanning',
  watch: 'following its folder',
  duplicates: 'finding duplicates',
} as const;

function stateText(entry: CollectionEntry, activity: Activity | undefined): string {
  if (entry.state === 'preparing') return `preparing: ${entry.phase} ${entry.percent}%`;
  if (entry.state !== 'ready')
    return `${entry.state === 'broken' ? 'broken' : 'preparation failed'}: ${entry.reason}`;
  if (activity) return `${WORK[activity.operation]}: ${activity.done} of ${activity.total}`;
  return 'ready';
}

/** Every collection of the server with its size, model and state, live. */
export function LibraryCollections({
  collections,
  current,
  activity,
  onChoose,
  onDelete,
  onRescan,
}: LibraryCollectionsProps) {
  if (collections.length === 0) return <p class="empty-note">No collection yet.</p>;
  return (
    <div class="table-scroll">
      <table class="library-table">
        <caption class="visually-hidden">Collections</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Images</th>
            <th scope="col">Model</th>
            <th scope="col">State</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {collections.map((entry) => (
            <tr key={entry.name} aria-current={entry.name === current ? 'true' : undefined}>
              <th scope="row">{entry.name}</th>
              <td class="number">{entry.state === 'ready' ? entry.size.toLocaleString('en') : '–'}</td>
              <td class="model">{entry.state === 'ready' ? entry.model.split('/').pop() : '–'}</td>
              <td>{stateText(entry, activity.get(entry.name))}</td>
              <td class="actions">
                {entry.name === current ? (
                  <span class="muted">shown</span>
                ) : (
                  <button
                    type="button"
                    aria-label={`Show ${entry.name}`}
                    disabled={entry.state !== 'ready'}
                    onClick={() => onChoose(entry.name)}
                  >
                    Show
                  </button>
                )}
                {onRescan && entry.state === 'ready' && entry.followsFolder && (
                  <button
                    type="button"
                    aria-label={`Rescan the folder of ${entry.name}`}
                    title="Add new files of its folder, embed changed ones again, remove gone ones"
                    disabled={activity.has(entry.name)}
                    onClick={() => onRescan(entry.name)}
                  >
                    Rescan
                  </button>
                )}
                {onDelete && entry.state !== 'preparing' && (
                  <button
                    type="button"
                    class="danger-text"
                    aria-label={`Delete ${entry.name}`}
                    aria-haspopup="dialog"
                    onClick={() => onDelete(entry.name)}
                  >
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
