import { useEffect, useState } from 'preact/hooks';
import { deleteCollection, isTokenRefused } from '../library-api.ts';
import { ModalDialog } from './ModalDialog.tsx';

interface LibraryDeleteProps {
  /** The collection to delete; null: the dialog is closed. */
  name: string | null;
  onClose: () => void;
  onDeleted: (name: string) => void;
  onRefused: () => void;
}

/** Deleting a collection, confirmed by typing its name (a modal <dialog>). */
export function LibraryDelete({ name, onClose, onDeleted, onRefused }: LibraryDeleteProps) {
  const [typed, setTyped] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    setTyped('');
    setError(null);
  }, [name]);

  const confirm = async (event: Event) => {
    event.preventDefault();
    if (!name || typed !== name) return;
    setBusy(true);
    try {
      await deleteCollection(name);
      onDeleted(name);
    } catch (failure) {
      if (isTokenRefused(failure)) {
        onClose();
        onRefused();
      } else setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <ModalDialog
      open={Boolean(name)}
      onClose={onClose}
      class="image-dialog delete-dialog"
      labelledBy="delete-title"
      closeOnBackdrop={false}
    >
      {name && (
        <form class="dialog-body" onSubmit={confirm}>
          <h2 id="delete-title">Delete the collection {name}?</h2>
          <p>
            This deletes its index, its thumbnails and the images uploaded into it. A folder it was indexed
            from stays as it is. This cannot be undone.
          </p>
          <label for="delete-confirm">
            Type <strong>{name}</strong> to confirm
          </label>
          <input
            id="delete-confirm"
            type="text"
            value={typed}
            autoComplete="off"
            spellcheck={false}
            onInput={(event) => setTyped(event.currentTarget.value)}
          />
          {error && (
            <p class="field-error" role="alert">
              {error}
            </p>
          )}
          <div class="dialog-actions">
            <button type="button" onClick={onClose}>
              Cancel
            </button>
            <button type="submit" class="danger" disabled={typed !== name || busy} aria-busy={busy}>
              Delete collection
            </button>
          </div>
        </form>
      )}
    </ModalDialog>
  );
}
