import { useState } from 'preact/hooks';
import type { CollectionEntry } from '../api.ts';
import { describeRescan, isTokenRefused, rescanCollection, type Session } from '../library-api.ts';
import type { Activity } from '../library-events.ts';
import type { useUploads } from '../uploads.ts';
import { ReadOnlyNote } from './LibraryAccess.tsx';
import { LibraryAdd } from './LibraryAdd.tsx';
import { LibraryBatches } from './LibraryBatches.tsx';
import { LibraryCollections } from './LibraryCollections.tsx';
import { LibraryCreate } from './LibraryCreate.tsx';
import { LibraryDelete } from './LibraryDelete.tsx';

interface LibraryPanelProps {
  session: Session;
  collections: CollectionEntry[];
  /** The collection the page shows (the header's); images are added to it. */
  collection: string;
  activity: Map<string, Activity>;
  uploads: ReturnType<typeof useUploads>;
  onChoose: (name: string) => void;
  /** A collection made here: the page lists it and shows it. */
  onCreated: (name: string) => void;
  onDeleted: (name: string) => void;
  onRefused: () => void;
}

/**
 * The library view: every collection, live; with the write token, making one, adding images to the one
 * shown (files, folders, addresses) with each request's progress and each file's fate, and deleting one.
 */
export function LibraryPanel({
  session,
  collections,
  collection,
  activity,
  uploads,
  onChoose,
  onCreated,
  onDeleted,
  onRefused,
}: LibraryPanelProps) {
  const [deleting, setDeleting] = useState<string | null>(null);
  const [said, setSaid] = useState('');
  const target = collections.find((c) => c.name === collection && c.state === 'ready');
  const rescan = async (name: string) => {
    setSaid(`Rescanning the folder of ${name}…`);
    try {
      setSaid(describeRescan(name, await rescanCollection(name)));
    } catch (failure) {
      if (isTokenRefused(failure)) onRefused();
      else setSaid(`Rescanning ${name} failed: ${(failure as Error).message}`);
    }
  };

  return (
    <div class="library">
      <section class="column" aria-labelledby="library-collections-heading">
        <h2 id="library-collections-heading">Collections</h2>
        <LibraryCollections
          collections={collections}
          current={collection}
          activity={activity}
          onChoose={onChoose}
          onDelete={session.write ? setDeleting : undefined}
          onRescan={session.write ? rescan : undefined}
        />
        <p class="hint" role="status">
          {said}
        </p>
        {session.write ? (
          <LibraryCreate
            existing={collections.map((c) => c.name)}
            onRefused={onRefused}
            onCreated={(name) => {
              setSaid(`Created the collection ${name}.`);
              onCreated(name);
            }}
          />
        ) : (
          <ReadOnlyNote />
        )}
      </section>

      <section class="column" aria-labelledby="library-add-heading">
        <h2 id="library-add-heading">{target ? `Add images to ${target.name}` : 'Add images'}</h2>
        {!session.write ? (
          <ReadOnlyNote />
        ) : target ? (
          <LibraryAdd
            collection={target.name}
            limits={session.uploads}
            onFiles={(title, send, notSent) => uploads.sendFiles(target.name, title, send, notSent)}
            onUrls={(urls, invalid, label) =>
              uploads.sendUrls(target.name, urls, invalid, label.trim() || undefined)
            }
          />
        ) : (
          <p class="hint">Create a collection, or choose one that is ready, to add images to it.</p>
        )}
        <LibraryBatches drops={uploads.drops} onCancel={uploads.cancel} onClear={uploads.clearFinished} />
      </section>

      <LibraryDelete
        name={deleting}
        onClose={() => setDeleting(null)}
        onRefused={onRefused}
        onDeleted={(name) => {
          setDeleting(null);
          setSaid(`Deleted the collection ${name}.`);
          onDeleted(name);
        }}
      />
    </div>
  );
}
